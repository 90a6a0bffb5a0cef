package tui

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/data/datatest"
)

var sizes = []struct {
	name string
	w, h int
}{{"80x24", 80, 24}, {"120x40", 120, 40}}

// staticModel builds a root model on the standard fixture, fully loaded and
// connected, without running a program: Update is driven by hand.
func staticModel(t *testing.T, o Options, w, h int) Model {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if o.Source == nil {
		o.Source = datatest.New(datatest.Standard())
	}
	if o.ContextName == "" {
		o.ContextName = "dev"
	}
	if o.Tenant == "" {
		o.Tenant = "acme"
	}
	o.NoColor = true
	if o.Now == nil {
		o.Now = func() time.Time { return datatest.Epoch }
	}
	m := New(ctx, o)
	m = step(t, m, tea.WindowSizeMsg{Width: w, Height: h})
	msg := m.loadCmd()()
	m = step(t, m, msg)
	m = step(t, m, eventMsg{gen: m.gen, ev: data.Event{Type: data.EventConn, Conn: data.Connected}})
	return m
}

func step(t *testing.T, m Model, msg tea.Msg) Model {
	t.Helper()
	next, _ := m.Update(msg)
	nm, ok := next.(Model)
	require.True(t, ok)
	return nm
}

// keys feeds key presses and runs the commands they return the way the
// program would, feeding results back in. A command still blocked after a
// second is a stream wait (events, log tails): it is left to end with the
// test's context.
func keys(t *testing.T, m Model, ks ...tea.KeyMsg) Model {
	t.Helper()
	for _, k := range ks {
		// textinput sanitizes runes in place; parallel subtests share the
		// case table, so each gets its own copy.
		k.Runes = slices.Clone(k.Runes)
		next, cmd := m.Update(k)
		m = next.(Model)
		m = drain(t, m, cmd)
	}
	return m
}

func drain(t *testing.T, m Model, cmd tea.Cmd) Model {
	t.Helper()
	if cmd == nil {
		return m
	}
	done := make(chan tea.Msg, 1)
	go func() { done <- cmd() }()
	var msg tea.Msg
	select {
	case msg = <-done:
	case <-time.After(time.Second):
		return m
	}
	switch msg := msg.(type) {
	case nil:
		return m
	case tea.BatchMsg:
		for _, c := range msg {
			m = drain(t, m, c)
		}
		return m
	}
	next, cmd := m.Update(msg)
	return drain(t, next.(Model), cmd)
}

func runes(s string) tea.KeyMsg { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)} }

var (
	keyEnter = tea.KeyMsg{Type: tea.KeyEnter}
	keyEsc   = tea.KeyMsg{Type: tea.KeyEsc}
	keyDown  = tea.KeyMsg{Type: tea.KeyDown}
)

func requireGolden(t *testing.T, m Model) {
	t.Helper()
	out := ansi.Strip(m.View())
	lines := strings.Split(out, "\n")
	require.Len(t, lines, m.height, "view must fill the screen exactly")
	for i, l := range lines {
		require.LessOrEqual(t, ansi.StringWidth(l), m.width, "line %d too wide: %q", i, l)
	}
	golden.RequireEqual(t, []byte(out))
}

