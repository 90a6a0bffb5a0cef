package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/pgtest"
	"github.com/kubedoio/n-kudo/internal/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Wrap(m))
}

// TestConformance runs the suite every store.Store implementation must
// pass, each case on a fresh database.
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t *testing.T) store.Store { return openStore(t) })
}

func BenchmarkStore(b *testing.B) {
	storetest.Benchmark(b, func(b *testing.B) store.Store { return openStore(b) })
}

func openStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), pgtest.URL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// world is one tenant with a site, as the fixtures below need.
type world struct {
	s      *Store
	tenant store.Tenant
	site   store.Site
	now    time.Time
}

func newWorld(t *testing.T, s *Store) world {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	ten := store.Tenant{ID: store.NewID(), Name: "t-" + uuid.NewString(), CreatedAt: now}
	require.NoError(t, s.CreateTenant(ctx, ten))
	site := store.Site{ID: store.NewID(), TenantID: ten.ID, Name: "site", CreatedAt: now, UpdatedAt: now}
	require.NoError(t, s.CreateSite(ctx, site))
	return world{s: s, tenant: ten, site: site, now: now}
}

func (w world) token(t *testing.T, uses int) []byte {
	t.Helper()
	h := []byte(uuid.NewString())
	require.NoError(t, w.s.CreateEnrollmentToken(context.Background(), store.EnrollmentToken{
		ID: store.NewID(), TenantID: w.tenant.ID, SiteID: w.site.ID, Hash: h,
		ExpiresAt: w.now.Add(time.Hour), MaxUses: uses, CreatedAt: w.now,
	}))
	return h
}

func (w world) enroll(t *testing.T) (store.Agent, store.Host) {
	t.Helper()
	a, h, _, err := w.s.ConsumeEnrollment(context.Background(), store.Enrollment{
		TokenHash: w.token(t, 1), AgentID: store.NewID(), HostID: store.NewID(), Hostname: "h",
		CertSerial: "01", CertExpiresAt: w.now.Add(24 * time.Hour), Now: w.now,
	})
	require.NoError(t, err)
	return a, h
}

func TestConsumeEnrollmentRace(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	tests := []struct {
		name    string
		uses    int
		racers  int
		winners int
	}{
		{"one use", 1, 8, 1},
		{"three uses", 3, 8, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, s)
			hash := w.token(t, tt.uses)
			var wg sync.WaitGroup
			errs := make([]error, tt.racers)
			start := make(chan struct{})
			for i := range tt.racers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, _, _, errs[i] = s.ConsumeEnrollment(context.Background(), store.Enrollment{
						TokenHash: hash, AgentID: store.NewID(), HostID: store.NewID(), Hostname: "h",
						CertExpiresAt: w.now.Add(time.Hour), Now: w.now,
					})
				}()
			}
			close(start)
			wg.Wait()
			won := 0
			for _, err := range errs {
				if err == nil {
					won++
					continue
				}
				require.ErrorIs(t, err, store.ErrTokenInvalid)
			}
			require.Equal(t, tt.winners, won)
			agents, _, err := s.ListAgents(context.Background(), w.tenant.ID, store.Page{})
			require.NoError(t, err)
			require.Len(t, agents, tt.winners)
		})
	}
}

func TestConsumeEnrollmentExpired(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	w := newWorld(t, s)
	hash := w.token(t, 1)
	_, _, _, err := s.ConsumeEnrollment(context.Background(), store.Enrollment{
		TokenHash: hash, AgentID: store.NewID(), HostID: store.NewID(), Now: w.now.Add(2 * time.Hour),
	})
	require.ErrorIs(t, err, store.ErrTokenInvalid)
}

