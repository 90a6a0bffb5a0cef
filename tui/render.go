package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/lipgloss"

	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/render"
	"github.com/kubedoio/n-kudo/tui/view"
)

// View draws the whole screen: header, page (or overlay), input lines and
// the status line, exactly width × height cells.
func (m Model) View() string {
	lines := make([]string, 0, 4)
	lines = append(lines, m.header())
	lines = append(lines, m.body())
	switch {
	case m.mode == modePalette:
		lines = append(lines, m.palette.View())
	case m.mode == modeFilter:
		lines = append(lines, render.Fit(m.filter.View(), m.width))
	case m.top().list != nil && m.top().list.Filter() != "":
		lines = append(lines, render.Fit(m.styles.Accent.Render("/"+m.top().list.Filter())+
			m.styles.Dim.Render("  (esc clears)"), m.width))
	}
	lines = append(lines, m.statusLine())
	return strings.Join(lines, "\n")
}

func (m Model) crumbs() []string {
	root := m.pages[0]
	parts := []string{root.crumb}
	for _, p := range m.pages[1:] {
		parts = append(parts, p.crumb)
	}
	return parts
}

func (m Model) header() string {
	p := m.pages[len(m.pages)-1]
	right := ""
	if p.list != nil {
		kind := p.list.Kind().String()
		if p.list.Filter() != "" {
			right = fmt.Sprintf("%s %d/%d", kind, p.list.Visible(), p.list.Len())
		} else {
			right = fmt.Sprintf("%s %d", kind, p.list.Len())
		}
	}
	if m.opts.ReadOnly {
		right = "read-only · " + right
	}
	title := "n-kudo "
	avail := m.width - lipgloss.Width(title) - lipgloss.Width(right) - 1
	crumbs := render.Breadcrumbs(m.crumbs(), max(avail, 0))
	gap := max(m.width-lipgloss.Width(title)-lipgloss.Width(crumbs)-lipgloss.Width(right), 0)
	return render.Fit(m.styles.Title.Render(title)+m.styles.CrumbLast.Render(crumbs)+
		strings.Repeat(" ", gap)+m.styles.Dim.Render(right), m.width)
}

func (m Model) body() string {
	h := m.bodyHeight()
	var modal string
	switch m.mode {
	case modeConfirm:
		modal = m.confirm.View()
	case modeForm:
		modal = m.form.View()
	case modeToken:
		modal = m.tokenView()
	case modeHelp:
		modal = m.helpView()
	case modeMessages:
		modal = m.messagesView(h)
	}
	if modal != "" {
		return lipgloss.Place(m.width, h, lipgloss.Center, lipgloss.Center, modal)
	}
	p := m.pages[len(m.pages)-1]
	if p.log != nil {
		return p.log.View()
	}
	return p.list.View()
}

func (m Model) tokenView() string {
	t := m.token
	content := lipgloss.JoinVertical(lipgloss.Left,
		m.styles.Title.Render("Enrollment token for "+t.site),
		m.styles.Dim.Render("Shown once. Expires "+t.token.ExpiresAt.UTC().Format("2006-01-02 15:04 MST")+"."),
		"",
		t.token.Token,
		"",
		m.styles.Dim.Render("nkudo-agent enroll --token <token> --server … · c copy · esc close"),
	)
	return m.styles.Modal.Render(content)
}

func (m Model) helpView() string {
	groups := [][]key.Binding{m.keys.navigation()}
	if !m.opts.ReadOnly {
		groups = append(groups, m.keys.actions())
	}
	p := m.pages[len(m.pages)-1]
	if p.log != nil {
		groups = append(groups, p.log.KeyMap.FullHelp()...)
	} else {
		groups = append(groups, p.list.Table().KeyMap.FullHelp()...)
	}
	h := m.help
	h.Width = max(m.width-6, 20)
	title := "Keys"
	if m.opts.ReadOnly {
		title += " (read-only: actions disabled)"
	}
	return m.styles.Modal.Render(lipgloss.JoinVertical(lipgloss.Left,
		m.styles.Title.Render(title), "", h.FullHelpView(groups), "",
		m.styles.Dim.Width(h.Width).Render("commands: "+commandNames()+" · esc closes")))
}

// messagesView is the message log, newest last, each message whole
// (wrapped), as many as fit in h lines.
func (m Model) messagesView(h int) string {
	w := max(m.width-6, 20)
	wrap := lipgloss.NewStyle().Width(w)
	var lines []string
	for i := len(m.messages) - 1; i >= 0; i-- {
		e := m.messages[i]
		txt := e.at.UTC().Format("15:04:05") + " " + e.text
		if e.bad {
			txt = e.at.UTC().Format("15:04:05") + " " + m.styles.Error.Render(e.text)
		}
		entry := strings.Split(wrap.Render(txt), "\n")
		if len(lines)+len(entry) > max(h-6, 1) {
			break
		}
		lines = append(entry, lines...)
	}
	if len(lines) == 0 {
		lines = []string{m.styles.Dim.Render("no messages yet")}
	}
	return m.styles.Modal.Render(lipgloss.JoinVertical(lipgloss.Left,
		append(append([]string{m.styles.Title.Render("Messages"), ""}, lines...), "", m.styles.Dim.Render("esc closes"))...))
}

func commandNames() string {
	names := make([]string, 0, len(commands))
	for _, c := range commands {
		names = append(names, ":"+c.Name)
	}
	return strings.Join(names, " ")
}

func (m Model) connView() string {
	switch m.conn {
	case data.Connected:
		return m.styles.OK.Render("● connected")
	case data.Reconnecting:
		return m.styles.Warn.Render("◌ reconnecting")
	case data.Offline:
		s := "○ offline"
		if !m.loadedAt.IsZero() {
			s += " · data from " + m.loadedAt.UTC().Format("15:04:05")
		}
		return m.styles.Bad.Render(s)
	}
	return m.styles.Warn.Render("◌ connecting")
}

func (m Model) message() string {
	if m.status.text != "" {
		if m.status.kind != statusInfo {
			return m.styles.Error.Render(m.status.text)
		}
		return m.status.text
	}
	if m.watch == "" {
		return ""
	}
	p, ok := m.fleet.Plan(m.watch)
	if !ok {
		return m.watchName
	}
	done, total := p.Progress()
	return m.watchName + ": " + m.styles.ForState(p.Status).Render(p.Status) + " " + render.Progress(done, total, 4)
}

func (m Model) statusLine() string {
	sep := m.styles.Dim.Render(" │ ")
	ctx := m.opts.ContextName
	if ctx == "" {
		ctx = "-"
	}
	tenant := m.tenant
	if tenant == "" {
		tenant = "-"
	}
	left := " " + m.styles.Accent.Render(ctx) + sep + tenant + sep + m.connView()
	if m.conn == data.Reconnecting || m.conn == data.Offline {
		left += m.styles.Dim.Render(" (showing last data)")
	}
	if msg := m.message(); msg != "" {
		left += sep + msg
	}
	right := m.styles.Dim.Render("? help ")
	gap := m.width - lipgloss.Width(left) - lipgloss.Width(right)
	if gap < 1 {
		return render.Fit(left, m.width)
	}
	return left + strings.Repeat(" ", gap) + right
}

// kindOf is the kind of the page on top, for tests.
func (m Model) kindOf() (view.Kind, bool) {
	if l := m.pages[len(m.pages)-1].list; l != nil {
		return l.Kind(), true
	}
	return 0, false
}
