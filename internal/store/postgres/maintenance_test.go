package postgres

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store/pgtest"
)

// TestTryExclusiveOneReplicaAtATime: while one replica (store) runs under
// the lock, another replica on the same database is turned away, and a
// different name is not; after it, the other replica gets the lock.
func TestTryExclusiveOneReplicaAtATime(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	open := func() *Store {
		s, err := Open(context.Background(), url)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	first, second := open(), open()
	ctx := t.Context()
	ran, err := first.TryExclusive(ctx, "retention", func(ctx context.Context) error {
		other, err := second.TryExclusive(ctx, "retention", func(context.Context) error {
			t.Error("two replicas ran under the same lock")
			return nil
		})
		require.NoError(t, err)
		require.False(t, other)
		otherName, err := second.TryExclusive(ctx, "something-else", func(context.Context) error { return nil })
		require.NoError(t, err)
		require.True(t, otherName, "locks of other names are independent")
		return nil
	})
	require.NoError(t, err)
	require.True(t, ran)
	ran, err = second.TryExclusive(ctx, "retention", func(context.Context) error { return nil })
	require.NoError(t, err)
	require.True(t, ran, "released after the first replica's run")
}
