package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/muesli/termenv"

	"github.com/kubedoio/n-kudo/tui/confirm"
	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/fleet"
	"github.com/kubedoio/n-kudo/tui/form"
	"github.com/kubedoio/n-kudo/tui/logview"
	"github.com/kubedoio/n-kudo/tui/palette"
	"github.com/kubedoio/n-kudo/tui/render"
	"github.com/kubedoio/n-kudo/tui/style"
	"github.com/kubedoio/n-kudo/tui/view"
)

// ErrNoSource is returned by Run without a data source.
var ErrNoSource = errors.New("no data source")

// Switcher changes context from the `:ctx NAME` command: it returns the new
// context's source and tenant name.
type Switcher func(ctx context.Context, name string) (data.Source, string, error)

// Options configure the console.
type Options struct {
	Source      data.Source
	ContextName string
	Tenant      string
	// ReadOnly hides and refuses every mutating action.
	ReadOnly bool
	// NoColor draws without colour (also implied by the NO_COLOR env var in Run).
	NoColor bool
	// Contexts names the contexts `:ctx` completes and can switch to with
	// Switch; both optional.
	Contexts []string
	Switch   Switcher
	// Now is the clock for relative times; time.Now when nil.
	Now func() time.Time
	// Output and Input default to the terminal.
	Output io.Writer
	Input  io.Reader
}

// Run shows the console until the user quits or ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.Source == nil {
		return ErrNoSource
	}
	if _, ok := os.LookupEnv("NO_COLOR"); ok {
		o.NoColor = true
	}
	if o.Output == nil {
		o.Output = os.Stdout
	}
	m := New(ctx, o)
	defer m.Close()
	popts := []tea.ProgramOption{tea.WithContext(ctx), tea.WithAltScreen(), tea.WithOutput(o.Output)}
	if o.Input != nil {
		popts = append(popts, tea.WithInput(o.Input))
	}
	_, err := tea.NewProgram(m, popts...).Run()
	if err != nil && ctx.Err() != nil && errors.Is(err, tea.ErrProgramKilled) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("running console: %w", err)
	}
	return nil
}

type mode int

const (
	modeNormal mode = iota
	modePalette
	modeFilter
	modeConfirm
	modeForm
	modeToken
	modeHelp
	modeMessages
)

// page is one entry of the navigation stack: a list or a log tail.
type page struct {
	crumb string
	list  *view.List
	log   *logview.Model
}

// Messages the root model sends itself.
type (
	loadedMsg struct {
		gen  int
		snap fleet.Snapshot
		err  error
	}
	tenantsMsg struct {
		tenants []data.Tenant
		err     error
	}
	eventMsg struct {
		gen int
		ev  data.Event
	}
	streamClosedMsg struct{ gen int }
	subscribedMsg   struct {
		gen    int
		events <-chan data.Event
	}
	actionMsg struct {
		label string
		plan  data.Plan
		err   error
	}
	createdMsg struct {
		vm data.VM
		// placed: the form left the host to the server.
		placed bool
		err    error
	}
	tokenMsg struct {
		site  string
		token data.Token
		err   error
	}
	switchedMsg struct {
		name   string
		src    data.Source
		tenant string
		err    error
	}
	// tickMsg redraws relative times (SEEN, AGE) once a second; nothing
	// is fetched.
	tickMsg struct{}
)

// tickEvery is how often relative times are redrawn.
const tickEvery = time.Second

// tick waits a second, or until the console closes: unlike tea.Tick it
// leaves no goroutine behind after quitting.
func (m Model) tick() tea.Cmd {
	ctx := m.ctx
	return func() tea.Msg {
		t := time.NewTimer(tickEvery)
		defer t.Stop()
		select {
		case <-t.C:
			return tickMsg{}
		case <-ctx.Done():
			return nil
		}
	}
}

// Model is the console's root model.
type Model struct {
	opts   Options
	keys   KeyMap
	styles style.Styles
	now    func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	// subCancel ends the current event subscription (a context switch
	// starts a new one); gen tags messages so stale streams are ignored.
	subCtx    context.Context
	subCancel context.CancelFunc
	gen       int
	src       data.Source
	tenant    string
	events    <-chan data.Event

	fleet *fleet.Fleet
	pages []page

	mode    mode
	palette palette.Model
	filter  textinput.Model
	confirm confirm.Model
	form    form.Model
	token   tokenState
	help    help.Model

	conn     data.ConnState
	connErr  error
	everConn bool
	lostConn bool
	loading  bool
	loadedAt time.Time
	pending  []data.Event
	// queued asks for another re-list once the running one ends.
	queued bool

	status    status
	messages  []logged
	watch     string
	watchName string

	width, height int
}

