package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"

	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
	"github.com/kubedoio/n-kudo/internal/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func open(tb testing.TB) store.Store {
	tb.Helper()
	s, err := sqlite.Open(tb.Context(), filepath.Join(tb.TempDir(), "nkudo.db"))
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, s.Close()) })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t *testing.T) store.Store { return open(t) })
}

func BenchmarkStore(b *testing.B) {
	storetest.Benchmark(b, func(b *testing.B) store.Store { return open(b) })
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "nkudo.db")
	ten := store.Tenant{ID: store.NewID(), Name: "acme", CreatedAt: time.Now()}

	s, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	require.Equal(t, path, s.Path(), "the file the store was opened on")
	require.NoError(t, s.CreateTenant(ctx, ten))
	require.NoError(t, s.Close())

	// Reopening runs the migrations again: they must be a no-op.
	s, err = sqlite.Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	got, err := s.GetTenant(ctx, ten.ID)
	require.NoError(t, err)
	require.Equal(t, ten.Name, got.Name)
	require.Equal(t, ten.CreatedAt.UTC().Truncate(time.Microsecond), got.CreatedAt)
}

func TestMigrateStandalone(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "nkudo.db")
	require.NoError(t, sqlite.Migrate(ctx, path))
	require.NoError(t, sqlite.Migrate(ctx, path), "migrating an up-to-date database")

	s, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, s.Ping(ctx))
	tenants, more, err := s.ListTenants(ctx, store.Page{Limit: 10})
	require.NoError(t, err)
	require.False(t, more)
	require.Empty(t, tenants)
}

func TestOpenRejectsBadPaths(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"", ":memory:", "file:x.db", "x.db?mode=memory"} {
		_, err := sqlite.Open(context.Background(), path)
		require.ErrorIs(t, err, sqlite.ErrInvalidPath, path)
		require.ErrorIs(t, sqlite.Migrate(context.Background(), path), sqlite.ErrInvalidPath, path)
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "nkudo.db"))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Ping(t.Context()), store.ErrUnavailable)
}

// TestConcurrentWritersNeverBusy drives writers and readers at once: with
// one write connection and WAL readers, none may see SQLITE_BUSY.
func TestConcurrentWritersNeverBusy(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := open(t)
	ten := store.Tenant{ID: store.NewID(), Name: "acme", CreatedAt: time.Now()}
	require.NoError(t, s.CreateTenant(ctx, ten))

	const workers, perWorker = 8, 50
	g, gctx := errgroup.WithContext(ctx)
	for w := range workers {
		g.Go(func() error {
			for i := range perWorker {
				e := store.AuditEvent{ID: store.NewID(), TenantID: ten.ID, Actor: "admin",
					Action: fmt.Sprintf("w%d.%d", w, i), Result: "ok", At: time.Now()}
				if err := s.AppendAudit(gctx, e); err != nil {
					return err
				}
				if _, _, err := s.ListAudit(gctx, ten.ID, store.Page{Limit: 10}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())

	var n int
	var after uuid.UUID
	for {
		page, more, err := s.ListAudit(ctx, ten.ID, store.Page{Limit: 100, After: after})
		require.NoError(t, err)
		n += len(page)
		if !more {
			break
		}
		after = page[len(page)-1].ID
	}
	require.Equal(t, workers*perWorker, n)
}

// TestMalformedJSONIsRefused checks that JSON columns are validated before
// anything is written.
func TestMalformedJSONIsRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := open(t)
	now := time.Now()
	ten := store.Tenant{ID: store.NewID(), Name: "acme", CreatedAt: now}
	require.NoError(t, s.CreateTenant(ctx, ten))
	site := store.Site{ID: store.NewID(), TenantID: ten.ID, Name: "lab", CreatedAt: now, UpdatedAt: now}
	require.NoError(t, s.CreateSite(ctx, site))

	vm := store.VM{ID: store.NewID(), TenantID: ten.ID, SiteID: site.ID, Name: "web", VCPUs: 1, MemoryMiB: 256,
		Spec: json.RawMessage(`{"kernel":`), CreatedAt: now, UpdatedAt: now}
	require.ErrorIs(t, s.CreateVM(ctx, vm), sqlite.ErrInvalidArgument)
	_, err := s.GetVM(ctx, ten.ID, vm.ID)
	require.ErrorIs(t, err, store.ErrNotFound)

	require.ErrorIs(t, s.UpsertHostStates(ctx, []store.HostState{{HostID: store.NewID(), AgentID: store.NewID(),
		LastSeenAt: now, Facts: json.RawMessage(`not json`)}}), sqlite.ErrInvalidArgument)
}
