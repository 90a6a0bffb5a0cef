package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/internal/client/clienttest"
)

func TestEventsAgainstServer(t *testing.T) {
	t.Parallel()
	srv := clienttest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tn := srv.NewTenant(t, "acme")
	c := srv.Client(t, tn.OperatorKey, "")

	// A stream from now on sees only what happens after it subscribed,
	// which the test cannot observe; so it keeps creating sites until
	// the stream reports one.
	errFirst := errors.New("got one")
	events := make(chan client.Event, 1)
	errc := make(chan error, 1)
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	go func() {
		errc <- c.Events(streamCtx, 0, func(e client.Event) error {
			if e.Type == client.EventSiteUpdated {
				select {
				case events <- e:
				default: // the test has its event already
				}
			}
			return nil
		})
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var first client.Event
	for i := 0; first.Seq == 0; i++ {
		select {
		case first = <-events:
		case err := <-errc:
			t.Fatalf("stream ended: %v", err)
		case <-tick.C:
			_, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: fmt.Sprintf("site-%d", i)})
			require.NoError(t, err)
		}
	}
	stopStream()
	require.ErrorIs(t, <-errc, context.Canceled)
	site, err := first.Site()
	require.NoError(t, err)
	require.Equal(t, first.ID, site.ID)
	require.Regexp(t, `^site-\d+$`, site.Name)

	// Resuming just before it replays it from the server's buffer.
	var replayed client.Event
	err = c.Events(ctx, first.Seq-1, func(e client.Event) error {
		replayed = e
		return errFirst
	})
	require.ErrorIs(t, err, errFirst)
	require.Equal(t, first.Seq, replayed.Seq)
	require.Equal(t, first.ID, replayed.ID)
}