type tokenState struct {
	site  string
	token data.Token
}

// New returns the root model; Close releases its subscriptions.
func New(ctx context.Context, o Options) Model {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Output == nil {
		o.Output = io.Discard
	}
	st := style.New(style.Options{Output: o.Output, NoColor: o.NoColor})
	ctx, cancel := context.WithCancel(ctx)
	fi := textinput.New()
	fi.Prompt = "/"
	fi.Cursor.SetMode(cursor.CursorStatic)
	h := help.New()
	h.ShowAll = true
	h.Styles.FullKey = st.HelpKey
	h.Styles.FullDesc = st.HelpDesc
	h.Styles.FullSeparator = st.Dim
	m := Model{
		opts:   o,
		keys:   DefaultKeyMap(),
		styles: st,
		now:    o.Now,
		ctx:    ctx,
		cancel: cancel,
		src:    o.Source,
		tenant: o.Tenant,
		fleet:  &fleet.Fleet{},
		filter: fi,
		help:   h,
		conn:   data.Connecting,
		width:  80,
		height: 24,
	}
	m.pages = []page{m.listPage(view.Sites, view.Scope{}, "sites")}
	m.layout()
	m.newSubscription()
	m.loading = true
	return m
}

// Close stops every goroutine the model started (through its context).
func (m Model) Close() { m.cancel() }

func (m Model) listPage(k view.Kind, s view.Scope, crumb string) page {
	l := view.NewList(k, s, m.styles, m.now)
	l.Reload(m.fleet)
	return page{crumb: crumb, list: &l}
}

func (m *Model) top() *page { return &m.pages[len(m.pages)-1] }

// Init subscribes to events and lists the fleet. New prepared both (the
// subscription context, the loading flag) because Init cannot change the
// model.
func (m Model) Init() tea.Cmd {
	return tea.Batch(m.subscribeCmd(), m.loadCmd(), tea.WindowSize(), m.tick())
}

// subscribe replaces the event subscription (after a context switch).
func (m *Model) subscribe() tea.Cmd {
	m.newSubscription()
	return m.subscribeCmd()
}

func (m *Model) newSubscription() {
	if m.subCancel != nil {
		m.subCancel()
	}
	m.gen++
	m.subCtx, m.subCancel = context.WithCancel(m.ctx)
	m.events = nil
}

func (m Model) subscribeCmd() tea.Cmd {
	src, ctx, gen := m.src, m.subCtx, m.gen
	return func() tea.Msg {
		return subscribedMsg{gen: gen, events: src.Subscribe(ctx)}
	}
}

func (m Model) waitEvent() tea.Cmd {
	ch, gen := m.events, m.gen
	if ch == nil {
		return nil
	}
	return func() tea.Msg {
		ev, ok := <-ch
		if !ok {
			return streamClosedMsg{gen: gen}
		}
		return eventMsg{gen: gen, ev: ev}
	}
}

// load lists everything; it is the only place the console reads lists, and
// it runs at start, on resync, after a reconnect and on ctrl+r. One listing
// runs at a time; asking during one queues another.
func (m *Model) load() tea.Cmd {
	if m.loading {
		m.queued = true
		return nil
	}
	m.loading = true
	return m.loadCmd()
}

func (m Model) loadCmd() tea.Cmd {
	src, ctx, gen := m.src, m.ctx, m.gen
	return func() tea.Msg {
		var s fleet.Snapshot
		var err error
		if s.Sites, err = src.Sites(ctx); err != nil {
			return loadedMsg{gen: gen, err: fmt.Errorf("listing sites: %w", err)}
		}
		if s.Hosts, err = src.Hosts(ctx); err != nil {
			return loadedMsg{gen: gen, err: fmt.Errorf("listing hosts: %w", err)}
		}
		if s.VMs, err = src.VMs(ctx); err != nil {
			return loadedMsg{gen: gen, err: fmt.Errorf("listing vms: %w", err)}
		}
		if s.Plans, err = src.Plans(ctx); err != nil {
			return loadedMsg{gen: gen, err: fmt.Errorf("listing plans: %w", err)}
		}
		return loadedMsg{gen: gen, snap: s}
	}
}

