package confirm

import (
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/kubedoio/n-kudo/tui/style"
)

// ResultMsg is the answer, tagged with the ID the dialog was opened with so
// only the asker acts on it.
type ResultMsg struct {
	ID string
	OK bool
}

// KeyMap is the dialog's keys.
type KeyMap struct {
	Yes, No, Toggle, Submit key.Binding
}

// DefaultKeyMap is y/n, arrows to move, enter to answer.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Yes:    key.NewBinding(key.WithKeys("y", "Y"), key.WithHelp("y", "yes")),
		No:     key.NewBinding(key.WithKeys("n", "N", "esc"), key.WithHelp("n/esc", "no")),
		Toggle: key.NewBinding(key.WithKeys("left", "right", "tab", "h", "l"), key.WithHelp("←/→", "choose")),
		Submit: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "answer")),
	}
}

// ShortHelp implements help.KeyMap.
func (k KeyMap) ShortHelp() []key.Binding { return []key.Binding{k.Yes, k.No, k.Submit} }

// FullHelp implements help.KeyMap.
func (k KeyMap) FullHelp() [][]key.Binding { return [][]key.Binding{{k.Yes, k.No, k.Toggle, k.Submit}} }

// Model is the dialog.
type Model struct {
	KeyMap KeyMap
	id     string
	title  string
	body   string
	yes    bool
	width  int
	styles style.Styles
}

// New asks title (e.g. "Delete VM web-1?") with an explanatory body.
func New(id, title, body string, st style.Styles) Model {
	return Model{KeyMap: DefaultKeyMap(), id: id, title: title, body: body, styles: st, width: 80}
}

// SetSize sets the available width.
func (m *Model) SetSize(w, _ int) { m.width = w }

// ID is the tag of this dialog.
func (m Model) ID() string { return m.id }

func (m Model) answer(ok bool) tea.Cmd {
	id := m.id
	return func() tea.Msg { return ResultMsg{ID: id, OK: ok} }
}

// Decide applies a key: it reports the answer and whether the key gave one.
// Parents that must act before the next key call it instead of waiting for
// ResultMsg.
func (m *Model) Decide(km tea.KeyMsg) (ok, decided bool) {
	switch {
	case key.Matches(km, m.KeyMap.Yes):
		return true, true
	case key.Matches(km, m.KeyMap.No):
		return false, true
	case key.Matches(km, m.KeyMap.Toggle):
		m.yes = !m.yes
	case key.Matches(km, m.KeyMap.Submit):
		return m.yes, true
	}
	return false, false
}

// Update handles keys and reports the answer as a ResultMsg.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	if yes, decided := m.Decide(km); decided {
		return m, m.answer(yes)
	}
	return m, nil
}

// View draws the dialog box.
func (m Model) View() string {
	yes, no := "  Yes  ", "  No  "
	if m.yes {
		yes = m.styles.Selected.Render("[ Yes ]")
		no = " " + no + " "
	} else {
		no = m.styles.Selected.Render("[ No ]")
		yes = " " + yes + " "
	}
	w := min(max(lipgloss.Width(m.title), lipgloss.Width(m.body), 30), max(m.width-4, 10))
	content := lipgloss.JoinVertical(lipgloss.Left,
		m.styles.Bad.Render(m.title),
		m.styles.Cell.Width(w).Render(m.body),
		"",
		yes+"  "+no+"   "+m.styles.Dim.Render("y/n"),
	)
	return m.styles.Modal.Render(content)
}
