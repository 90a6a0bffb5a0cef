package tui

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/tui/data/datatest"
)

// clock is a settable time source for the model.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func hostLine(t *testing.T, m Model, host string) string {
	t.Helper()
	for _, l := range strings.Split(ansi.Strip(m.View()), "\n") {
		if strings.Contains(l, host) {
			return l
		}
	}
	t.Fatalf("no line with %q", host)
	return ""
}

// TestRelativeTimesTick: SEEN grows with the clock on the root model's
// tick, with no event and no request to the server.
func TestRelativeTimesTick(t *testing.T) {
	t.Parallel()
	c := &clock{t: datatest.Epoch}
	fake := datatest.New(datatest.Standard())
	m := staticModel(t, Options{Source: fake, Now: c.now}, 100, 24)
	m = keys(t, m, runes(":"), runes("hosts"), keyEnter)
	require.Contains(t, hostLine(t, m, "ams-01"), " 4s ")
	lists := fake.Lists()
	c.add(30 * time.Second)
	m = step(t, m, tickMsg{})
	require.Contains(t, hostLine(t, m, "ams-01"), " 34s ", "a silent host ages")
	require.Equal(t, lists, fake.Lists(), "ticking fetches nothing")
}

// TestStatusMessagesExpire: a status message goes after its time, by
// kind; the message log keeps its full text.
func TestStatusMessagesExpire(t *testing.T) {
	t.Parallel()
	c := &clock{t: datatest.Epoch}
	m := staticModel(t, Options{Now: c.now}, 80, 24)
	// batch-1 is stopped: the server refuses to reboot it.
	m = keys(t, m, runes(":"), runes("vms"), keyEnter, runes("/batch"), keyEnter, runes("r"), runes("y"))
	last := func(m Model) string {
		lines := strings.Split(ansi.Strip(m.View()), "\n")
		return lines[len(lines)-1]
	}
	require.Contains(t, last(m), "reboot batch-1: vm_not_running")
	require.NotContains(t, last(m), "vm-batch-1", "the id is not repeated on the status line")
	c.add(infoFor)
	m = step(t, m, tickMsg{})
	require.Contains(t, last(m), "vm_not_running", "errors stay longer than notes")
	c.add(errorFor)
	m = step(t, m, tickMsg{})
	require.NotContains(t, last(m), "vm_not_running", "the message expired")
	m = keys(t, m, runes(":messages"), keyEnter)
	require.Contains(t, ansi.Strip(m.View()), "start it instead of rebooting it", "the log has the full text")
}