func (m Model) loadTenants() tea.Cmd {
	src, ctx := m.src, m.ctx
	return func() tea.Msg {
		ts, err := src.Tenants(ctx)
		return tenantsMsg{tenants: ts, err: err}
	}
}

// statusKind tells status messages apart by what they are, not by text.
type statusKind int

const (
	statusInfo statusKind = iota
	statusError
	// statusUnreachable is cleared by the next successful listing.
	statusUnreachable
)

// How long a status message stays; errors stay longer. The full text
// stays in the message log (:messages).
const (
	infoFor  = 5 * time.Second
	errorFor = 15 * time.Second
	// maxMessages bounds the message log.
	maxMessages = 200
)

// status is the message on the status line.
type status struct {
	text  string
	kind  statusKind
	until time.Time
}

// logged is one entry of the message log.
type logged struct {
	at   time.Time
	text string
	bad  bool
}

func (m *Model) setFlash(s string, bad bool) {
	kind := statusInfo
	if bad {
		kind = statusError
	}
	m.setStatus(s, s, kind)
}

// setStatus shows short on the status line until it expires and logs
// full in the message log.
func (m *Model) setStatus(short, full string, kind statusKind) {
	now := m.now()
	d := infoFor
	if kind != statusInfo {
		d = errorFor
	}
	m.status = status{text: short, kind: kind, until: now.Add(d)}
	m.messages = append(m.messages, logged{at: now, text: full, bad: kind != statusInfo})
	if n := len(m.messages) - maxMessages; n > 0 {
		m.messages = slices.Delete(m.messages, 0, n)
	}
}

// progress shows a transient note that the outcome will replace; it is
// not worth a line in the message log.
func (m *Model) progress(s string) {
	m.status = status{text: s, kind: statusInfo, until: m.now().Add(infoFor)}
}

// fail reports what failed: the reason alone on the status line, the
// whole error chain in the message log.
func (m *Model) fail(what string, err error) {
	m.setStatus(what+": "+describe(err), what+": "+err.Error(), statusError)
}

// expireFlash clears a status message whose time is up.
func (m *Model) expireFlash() {
	if m.status.text != "" && !m.now().Before(m.status.until) {
		m.status = status{}
	}
}

// layout hands every component its share of the screen.
func (m *Model) layout() {
	bh := m.bodyHeight()
	for _, p := range m.pages {
		if p.list != nil {
			p.list.SetSize(m.width, bh)
		}
		if p.log != nil {
			p.log.SetSize(m.width, bh)
		}
	}
	m.palette.SetSize(m.width, 2)
	m.filter.Width = max(m.width-2, 1)
	m.confirm.SetSize(m.width, bh)
	m.form.SetSize(m.width, bh)
	m.help.Width = m.width
}

func (m Model) bodyHeight() int {
	h := m.height - 2
	switch m.mode {
	case modePalette:
		h -= 2
	case modeFilter:
		h--
	default:
		if l := m.pages[len(m.pages)-1].list; l != nil && l.Filter() != "" {
			h--
		}
	}
	return max(h, 2)
}

