package confirm

import (
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/tui/style"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	k := func(s string) tea.KeyMsg {
		switch s {
		case "enter":
			return tea.KeyMsg{Type: tea.KeyEnter}
		case "esc":
			return tea.KeyMsg{Type: tea.KeyEsc}
		case "right":
			return tea.KeyMsg{Type: tea.KeyRight}
		}
		return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
	}
	tests := []struct {
		keys    []string
		ok      bool
		decided bool
	}{
		{[]string{"enter"}, false, true}, // the default is no
		{[]string{"y"}, true, true},
		{[]string{"n"}, false, true},
		{[]string{"esc"}, false, true},
		{[]string{"right", "enter"}, true, true},
		{[]string{"right", "right", "enter"}, false, true},
		{[]string{"z"}, false, false},
	}
	for _, tt := range tests {
		m := New("delete:vm", "Delete VM web-1?", "gone for good", style.Plain())
		var ok, decided bool
		for _, s := range tt.keys {
			ok, decided = m.Decide(k(s))
		}
		require.Equal(t, tt.ok, ok, tt.keys)
		require.Equal(t, tt.decided, decided, tt.keys)
	}
	m := New("delete:vm", "Delete VM web-1?", "gone for good", style.Plain())
	_, cmd := m.Update(k("y"))
	require.Equal(t, ResultMsg{ID: "delete:vm", OK: true}, cmd())
	require.Contains(t, m.View(), "Delete VM web-1?")
}
