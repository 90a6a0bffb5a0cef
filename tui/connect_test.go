package tui

import (
	"context"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/data/datatest"
)

// TestFirstConnectRelists covers the window between the first listing's
// reads and the event stream opening: a change made in that window has
// its event published before the stream exists, so only a re-list shows
// it. This used to be skipped when the listing was still in flight as the
// stream connected, leaving a host's facts blank for good (facts are
// sent again only when they change).
func TestFirstConnectRelists(t *testing.T) {
	for _, tc := range []struct {
		name string
		// listedBeforeConnect: the first listing's answer is applied
		// before the stream reports Connected; otherwise it is still in
		// flight then.
		listedBeforeConnect bool
		// firstFails: the server was unreachable for the first listing.
		firstFails bool
	}{
		{name: "listing finished before the stream opened", listedBeforeConnect: true},
		{name: "listing in flight when the stream opened"},
		{name: "listing failed before the stream opened", listedBeforeConnect: true, firstFails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			src := datatest.New(datatest.Standard())
			m := New(ctx, Options{Source: src, ContextName: "dev", Tenant: "acme", NoColor: true,
				Now: func() time.Time { return datatest.Epoch }})
			m = step(t, m, tea.WindowSizeMsg{Width: 120, Height: 40})

			// The first listing reads the fleet as it is now (or fails)...
			src.SetDown(tc.firstFails)
			first := m.loadCmd()()
			src.SetDown(false)
			hostID := datatest.Standard().Hosts[0].ID
			// ...then the host's facts change, and the change's event is
			// published before the stream opens: the console never gets it.
			src.Update(func(fx *datatest.Fixture) {
				fx.Hosts[0].NetBird = data.NetBird{State: "connected", IP: "100.64.9.9"}
			})

			var cmd tea.Cmd
			connected := eventMsg{gen: m.gen, ev: data.Event{Type: data.EventConn, Conn: data.Connected}}
			if tc.listedBeforeConnect {
				m = step(t, m, first)
				next, c := m.Update(connected)
				m, cmd = next.(Model), c
			} else {
				m = step(t, m, connected)
				next, c := m.Update(first)
				m, cmd = next.(Model), c
			}
			h, ok := m.fleet.Host(hostID)
			require.Equal(t, !tc.firstFails, ok, "a failed listing shows nothing")
			require.NotEqual(t, "100.64.9.9", h.NetBird.IP, "the first listing predates the change")

			require.NotNil(t, cmd, "the first connect must ask for a re-list")
			m = drain(t, m, cmd)
			h, _ = m.fleet.Host(hostID)
			require.Equal(t, "100.64.9.9", h.NetBird.IP, "the re-list shows the change made before the stream opened")
			require.False(t, m.loading)
		})
	}
}