// Update routes messages: async results first, then keys to the active
// overlay or page.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		if msg.Width > 0 && msg.Height > 0 {
			m.width, m.height = msg.Width, msg.Height
			m.layout()
		}
		return m, nil
	case subscribedMsg:
		if msg.gen != m.gen {
			return m, nil
		}
		m.events = msg.events
		return m, m.waitEvent()
	case eventMsg:
		if msg.gen != m.gen {
			return m, nil
		}
		cmd := m.onEvent(msg.ev)
		return m, tea.Batch(cmd, m.waitEvent())
	case streamClosedMsg:
		if msg.gen == m.gen && m.ctx.Err() == nil {
			m.conn = data.Offline
		}
		return m, nil
	case loadedMsg:
		return m, m.onLoaded(msg)
	case tickMsg:
		return m, m.onTick()
	case tenantsMsg:
		if errors.Is(msg.err, data.ErrForbidden) {
			// A tenant key cannot list tenants: say so instead of an
			// empty table, and go back to what it can see.
			if k, ok := m.kindOf(); ok && k == view.Tenants {
				m.reset(view.Sites)
			}
			m.setStatus("tenants need an admin key", "tenants need an admin key; context "+m.opts.ContextName+" holds tenant "+m.tenant+"'s key: "+msg.err.Error(), statusError)
			return m, nil
		}
		if msg.err != nil {
			m.fail("tenants", msg.err)
			return m, nil
		}
		for _, p := range m.pages {
			if p.list != nil && p.list.Kind() == view.Tenants {
				p.list.SetTenants(msg.tenants)
			}
		}
		return m, nil
	case actionMsg:
		if msg.err != nil {
			m.fail(msg.label, msg.err)
			return m, nil
		}
		m.fleet.PutPlan(msg.plan)
		m.applyAll(fleet.Change{Kind: fleet.KindPlan, ID: msg.plan.ID})
		m.watch, m.watchName = msg.plan.ID, msg.label
		m.status = status{}
		return m, nil
	case createdMsg:
		return m, m.onCreated(msg)
	case tokenMsg:
		if msg.err != nil {
			m.fail("enrollment token", msg.err)
			return m, nil
		}
		m.token = tokenState{site: msg.site, token: msg.token}
		m.mode = modeToken
		return m, nil
	case switchedMsg:
		if msg.err != nil {
			m.fail("context "+msg.name, msg.err)
			return m, nil
		}
		m.src, m.tenant, m.opts.ContextName = msg.src, msg.tenant, msg.name
		m.fleet = &fleet.Fleet{}
		m.closePages()
		m.pages = []page{m.listPage(view.Sites, view.Scope{}, "sites")}
		m.layout()
		m.conn, m.everConn, m.lostConn, m.loading, m.queued, m.watch = data.Connecting, false, false, false, false, ""
		m.setFlash("switched to context "+msg.name, false)
		return m, tea.Batch(m.subscribe(), m.load())
	case logview.LinesMsg:
		for _, p := range m.pages {
			if p.log != nil && p.log.ID() == msg.ID {
				lv, cmd := p.log.Update(msg)
				*p.log = lv
				return m, cmd
			}
		}
		return m, nil
	case tea.KeyMsg:
		if msg.Type == tea.KeyRunes && len(msg.Runes) > 1 && !msg.Paste {
			// Fast typing and scripted input arrive as one multi-rune key;
			// ":q" must act as ':' then 'q'.
			var cmds []tea.Cmd
			var next tea.Model = m
			for _, r := range msg.Runes {
				var cmd tea.Cmd
				next, cmd = next.(Model).onKey(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: msg.Alt})
				cmds = append(cmds, cmd)
			}
			return next, tea.Batch(cmds...)
		}
		return m.onKey(msg)
	}
	return m, nil
}

func (m *Model) onTick() tea.Cmd {
	for _, p := range m.pages {
		if p.list != nil {
			p.list.Tick(m.fleet)
		}
	}
	m.expireFlash()
	return m.tick()
}

func (m *Model) onCreated(msg createdMsg) tea.Cmd {
	if msg.err != nil {
		m.fail("create vm", msg.err)
		if m.mode != modeNormal {
			return nil
		}
		// The form was kept: reopen it as typed, the refusal at its
		// field.
		m.mode = modeForm
		return m.form.SetServerError(msg.err)
	}
	m.applyAll(m.fleet.PutVM(msg.vm))
	where := ""
	if msg.vm.HostID != "" {
		where = " on " + m.fleet.HostName(msg.vm.HostID)
		if msg.placed {
			where += " (placed by the server)"
		}
	}
	m.setFlash("created vm "+msg.vm.Name+where, false)
	return nil
}

// describe is an error in a few words: the server's reason code when it
// gave one; the full chain goes to the message log.
func describe(err error) string {
	switch {
	case errors.Is(err, data.ErrForbidden):
		return "not allowed with these credentials"
	case errors.Is(err, data.ErrUnavailable):
		return "server unreachable"
	case errors.Is(err, data.ErrNotFound):
		return "not found (deleted meanwhile?)"
	}
	if code := data.Reason(err); code != "" {
		return code
	}
	return err.Error()
}

func (m *Model) onEvent(ev data.Event) tea.Cmd {
	switch ev.Type {
	case data.EventConn:
		m.conn, m.connErr = ev.Conn, ev.Err
		switch ev.Conn {
		case data.Connected:
			// After an outage events may have been missed; on the first
			// connect, so may those between the first listing's reads
			// (finished, in flight or failed) and the stream opening.
			// Either way: re-list (load queues behind one in flight).
			relist := m.lostConn || !m.everConn
			m.everConn, m.lostConn = true, false
			if relist {
				return m.load()
			}
		case data.Reconnecting, data.Offline:
			if m.everConn {
				m.lostConn = true
			}
		}
		return nil
	case data.EventResync:
		return m.load()
	}
	if m.loading {
		// The listing in flight may predate this event; replay it after.
		m.pending = append(m.pending, ev)
	}
	m.applyAll(m.fleet.Apply(ev))
	return nil
}

