package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

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