func TestViews(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		opts   Options
		events []data.Event
		keys   []tea.KeyMsg
	}{
		{name: "sites"},
		{name: "hosts_of_site", keys: []tea.KeyMsg{keyEnter}},
		{name: "back_to_sites", keys: []tea.KeyMsg{keyEnter, keyEnter, keyEsc, keyEsc}},
		{name: "vms_of_host", keys: []tea.KeyMsg{keyEnter, keyEnter}},
		{name: "all_vms", keys: []tea.KeyMsg{runes(":"), runes("vms"), keyEnter}},
		{name: "all_hosts", keys: []tea.KeyMsg{runes(":"), runes("ho"), keyEnter}},
		{name: "plans", keys: []tea.KeyMsg{runes(":"), runes("plans"), keyEnter}},
		{name: "plan_actions", keys: []tea.KeyMsg{runes(":"), runes("plans"), keyEnter, keyEnter}},
		{name: "tenants_with_tenant_key", opts: Options{Source: datatest.New(tenantKeyFixture())}, keys: []tea.KeyMsg{runes(":"), runes("tenants"), keyEnter}},
		{name: "tenants", keys: []tea.KeyMsg{runes(":"), runes("tenants"), keyEnter}},
		{name: "palette", keys: []tea.KeyMsg{runes(":"), runes("p")}},
		{name: "filter", keys: []tea.KeyMsg{runes(":"), runes("vms"), keyEnter, runes("/"), runes("WEB")}},
		{name: "help", keys: []tea.KeyMsg{runes("?")}},
		{name: "help_read_only", opts: Options{ReadOnly: true}, keys: []tea.KeyMsg{runes("?")}},
		{name: "confirm_delete", keys: []tea.KeyMsg{runes(":"), runes("vms"), keyEnter, runes("D")}},
		{name: "create_form", keys: []tea.KeyMsg{runes(":"), runes("vms"), keyEnter, runes("n")}},
		{name: "create_form_from_site", keys: []tea.KeyMsg{keyDown, runes("n")}},
		{name: "created_placed", keys: []tea.KeyMsg{runes("n"), runes("web-3"), keyEnter, keyEnter, keyEnter, keyEnter, keyEnter, runes("/img/a.raw"), keyEnter}},
		{name: "create_refused_keeps_form", keys: []tea.KeyMsg{runes(":"), runes("sites"), keyEnter, keyDown, runes("n"), runes("web-9"), keyEnter, keyEnter, keyEnter, keyEnter, keyEnter, runes("/img/a.raw"), keyEnter}},
		{name: "token_confirm", keys: []tea.KeyMsg{runes("t")}},
		{name: "token", keys: []tea.KeyMsg{runes("t"), runes("y")}},
		{name: "confirm_reboot", keys: []tea.KeyMsg{runes(":"), runes("vms"), keyEnter, runes("/web-1"), keyEnter, runes("r")}},
		{name: "stop_already_stopped", keys: []tea.KeyMsg{runes(":"), runes("vms"), keyEnter, runes("/batch"), keyEnter, runes("x")}},
		{name: "unbound_key", keys: []tea.KeyMsg{runes(":"), runes("vms"), keyEnter, runes("e")}},
		{name: "read_only_refusal", opts: Options{ReadOnly: true}, keys: []tea.KeyMsg{runes(":"), runes("vms"), keyEnter, runes("x")}},
		{name: "offline", events: []data.Event{{Type: data.EventConn, Conn: data.Offline, Err: data.ErrUnavailable}}, keys: []tea.KeyMsg{keyEnter}},
		{name: "reconnecting", events: []data.Event{{Type: data.EventConn, Conn: data.Reconnecting}}},
		{name: "console", keys: []tea.KeyMsg{runes(":"), runes("vms"), keyEnter, runes("/"), runes("web-1"), keyEnter, runes("c")}},
		{name: "refused_reason", keys: []tea.KeyMsg{runes(":"), runes("vms"), keyEnter, runes("/batch"), keyEnter, runes("r"), runes("y")}},
		{name: "messages", keys: []tea.KeyMsg{runes(":"), runes("vms"), keyEnter, runes("/batch"), keyEnter, runes("r"), runes("y"), runes(":messages"), keyEnter}},
		{name: "console_typing_read_only", keys: []tea.KeyMsg{runes(":"), runes("vms"), keyEnter, runes("/"), runes("web-1"), keyEnter, runes("c"), runes("root")}},
		{name: "execution_log", keys: []tea.KeyMsg{runes(":"), runes("plans"), keyEnter, keyEnter, keyDown, keyEnter}},
	}
	for _, tc := range cases {
		for _, sz := range sizes {
			t.Run(tc.name+"/"+sz.name, func(t *testing.T) {
				t.Parallel()
				m := staticModel(t, tc.opts, sz.w, sz.h)
				for _, ev := range tc.events {
					m = step(t, m, eventMsg{gen: m.gen, ev: ev})
				}
				m = keys(t, m, tc.keys...)
				requireGolden(t, m)
			})
		}
	}
}

// tenantKeyFixture is the standard fleet seen with a tenant's key, which
// may not list tenants.
func tenantKeyFixture() datatest.Fixture {
	fx := datatest.Standard()
	fx.Tenants = nil
	return fx
}