func (m *Model) applyAll(ch fleet.Change) {
	if ch.Kind == fleet.KindNone {
		return
	}
	for _, p := range m.pages {
		if p.list != nil {
			p.list.Apply(m.fleet, ch)
		}
	}
}

func (m *Model) onLoaded(msg loadedMsg) tea.Cmd {
	if msg.gen != m.gen {
		return nil
	}
	m.loading = false
	pending := m.pending
	m.pending = nil
	var again tea.Cmd
	if m.queued {
		m.queued = false
		again = m.load()
	}
	if msg.err != nil {
		if errors.Is(msg.err, data.ErrUnavailable) {
			m.setStatus("server unreachable; showing the last data", msg.err.Error(), statusUnreachable)
		} else {
			m.fail("listing", msg.err)
		}
		return again
	}
	m.fleet.Load(msg.snap)
	for _, ev := range pending {
		m.fleet.Apply(ev)
	}
	m.loadedAt = m.now()
	for _, p := range m.pages {
		if p.list != nil {
			p.list.Reload(m.fleet)
		}
	}
	if m.status.kind == statusUnreachable {
		m.status = status{}
	}
	return again
}

func (m *Model) closePages() {
	for _, p := range m.pages {
		if p.log != nil {
			p.log.Close()
		}
	}
}

func (m *Model) push(p page) {
	m.pages = append(m.pages, p)
	m.layout()
}

func (m *Model) pop() {
	if len(m.pages) <= 1 {
		return
	}
	if p := m.top(); p.log != nil {
		p.log.Close()
	}
	m.pages = m.pages[:len(m.pages)-1]
	m.layout()
}

// reset replaces the whole stack with one list (a `:` jump).
func (m *Model) reset(k view.Kind) tea.Cmd {
	m.closePages()
	m.pages = []page{m.listPage(k, view.Scope{}, k.String())}
	m.layout()
	if k == view.Tenants {
		return m.loadTenants()
	}
	return nil
}

// Commands of the palette.
var commands = []palette.Command{
	{Name: "sites", Help: "sites and fleet summary"},
	{Name: "hosts", Help: "all hosts"},
	{Name: "vms", Help: "all VMs"},
	{Name: "plans", Help: "plans and their progress"},
	{Name: "tenants", Help: "tenants (admin)"},
	{Name: "ctx", Help: "show or switch context"},
	{Name: "messages", Help: "message log, full text"},
	{Name: "help", Help: "keys"},
	{Name: "q", Help: "quit"},
}

func (m Model) runCommand(c palette.SubmitMsg) (tea.Model, tea.Cmd) {
	switch c.Command {
	case "sites":
		return m, m.reset(view.Sites)
	case "hosts":
		return m, m.reset(view.Hosts)
	case "vms":
		return m, m.reset(view.VMs)
	case "plans":
		return m, m.reset(view.Plans)
	case "tenants":
		return m, m.reset(view.Tenants)
	case "help":
		m.mode = modeHelp
		return m, nil
	case "messages":
		m.mode = modeMessages
		return m, nil
	case "q", "quit":
		m.cancel()
		return m, tea.Quit
	case "ctx":
		if len(c.Args) == 0 {
			msg := fmt.Sprintf("context %s · tenant %s", m.opts.ContextName, m.tenant)
			if len(m.opts.Contexts) > 0 {
				msg += " · available: " + strings.Join(m.opts.Contexts, ", ")
			}
			m.setFlash(msg, false)
			return m, nil
		}
		if m.opts.Switch == nil {
			m.setFlash("switching context needs a restart: nkudo --context "+c.Args[0], true)
			return m, nil
		}
		sw, ctx, name := m.opts.Switch, m.ctx, c.Args[0]
		return m, func() tea.Msg {
			src, tenant, err := sw(ctx, name)
			return switchedMsg{name: name, src: src, tenant: tenant, err: err}
		}
	}
	m.setFlash("unknown command :"+c.Command, true)
	return m, nil
}

