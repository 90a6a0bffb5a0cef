package palette

import (
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/kubedoio/n-kudo/tui/render"
	"github.com/kubedoio/n-kudo/tui/style"
)

// Command is one palette entry.
type Command struct {
	Name string
	Help string
}

// SubmitMsg carries the line the user ran: the command (completed to a full
// name when the prefix was unambiguous) and its arguments.
type SubmitMsg struct {
	Command string
	Args    []string
}

// CancelMsg says the palette was dismissed.
type CancelMsg struct{}

// KeyMap is the palette's keys.
type KeyMap struct {
	Complete, Next, Prev, Submit, Cancel key.Binding
}

// DefaultKeyMap is tab to complete, enter to run, esc to close.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Complete: key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "complete")),
		Next:     key.NewBinding(key.WithKeys("down", "ctrl+n"), key.WithHelp("↓", "next match")),
		Prev:     key.NewBinding(key.WithKeys("up", "ctrl+p"), key.WithHelp("↑", "previous match")),
		Submit:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "run")),
		Cancel:   key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "close")),
	}
}

// ShortHelp implements help.KeyMap.
func (k KeyMap) ShortHelp() []key.Binding { return []key.Binding{k.Complete, k.Submit, k.Cancel} }

// FullHelp implements help.KeyMap.
func (k KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Complete, k.Next, k.Prev, k.Submit, k.Cancel}}
}

// Model is the palette.
type Model struct {
	KeyMap   KeyMap
	input    textinput.Model
	commands []Command
	matches  []Command
	choice   int
	width    int
	styles   style.Styles
}

// New returns a focused palette over commands.
func New(commands []Command, st style.Styles) Model {
	in := textinput.New()
	in.Prompt = ":"
	in.Cursor.SetMode(cursor.CursorStatic)
	in.Focus()
	m := Model{KeyMap: DefaultKeyMap(), input: in, commands: commands, styles: st, width: 80}
	m.match()
	return m
}

// SetSize sets the width.
func (m *Model) SetSize(w, _ int) {
	m.width = w
	m.input.Width = max(w-2, 1)
}

// Value is the current line.
func (m Model) Value() string { return m.input.Value() }

// Choice is the index of the highlighted match.
func (m Model) Choice() int { return m.choice }

// Submit resolves the current line, as enter does. Parents that must act
// before the next key (typed-ahead keys belong to the next mode) call it
// directly instead of waiting for SubmitMsg.
func (m Model) Submit() SubmitMsg {
	sub, _ := Resolve(m.commands, m.input.Value(), m.choice)
	return sub
}

// Matches lists the commands the current word completes to.
func (m Model) Matches() []Command { return m.matches }

func (m *Model) match() {
	word := strings.ToLower(strings.TrimSpace(m.input.Value()))
	if i := strings.IndexByte(word, ' '); i >= 0 {
		word = word[:i]
	}
	m.matches = m.matches[:0]
	for _, c := range m.commands {
		if strings.HasPrefix(c.Name, word) {
			m.matches = append(m.matches, c)
		}
	}
	m.choice = min(m.choice, max(len(m.matches)-1, 0))
}

// Resolve completes the first word of line to a command name: an exact
// name wins, else the single or chosen prefix match.
func Resolve(commands []Command, line string, choice int) (SubmitMsg, bool) {
	fields := strings.Fields(strings.ToLower(line))
	if len(fields) == 0 {
		return SubmitMsg{}, false
	}
	word := fields[0]
	var cands []string
	for _, c := range commands {
		if c.Name == word {
			return SubmitMsg{Command: c.Name, Args: fields[1:]}, true
		}
		if strings.HasPrefix(c.Name, word) {
			cands = append(cands, c.Name)
		}
	}
	if len(cands) == 0 {
		return SubmitMsg{Command: word, Args: fields[1:]}, false
	}
	return SubmitMsg{Command: cands[min(max(choice, 0), len(cands)-1)], Args: fields[1:]}, true
}

// Update handles keys.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	if km, ok := msg.(tea.KeyMsg); ok {
		switch {
		case key.Matches(km, m.KeyMap.Cancel):
			return m, func() tea.Msg { return CancelMsg{} }
		case key.Matches(km, m.KeyMap.Submit):
			sub := m.Submit()
			return m, func() tea.Msg { return sub }
		case key.Matches(km, m.KeyMap.Complete):
			if len(m.matches) > 0 {
				rest := ""
				if f := strings.Fields(m.input.Value()); len(f) > 1 {
					rest = " " + strings.Join(f[1:], " ")
				}
				m.input.SetValue(m.matches[m.choice].Name + rest)
				m.input.CursorEnd()
			}
			m.match()
			return m, nil
		case key.Matches(km, m.KeyMap.Next):
			if len(m.matches) > 0 {
				m.choice = (m.choice + 1) % len(m.matches)
			}
			return m, nil
		case key.Matches(km, m.KeyMap.Prev):
			if len(m.matches) > 0 {
				m.choice = (m.choice + len(m.matches) - 1) % len(m.matches)
			}
			return m, nil
		}
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	m.match()
	return m, cmd
}

// View draws the input line and, under it, the matching commands.
func (m Model) View() string {
	var b strings.Builder
	b.WriteString(render.Fit(m.input.View(), m.width))
	var parts []string
	for i, c := range m.matches {
		s := c.Name
		if i == m.choice {
			s = m.styles.Selected.Render(s)
		} else {
			s = m.styles.Accent.Render(s)
		}
		parts = append(parts, s+" "+m.styles.Dim.Render(c.Help))
	}
	line := strings.Join(parts, "  ")
	if len(parts) == 0 {
		line = m.styles.Error.Render("no such command")
	}
	b.WriteString("\n")
	b.WriteString(render.Fit(line, m.width))
	return b.String()
}
