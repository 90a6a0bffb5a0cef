package postgres

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
)

// TestEnrollGroups drives many concurrent enrollments through the group
// commit: a used-up token, a conflicting enrollment and cancelled callers
// must each fail alone, and the token's uses are never exceeded.
func TestEnrollGroups(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	ten := store.Tenant{ID: store.NewID(), Name: "t-" + uuid.NewString(), CreatedAt: now}
	require.NoError(t, s.CreateTenant(ctx, ten))
	site := store.Site{ID: store.NewID(), TenantID: ten.ID, Name: "site", CreatedAt: now, UpdatedAt: now}
	require.NoError(t, s.CreateSite(ctx, site))
	const uses, callers = 150, 200
	hash := []byte("group-token")
	require.NoError(t, s.CreateEnrollmentToken(ctx, store.EnrollmentToken{ID: store.NewID(), TenantID: ten.ID, SiteID: site.ID,
		Hash: hash, ExpiresAt: now.Add(time.Hour), MaxUses: uses, CreatedAt: now}))
	taken := store.NewID() // a host id two callers both claim

	enrollment := func(i int) store.Enrollment {
		e := store.Enrollment{TokenHash: hash, AgentID: store.NewID(), HostID: store.NewID(), Hostname: "edge",
			CertSerial: "01", CertExpiresAt: now.Add(time.Hour), Now: now,
			Audit: &store.AuditEvent{ID: store.NewID(), Actor: "token", Action: "agent.enroll", Result: "ok", At: now}}
		if i < 2 {
			e.HostID = taken
		}
		return e
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	results := make([]error, callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			<-start
			c := ctx
			if i%50 == 49 {
				c = cancelled // may or may not be written; must not block anyone
			}
			_, _, _, results[i] = s.ConsumeEnrollment(c, enrollment(i))
		})
	}
	close(start)
	wg.Wait()

	ok, invalid, conflict, cancelledOK := 0, 0, 0, 0
	for i, err := range results {
		if i%50 == 49 {
			// Written before the cancel was seen, refused, or withdrawn.
			if err == nil {
				cancelledOK++
				continue
			}
			if !errors.Is(err, context.Canceled) && !errors.Is(err, store.ErrTokenInvalid) {
				t.Fatalf("cancelled caller %d: %v", i, err)
			}
			continue
		}
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrTokenInvalid):
			invalid++
		case errors.Is(err, store.ErrConflict):
			conflict++
		default:
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	require.LessOrEqual(t, conflict, 1, "of two callers with one host id at most one loses")
	agents, _, err := s.ListAgents(ctx, ten.ID, store.Page{Limit: 500})
	require.NoError(t, err)
	tok, err := s.EnrollmentTokenByHash(ctx, hash, now)
	if len(agents) == uses {
		require.ErrorIs(t, err, store.ErrTokenInvalid, "all uses taken")
	} else {
		require.NoError(t, err)
		require.Equal(t, len(agents), tok.Uses, "one use per agent")
	}
	require.LessOrEqual(t, len(agents), uses)
	require.Equal(t, ok+cancelledOK, len(agents), "every success is stored, nothing else")
	require.Equal(t, callers-callers/50-conflict, ok+invalid, "every other caller either enrolled or found the token used up")
	events, _, err := s.ListAudit(ctx, ten.ID, store.Page{Limit: 500})
	require.NoError(t, err)
	require.Len(t, events, len(agents), "one event per enrollment, none for a failed one")
}