func TestUpsertHostStatesBatch(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	w := newWorld(t, s)
	a1, h1 := w.enroll(t)
	a2, h2 := w.enroll(t)
	a3, h3 := w.enroll(t)
	_, err := s.RevokeAgent(ctx, w.tenant.ID, a3.ID, w.now)
	require.NoError(t, err)

	t1 := w.now.Add(time.Second)
	t2 := w.now.Add(2 * time.Second)
	require.NoError(t, s.UpsertHostStates(ctx, []store.HostState{
		{HostID: h1.ID, AgentID: a1.ID, LastSeenAt: t1, Facts: json.RawMessage(`{"cpus": 4}`), NetBird: json.RawMessage(`{"ip":"100.64.0.1"}`)},
		{HostID: h2.ID, AgentID: a2.ID, LastSeenAt: t1, Facts: json.RawMessage(`{"cpus":2}`)},
		// Same host twice in one batch: latest time, latest non-nil facts.
		{HostID: h2.ID, AgentID: a2.ID, LastSeenAt: t2},
		// Revoked agent: ignored.
		{HostID: h3.ID, AgentID: a3.ID, LastSeenAt: t2, Facts: json.RawMessage(`{"x":1}`)},
		// Another agent's host: ignored.
		{HostID: h1.ID, AgentID: a2.ID, LastSeenAt: t2, Facts: json.RawMessage(`{"stolen":true}`)},
	}))

	got1, err := s.GetHost(ctx, w.tenant.ID, h1.ID)
	require.NoError(t, err)
	require.JSONEq(t, `{"cpus":4}`, string(got1.Facts))
	require.Equal(t, `{"cpus":4}`, string(got1.Facts), "jsonb must come back compact")
	require.JSONEq(t, `{"ip":"100.64.0.1"}`, string(got1.NetBird))
	require.True(t, got1.Online)
	require.Equal(t, t1, *got1.LastSeenAt)

	got2, err := s.GetHost(ctx, w.tenant.ID, h2.ID)
	require.NoError(t, err)
	require.JSONEq(t, `{"cpus":2}`, string(got2.Facts))
	require.JSONEq(t, `{}`, string(got2.NetBird))
	require.Equal(t, t2, *got2.LastSeenAt)
	ag2, err := s.GetAgent(ctx, a2.ID)
	require.NoError(t, err)
	require.Equal(t, store.AgentOnline, ag2.Status)
	require.Equal(t, t2, *ag2.LastSeenAt)

	got3, err := s.GetHost(ctx, w.tenant.ID, h3.ID)
	require.NoError(t, err)
	require.False(t, got3.Online)
	require.JSONEq(t, `{}`, string(got3.Facts))
	ag3, err := s.GetAgent(ctx, a3.ID)
	require.NoError(t, err)
	require.Equal(t, store.AgentRevoked, ag3.Status)

	// A late batch neither moves last_seen_at back nor drops facts.
	require.NoError(t, s.UpsertHostStates(ctx, []store.HostState{{HostID: h1.ID, AgentID: a1.ID, LastSeenAt: w.now}}))
	got1, err = s.GetHost(ctx, w.tenant.ID, h1.ID)
	require.NoError(t, err)
	require.Equal(t, t1, *got1.LastSeenAt)
	require.JSONEq(t, `{"cpus":4}`, string(got1.Facts))

	require.ErrorIs(t, s.UpsertHostStates(ctx, []store.HostState{
		{HostID: h1.ID, AgentID: a1.ID, LastSeenAt: t2, Facts: json.RawMessage(`{nope`)},
	}), ErrInvalidArgument)
}

