package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/internal/client/clienttest"
)

func TestLogsAgainstServer(t *testing.T) {
	t.Parallel()
	srv := clienttest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	tn := srv.NewTenant(t, "acme")
	c := srv.Client(t, tn.OperatorKey, "")
	site, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: "fra1"})
	require.NoError(t, err)
	h := clienttest.HostFixture{SiteID: site.ID, AgentID: uuid.New(), HostID: uuid.New(), Hostname: "edge-1", Simulated: true, Online: true, SeenAt: time.Now()}
	srv.EnrollHost(t, c, h)

	done := srv.SeedExecution(t, tn.ID, h, uuid.Nil)
	srv.AppendLogs(t, done, 1, 5)
	srv.Finish(t, done, client.StatusSucceeded, "")

	t.Run("list pages", func(t *testing.T) {
		t.Parallel()
		ctx := runCtx(t)
		page, err := c.ListLogs(ctx, done.ExecutionID, client.LogListOptions{After: 1, Limit: 2})
		require.NoError(t, err)
		require.Len(t, page.Items, 2)
		require.Equal(t, int64(2), page.Items[0].Seq)
		require.NotEmpty(t, page.NextCursor)
		var seqs []int64
		for l, err := range c.AllLogs(ctx, done.ExecutionID, 0) {
			require.NoError(t, err)
			seqs = append(seqs, l.Seq)
		}
		require.Equal(t, []int64{1, 2, 3, 4, 5}, seqs)
	})

	tests := []struct {
		name  string
		after int64
		want  []int64
	}{
		{"from the start", 0, []int64{1, 2, 3, 4, 5}},
		{"after a seq", 3, []int64{4, 5}},
		{"nothing left", 5, nil},
	}
	for _, tt := range tests {
		t.Run("follow "+tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := runCtx(t)
			var got []int64
			err := c.FollowLogs(ctx, done.ExecutionID, tt.after, func(l client.LogLine) error {
				require.Equal(t, fmt.Sprintf("line %d", l.Seq), l.Message)
				got = append(got, l.Seq)
				return nil
			})
			require.NoError(t, err, "the stream ends once the execution ended")
			require.Equal(t, tt.want, got)
		})
	}

	t.Run("follow live until the end", func(t *testing.T) {
		t.Parallel()
		ctx := runCtx(t)
		live := srv.SeedExecution(t, tn.ID, h, uuid.Nil)
		first := make(chan struct{})
		var got []int64
		errc := make(chan error, 1)
		go func() {
			errc <- c.FollowLogs(ctx, live.ExecutionID, 0, func(l client.LogLine) error {
				got = append(got, l.Seq)
				if l.Seq == 1 {
					close(first)
				}
				return nil
			})
		}()
		srv.AppendLogs(t, live, 1, 1)
		select {
		case <-first:
		case err := <-errc:
			t.Fatalf("stream ended early: %v", err)
		}
		srv.AppendLogs(t, live, 2, 3)
		srv.Finish(t, live, client.StatusFailed, "boom")
		require.NoError(t, <-errc)
		require.Equal(t, []int64{1, 2, 3}, got)
	})
}

// runCtx bounds one parallel subtest from when it runs: a deadline set by
// its parent would also count the time it waits for a parallel slot,
// which on a loaded machine can be longer than the test itself.
func runCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