func (m Model) onKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	if key.Matches(k, m.keys.Quit) {
		m.cancel()
		return m, tea.Quit
	}
	switch m.mode {
	case modePalette:
		// Enter and esc act at once: keys typed ahead belong to the page.
		switch {
		case key.Matches(k, m.palette.KeyMap.Submit):
			m.mode = modeNormal
			m.layout()
			return m.runCommand(m.palette.Submit())
		case key.Matches(k, m.palette.KeyMap.Cancel):
			m.mode = modeNormal
			m.layout()
			return m, nil
		}
		var cmd tea.Cmd
		m.palette, cmd = m.palette.Update(k)
		return m, cmd
	case modeFilter:
		switch k.String() {
		case "esc":
			m.filter.SetValue("")
			m.top().list.SetFilter("")
			m.mode = modeNormal
		case "enter":
			m.mode = modeNormal
		default:
			var cmd tea.Cmd
			m.filter, cmd = m.filter.Update(k)
			m.top().list.SetFilter(m.filter.Value())
			m.layout()
			return m, cmd
		}
		m.layout()
		return m, nil
	case modeConfirm:
		return m, m.onConfirmKey(k)
	case modeForm:
		out, spec, cmd := m.form.Handle(k)
		switch out {
		case form.Submitted:
			m.mode = modeNormal
			return m, m.createVM(spec)
		case form.Cancelled:
			m.mode = modeNormal
		}
		return m, cmd
	case modeToken:
		switch k.String() {
		case "c", "y":
			m.setFlash("token copied to the clipboard (OSC 52)", false)
			tok, out := m.token.token.Token, m.opts.Output
			return m, func() tea.Msg {
				termenv.NewOutput(out).Copy(tok)
				return nil
			}
		case "esc", "enter", "q":
			m.mode = modeNormal
			m.token = tokenState{}
		}
		return m, nil
	case modeHelp, modeMessages:
		if k.String() == "esc" || k.String() == "?" || k.String() == "q" {
			m.mode = modeNormal
		}
		return m, nil
	}

	p := m.top()
	switch {
	case key.Matches(k, m.keys.Palette):
		m.mode = modePalette
		m.palette = palette.New(commands, m.styles)
		m.layout()
		return m, nil
	case key.Matches(k, m.keys.Filter) && p.list != nil:
		m.mode = modeFilter
		m.filter.SetValue(p.list.Filter())
		m.filter.CursorEnd()
		m.layout()
		return m, m.filter.Focus()
	case key.Matches(k, m.keys.Help):
		m.mode = modeHelp
		return m, nil
	case key.Matches(k, m.keys.Back):
		if p.list != nil && p.list.Filter() != "" {
			p.list.SetFilter("")
			m.filter.SetValue("")
			m.layout()
			return m, nil
		}
		m.pop()
		return m, nil
	case key.Matches(k, m.keys.Refresh):
		m.setFlash("re-listing…", false)
		return m, m.load()
	}
	return m.pageKey(k)
}

// pageKey handles a key on the page itself: the log's scrolling, or the
// list's actions and navigation.
func (m Model) pageKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	p := m.top()
	if p.log != nil {
		if lk := p.log.KeyMap; (k.Type == tea.KeyRunes || k.Type == tea.KeySpace || k.Type == tea.KeyEnter) &&
			!key.Matches(k, lk.Up, lk.Down, lk.PageUp, lk.PageDown, lk.Top, lk.Follow) {
			// Under a login: prompt, typing looks like it should reach
			// the guest: say it does not.
			m.setFlash("read-only view: keys do not reach the VM", false)
			return m, nil
		}
		lv, cmd := p.log.Update(k)
		*p.log = lv
		return m, cmd
	}
	if cmd, ok := m.listKey(k); ok {
		return m, cmd
	}
	if m.unbound(k) {
		// A key that does nothing says so, instead of leaving the
		// operator to wonder whether it was received.
		m.setFlash(fmt.Sprintf("%s does nothing here · ? lists the keys", k.String()), false)
		return m, nil
	}
	l, cmd := p.list.Update(k)
	*p.list = l
	return m, cmd
}

// onConfirmKey answers an open confirmation.
func (m *Model) onConfirmKey(k tea.KeyMsg) tea.Cmd {
	yes, decided := m.confirm.Decide(k)
	if !decided {
		return nil
	}
	m.mode = modeNormal
	op, id, _ := strings.Cut(m.confirm.ID(), ":")
	if !yes {
		m.setFlash(op+" cancelled", false)
		return nil
	}
	if op == opToken {
		return m.mintToken(id)
	}
	return m.vmAction(id, data.VMOp(op))
}