func TestAppendLogLinesDedupe(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	w := newWorld(t, s)
	agent, host := w.enroll(t)
	exec := store.NewID()
	plan := store.Plan{
		ID: store.NewID(), TenantID: w.tenant.ID, SiteID: w.site.ID, HostID: host.ID, AgentID: agent.ID,
		CreatedAt: w.now, UpdatedAt: w.now,
		Actions: []store.PlanAction{{ID: store.NewID(), Type: store.ActionMicroVMStart, ExecutionID: exec}},
	}
	require.NoError(t, s.CreatePlan(ctx, plan))

	batch := func(from, to int64, msg string) []store.LogLine {
		var out []store.LogLine
		for i := from; i <= to; i++ {
			out = append(out, store.LogLine{ExecutionID: exec, Seq: i, At: w.now, Stream: "stdout", Message: fmt.Sprintf("%s %d", msg, i)})
		}
		return out
	}
	require.NoError(t, s.AppendLogLines(ctx, batch(1, 5, "first")))
	retry := append(batch(3, 8, "retry"), batch(7, 8, "dup")...)
	require.NoError(t, s.AppendLogLines(ctx, retry))

	lines, err := s.ListLogLines(ctx, w.tenant.ID, exec, 0, 100)
	require.NoError(t, err)
	require.Len(t, lines, 8)
	for i, l := range lines {
		require.Equal(t, int64(i+1), l.Seq)
	}
	require.Equal(t, "first 3", lines[2].Message, "a retried line must not replace the stored one")
	require.Equal(t, "retry 7", lines[6].Message)

	tail, err := s.ListLogLines(ctx, w.tenant.ID, exec, 6, 1)
	require.NoError(t, err)
	require.Len(t, tail, 1)
	require.Equal(t, int64(7), tail[0].Seq)

	other := newWorld(t, s)
	_, err = s.ListLogLines(ctx, other.tenant.ID, exec, 0, 100)
	require.ErrorIs(t, err, store.ErrNotFound)

	require.ErrorIs(t, s.AppendLogLines(ctx, []store.LogLine{{ExecutionID: store.NewID(), Seq: 1, At: w.now}}), store.ErrNotFound)
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	a := newWorld(t, s)
	b := newWorld(t, s)
	_, host := a.enroll(t)
	vm := store.VM{ID: store.NewID(), TenantID: a.tenant.ID, SiteID: a.site.ID, HostID: host.ID, Name: "vm",
		DesiredState: store.VMRunning, ActualState: store.VMCreating, VCPUs: 1, MemoryMiB: 128, CreatedAt: a.now, UpdatedAt: a.now}
	require.NoError(t, s.CreateVM(ctx, vm))

	tests := []struct {
		name string
		call func() error
	}{
		{"get site", func() error { _, err := s.GetSite(ctx, b.tenant.ID, a.site.ID); return err }},
		{"update site", func() error {
			n := "x"
			_, err := s.UpdateSite(ctx, b.tenant.ID, a.site.ID, store.SitePatch{Name: &n}, b.now)
			return err
		}},
		{"delete site", func() error { return s.DeleteSite(ctx, b.tenant.ID, a.site.ID) }},
		{"get host", func() error { _, err := s.GetHost(ctx, b.tenant.ID, host.ID); return err }},
		{"get agent", func() error { _, err := s.GetTenantAgent(ctx, b.tenant.ID, host.AgentID); return err }},
		{"revoke agent", func() error { _, err := s.RevokeAgent(ctx, b.tenant.ID, host.AgentID, b.now); return err }},
		{"get vm", func() error { _, err := s.GetVM(ctx, b.tenant.ID, vm.ID); return err }},
		{"set vm desired", func() error { return s.SetVMDesiredState(ctx, b.tenant.ID, vm.ID, store.VMStopped, b.now) }},
		{"vm into other tenant's site", func() error {
			v := vm
			v.ID, v.TenantID, v.HostID, v.Name = store.NewID(), b.tenant.ID, uuid.Nil, "y"
			return s.CreateVM(ctx, v)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorIs(t, tt.call(), store.ErrNotFound)
		})
	}
	hosts, _, err := s.ListHosts(ctx, b.tenant.ID, uuid.Nil, store.Page{})
	require.NoError(t, err)
	require.Empty(t, hosts)

	dup := vm
	dup.ID = store.NewID()
	require.ErrorIs(t, s.CreateVM(ctx, dup), store.ErrConflict, "live vm name is unique per tenant")
	require.ErrorIs(t, s.DeleteSite(ctx, a.tenant.ID, a.site.ID), store.ErrConflict)
}

func TestOpenUnreachableFailsFast(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	ctx, cancel := context.WithTimeout(context.Background(), 2*defaultConnectTimeout)
	defer cancel()
	_, err = Open(ctx, "postgres://nobody@"+addr+"/nkudo?sslmode=disable")
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.NoError(t, ctx.Err(), "open must fail on its own, not on the caller's deadline")
	require.ErrorIs(t, Migrate(ctx, "postgres://nobody@"+addr+"/nkudo?sslmode=disable"), store.ErrUnavailable)
}

func TestRecoversAfterDatabaseRestart(t *testing.T) {
	t.Parallel()
	c := pgtest.StartCluster(t)
	ctx := context.Background()
	s, err := Open(ctx, c.URL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Ping(ctx))

	c.Stop()
	err = s.Ping(ctx)
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, err = s.GetTenant(ctx, store.NewID())
	require.ErrorIs(t, err, store.ErrUnavailable)

	c.Start()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for err = s.Ping(ctx); err != nil; err = s.Ping(ctx) {
		require.ErrorIs(t, err, store.ErrUnavailable)
		require.True(t, time.Now().Before(deadline), "ping did not recover: %v", err)
		<-tick.C
	}
	w := newWorld(t, s)
	got, err := s.GetTenant(ctx, w.tenant.ID)
	require.NoError(t, err)
	require.Equal(t, w.tenant, got)
}

func TestConcurrentMigrations(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	const replicas = 3
	errs := make([]error, replicas)
	stores := make([]*Store, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(context.Background(), url)
		}()
	}
	wg.Wait()
	for i := range replicas {
		require.NoError(t, errs[i])
		require.NoError(t, stores[i].Close())
	}
	require.NoError(t, Migrate(context.Background(), url), "migrating an up-to-date database is a no-op")
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	require.NoError(t, translate(nil))
	require.ErrorIs(t, translate(fmt.Errorf("x: %w", errors.New("conn closed"))), store.ErrUnavailable)
}
