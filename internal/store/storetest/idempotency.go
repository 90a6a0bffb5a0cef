package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
)

// reservation is what the API reserves a key with.
func reservation(tenant uuid.UUID, route, key, body string, at time.Time) store.IdempotencyRecord {
	return store.IdempotencyRecord{
		TenantID: tenant, Route: route, Key: key, Fingerprint: hash(body),
		Holder: store.NewID(), CreatedAt: at, ReservedUntil: at.Add(time.Minute),
	}
}

// testIdempotency walks a key through its life: reserved, seen pending by
// another request, completed by its holder only, then an answer nobody
// can take over; a released reservation frees the key; keys are scoped to
// tenant and route.
func testIdempotency(t *testing.T, f *fixture) {
	ten, other := f.tenant(), f.tenant()
	const route = "POST /v1/sites"
	_, err := f.s.GetIdempotency(f.ctx, ten.ID, route, "k-1")
	require.ErrorIs(t, err, store.ErrNotFound)

	first := reservation(ten.ID, route, "k-1", "body", base)
	got, won, err := f.s.ReserveIdempotency(f.ctx, first)
	require.NoError(t, err)
	require.True(t, won, "a free key is reserved")
	require.Equal(t, first.Holder, got.Holder)

	// A second request (same body or another) sees the live reservation.
	second := reservation(ten.ID, route, "k-1", "other body", base.Add(time.Second))
	got, won, err = f.s.ReserveIdempotency(f.ctx, second)
	require.NoError(t, err)
	require.False(t, won, "a live reservation holds the key")
	require.True(t, got.Pending())
	require.Equal(t, first.Holder, got.Holder)
	require.Equal(t, hash("body"), got.Fingerprint, "the holder's fingerprint, to refuse another body at once")
	require.Equal(t, ts(first.ReservedUntil), got.ReservedUntil)

	// Only the holder completes or releases.
	done := second
	done.Status, done.Response = 201, []byte(`{"id":"x"}`)
	require.ErrorIs(t, f.s.CompleteIdempotency(f.ctx, done), store.ErrNotFound)
	require.ErrorIs(t, f.s.ReleaseIdempotency(f.ctx, ten.ID, route, "k-1", second.Holder), store.ErrNotFound)
	done.Holder = first.Holder
	require.NoError(t, f.s.CompleteIdempotency(f.ctx, done))
	require.ErrorIs(t, f.s.CompleteIdempotency(f.ctx, done), store.ErrNotFound, "an answer is stored once")

	want := store.IdempotencyRecord{
		TenantID: ten.ID, Route: route, Key: "k-1", Fingerprint: hash("body"),
		Status: 201, Response: []byte(`{"id":"x"}`), CreatedAt: ts(base),
	}
	got, err = f.s.GetIdempotency(f.ctx, ten.ID, route, "k-1")
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.False(t, got.Pending())

	// An answer is never taken over, however late the request.
	late := reservation(ten.ID, route, "k-1", "body", base.Add(24*time.Hour))
	got, won, err = f.s.ReserveIdempotency(f.ctx, late)
	require.NoError(t, err)
	require.False(t, won)
	require.Equal(t, want, got)
	require.ErrorIs(t, f.s.ReleaseIdempotency(f.ctx, ten.ID, route, "k-1", uuid.Nil), store.ErrNotFound,
		"an answer cannot be released")

	// A released reservation frees the key for the next request.
	failed := reservation(ten.ID, route, "k-2", "body", base)
	_, won, err = f.s.ReserveIdempotency(f.ctx, failed)
	require.NoError(t, err)
	require.True(t, won)
	require.NoError(t, f.s.ReleaseIdempotency(f.ctx, ten.ID, route, "k-2", failed.Holder))
	_, err = f.s.GetIdempotency(f.ctx, ten.ID, route, "k-2")
	require.ErrorIs(t, err, store.ErrNotFound)
	retry := reservation(ten.ID, route, "k-2", "body", base)
	_, won, err = f.s.ReserveIdempotency(f.ctx, retry)
	require.NoError(t, err)
	require.True(t, won)

	scopes := []struct {
		name   string
		tenant uuid.UUID
		route  string
	}{
		{"another tenant", other.ID, route},
		{"admin scope", uuid.Nil, route},
		{"another route", ten.ID, "POST /v1/vms"},
	}
	for _, sc := range scopes {
		r := reservation(sc.tenant, sc.route, "k-1", "body", base)
		got, won, err := f.s.ReserveIdempotency(f.ctx, r)
		require.NoError(t, err, sc.name)
		require.True(t, won, "%s: keys are scoped to tenant and route", sc.name)
		require.Equal(t, sc.tenant, got.TenantID, sc.name)
	}
}