// unbound reports a printable key (or space) no binding of a list page
// claims.
func (m Model) unbound(k tea.KeyMsg) bool {
	if k.Type != tea.KeyRunes && k.Type != tea.KeySpace {
		return false
	}
	tk := m.top().list.Table().KeyMap
	all := append(m.keys.navigation(), m.keys.actions()...)
	all = append(all, tk.Up, tk.Down, tk.PageUp, tk.PageDown, tk.Home, tk.End, tk.SortNext, tk.SortPrev, tk.SortReverse)
	return !key.Matches(k, all...)
}

// listKey handles drilling and actions on the selected row.
func (m *Model) listKey(k tea.KeyMsg) (tea.Cmd, bool) {
	l := m.top().list
	id, ok := l.Selected()
	kind := l.Kind()
	switch {
	case key.Matches(k, m.keys.Enter):
		if !ok {
			return nil, true
		}
		return m.drill(kind, id), true
	case key.Matches(k, m.keys.Start, m.keys.Stop, m.keys.Reboot, m.keys.Delete, m.keys.Console, m.keys.Logs) && kind == view.VMs:
		if !ok {
			return nil, true
		}
		return m.onVMKey(k, id), true
	case key.Matches(k, m.keys.Create) && (kind == view.VMs || kind == view.Hosts || kind == view.Sites):
		if m.refuseReadOnly("create vm") {
			return nil, true
		}
		m.form = form.New(m.formOptions(kind, id, ok), m.styles)
		m.form.SetSize(m.width, m.bodyHeight())
		m.mode = modeForm
		return nil, true
	case key.Matches(k, m.keys.Token) && kind == view.Sites:
		if !ok || m.refuseReadOnly("enrollment token") {
			return nil, true
		}
		// A token lets a machine join the site: mint one on purpose only.
		name := m.fleet.SiteName(id)
		m.askConfirm(opToken+":"+id, "Create an enrollment token for "+name+"?",
			"Anyone holding it can enroll a host into "+name+" until it expires. It is shown once.")
		return nil, true
	}
	return nil, false
}

// opToken tags the confirmation of minting an enrollment token.
const opToken = "token"

func (m *Model) mintToken(siteID string) tea.Cmd {
	src, ctx, name := m.src, m.ctx, m.fleet.SiteName(siteID)
	return func() tea.Msg {
		t, err := src.CreateEnrollmentToken(ctx, siteID)
		return tokenMsg{site: name, token: t, err: err}
	}
}

// formOptions pre-fills the create form from where it was opened: the
// selected site or host, else the page's scope. The host stays empty
// unless one was chosen, so the server places the VM.
func (m *Model) formOptions(kind view.Kind, selected string, ok bool) form.Options {
	o := form.Options{Sites: m.fleet.Sites(), Hosts: m.fleet.Hosts("")}
	siteID, hostID := m.top().list.Scope().SiteID, m.top().list.Scope().HostID
	switch {
	case kind == view.Sites && ok:
		siteID = selected
	case kind == view.Hosts && ok:
		hostID = selected
	}
	if h, found := m.fleet.Host(hostID); found {
		o.Host, siteID = h.Hostname, h.SiteID
	}
	if st, found := m.fleet.Site(siteID); found {
		o.Site = st.Name
	}
	return o
}

func (m *Model) refuseReadOnly(what string) bool {
	if m.opts.ReadOnly {
		m.setFlash("read-only mode: "+what+" is disabled", true)
	}
	return m.opts.ReadOnly
}

func (m *Model) drill(kind view.Kind, id string) tea.Cmd {
	switch kind {
	case view.Tenants:
		m.setFlash("tenant "+id+": use a context with that tenant's key (:ctx NAME)", false)
	case view.Sites:
		m.push(m.listPage(view.Hosts, view.Scope{SiteID: id}, m.fleet.SiteName(id)))
	case view.Hosts:
		m.push(m.listPage(view.VMs, view.Scope{HostID: id}, m.fleet.HostName(id)))
	case view.VMs:
		m.push(m.listPage(view.Plans, view.Scope{VMID: id}, m.fleet.VMName(id)))
	case view.Plans:
		m.push(m.listPage(view.Actions, view.Scope{PlanID: id}, "plan "+render.ShortID(id)))
	case view.Actions:
		p, _ := m.fleet.Plan(m.top().list.Scope().PlanID)
		for _, a := range p.Actions {
			if a.ID == id {
				if a.ExecutionID == "" {
					m.setFlash("action not dispatched yet: no log", false)
					return nil
				}
				return m.openLog(data.LogTarget{Kind: data.LogExecution, ID: a.ExecutionID},
					"log "+data.Verb(a.Type)+" "+m.fleet.VMName(a.VMID))
			}
		}
	}
	return nil
}

