package palette

import (
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/tui/style"
)

var cmds = []Command{{Name: "sites"}, {Name: "hosts"}, {Name: "vms"}, {Name: "plans"}, {Name: "ctx"}, {Name: "q"}}

func TestResolve(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line   string
		choice int
		want   SubmitMsg
		ok     bool
	}{
		{"vms", 0, SubmitMsg{Command: "vms", Args: []string{}}, true},
		{"  VM  ", 0, SubmitMsg{Command: "vms", Args: []string{}}, true},
		{"p", 0, SubmitMsg{Command: "plans", Args: []string{}}, true},
		{"ctx prod", 0, SubmitMsg{Command: "ctx", Args: []string{"prod"}}, true},
		{"q", 0, SubmitMsg{Command: "q", Args: []string{}}, true},
		{"nope", 0, SubmitMsg{Command: "nope", Args: []string{}}, false},
		{"", 0, SubmitMsg{}, false},
	}
	for _, tt := range tests {
		got, ok := Resolve(cmds, tt.line, tt.choice)
		require.Equal(t, tt.ok, ok, tt.line)
		require.Equal(t, tt.want, got, tt.line)
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	m := New(cmds, style.Plain())
	for _, r := range "s" {
		m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
	require.Equal(t, []Command{{Name: "sites"}}, m.Matches())
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyTab})
	require.Equal(t, "sites", m.Value())
	_, cmd := m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	require.NotNil(t, cmd)
	require.Equal(t, SubmitMsg{Command: "sites", Args: []string{}}, cmd())
	_, cmd = m.Update(tea.KeyMsg{Type: tea.KeyEsc})
	require.Equal(t, CancelMsg{}, cmd())
}