// testIdempotencyTakeover: a reservation whose request never answered (its
// replica died) lapses at ReservedUntil; then one request takes the key
// over, and the dead holder can no longer complete or release it.
func testIdempotencyTakeover(t *testing.T, f *fixture) {
	ten := f.tenant()
	const route = "POST /v1/vms"
	dead := reservation(ten.ID, route, "k", "body", base)
	_, won, err := f.s.ReserveIdempotency(f.ctx, dead)
	require.NoError(t, err)
	require.True(t, won)

	early := reservation(ten.ID, route, "k", "body", dead.ReservedUntil.Add(-time.Millisecond))
	_, won, err = f.s.ReserveIdempotency(f.ctx, early)
	require.NoError(t, err)
	require.False(t, won, "a reservation holds until it lapses")

	next := reservation(ten.ID, route, "k", "body", dead.ReservedUntil.Add(time.Millisecond))
	got, won, err := f.s.ReserveIdempotency(f.ctx, next)
	require.NoError(t, err)
	require.True(t, won, "a lapsed reservation is taken over")
	require.Equal(t, next.Holder, got.Holder)

	stale := dead
	stale.Status, stale.Response = 201, []byte(`{}`)
	require.ErrorIs(t, f.s.CompleteIdempotency(f.ctx, stale), store.ErrNotFound)
	require.ErrorIs(t, f.s.ReleaseIdempotency(f.ctx, ten.ID, route, "k", dead.Holder), store.ErrNotFound)
	cur, err := f.s.GetIdempotency(f.ctx, ten.ID, route, "k")
	require.NoError(t, err)
	require.Equal(t, next.Holder, cur.Holder)
	require.Equal(t, ts(next.CreatedAt), cur.CreatedAt)
}

// testIdempotencyRace: many requests reserve one key at once, round after
// round; exactly one wins each round, and every loser is told who holds
// it.
func testIdempotencyRace(t *testing.T, f *fixture) {
	ten := f.tenant()
	const rounds, racers = 20, 16
	for round := range rounds {
		key := fmt.Sprintf("race-%d", round)
		winners := make(chan uuid.UUID, racers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range racers {
			wg.Go(func() {
				<-start
				r := reservation(ten.ID, "POST /v1/plans", key, "body", base)
				got, won, err := f.s.ReserveIdempotency(f.ctx, r)
				if !assertNoError(t, err) {
					return
				}
				if won {
					winners <- r.Holder
					return
				}
				if got.Holder == r.Holder || !got.Pending() {
					t.Errorf("round %d: a loser got %+v", round, got)
				}
			})
		}
		close(start)
		wg.Wait()
		close(winners)
		var won []uuid.UUID
		for h := range winners {
			won = append(won, h)
		}
		require.Len(t, won, 1, "round %d: exactly one reservation wins", round)
		cur, err := f.s.GetIdempotency(f.ctx, ten.ID, "POST /v1/plans", key)
		require.NoError(t, err)
		require.Equal(t, won[0], cur.Holder, "round %d", round)
	}
}

// assertNoError reports err from a goroutine other than the test's.
func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}