func (m *Model) openLog(t data.LogTarget, crumb string) tea.Cmd {
	lv := logview.New(t, crumb, m.styles)
	cmd := lv.Start(m.ctx, m.src)
	m.push(page{crumb: crumb, log: &lv})
	return cmd
}

func (m *Model) onVMKey(k tea.KeyMsg, id string) tea.Cmd {
	name := m.fleet.VMName(id)
	v, _ := m.fleet.VM(id)
	switch {
	case key.Matches(k, m.keys.Console):
		return m.openLog(data.LogTarget{Kind: data.LogConsole, ID: id}, "console "+name)
	case key.Matches(k, m.keys.Logs):
		return m.latestLog(id)
	}
	op, title, body := data.OpStart, "", ""
	switch {
	case key.Matches(k, m.keys.Delete):
		op, title = data.OpDelete, "Delete VM "+name+"?"
		body = "This stops " + name + " and removes it and its disks from " + m.fleet.HostName(v.HostID) + ". It cannot be undone."
	case key.Matches(k, m.keys.Stop):
		op, title, body = data.OpStop, "Stop VM "+name+"?", "The guest is shut down; start it again with s."
	case key.Matches(k, m.keys.Reboot):
		op, title, body = data.OpReboot, "Reboot VM "+name+"?", "The guest restarts; its work is interrupted."
	}
	if m.refuseReadOnly(string(op)) {
		return nil
	}
	// Asking to confirm what would change nothing helps no one.
	switch {
	case op == data.OpStop && v.DesiredState == data.StateStopped:
		m.setFlash(name+" is already stopped", false)
		return nil
	case op == data.OpStart && v.DesiredState == data.StateRunning && v.ActualState == data.StateRunning:
		m.setFlash(name+" is already running", false)
		return nil
	case op == data.OpStart:
		return m.vmAction(id, op)
	}
	// Every action that takes a workload down is confirmed, like k9s
	// does for kills.
	m.askConfirm(string(op)+":"+id, title, body)
	return nil
}

func (m *Model) askConfirm(id, title, body string) {
	m.confirm = confirm.New(id, title, body, m.styles)
	m.confirm.SetSize(m.width, m.bodyHeight())
	m.mode = modeConfirm
}

// latestLog opens the log of the newest plan's execution for a VM.
func (m *Model) latestLog(vmID string) tea.Cmd {
	p, ok := m.fleet.LatestPlan(vmID)
	if !ok {
		m.setFlash(m.fleet.VMName(vmID)+": no plan yet, so no log", false)
		return nil
	}
	for _, a := range p.Actions {
		if a.VMID != vmID {
			continue
		}
		if a.ExecutionID == "" {
			m.setFlash("the latest action on "+m.fleet.VMName(vmID)+" is not dispatched yet: no log", false)
			return nil
		}
		return m.openLog(data.LogTarget{Kind: data.LogExecution, ID: a.ExecutionID},
			"log "+data.Verb(a.Type)+" "+m.fleet.VMName(vmID))
	}
	return nil
}

func (m *Model) vmAction(id string, op data.VMOp) tea.Cmd {
	if m.refuseReadOnly(string(op)) {
		return nil
	}
	src, ctx := m.src, m.ctx
	label := string(op) + " " + m.fleet.VMName(id)
	m.progress(label + ": requesting…")
	return func() tea.Msg {
		p, err := src.VMAction(ctx, id, op)
		return actionMsg{label: label, plan: p, err: err}
	}
}

func (m *Model) createVM(spec data.VMSpec) tea.Cmd {
	src, ctx := m.src, m.ctx
	m.progress("create vm " + spec.Name + ": requesting…")
	return func() tea.Msg {
		v, err := src.CreateVM(ctx, spec)
		return createdMsg{vm: v, placed: spec.HostID == "", err: err}
	}
}
