package logview

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/style"
)

func lines(from, n int) []data.LogLine {
	out := make([]data.LogLine, 0, n)
	for i := range n {
		out = append(out, data.LogLine{At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Text: fmt.Sprintf("line %d", from+i)})
	}
	return out
}

func TestFollowPauseResume(t *testing.T) {
	t.Parallel()
	m := New(data.LogTarget{ID: "x"}, "logs x", style.Plain())
	m.SetSize(40, 4) // 3 lines of log
	m, _ = m.Update(LinesMsg{ID: m.ID(), Batch: data.LogBatch{Lines: lines(1, 5)}})
	view := ansi.Strip(m.View())
	require.Contains(t, view, "line 5", "following shows the newest line")
	require.NotContains(t, view, "line 2")

	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyUp})
	require.False(t, m.Following())
	m, _ = m.Update(LinesMsg{ID: m.ID(), Batch: data.LogBatch{Lines: lines(6, 3)}})
	view = ansi.Strip(m.View())
	require.Contains(t, view, "paused")
	require.Contains(t, view, "line 2", "paused stays where the reader is")
	require.NotContains(t, view, "line 8")

	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("F")})
	require.True(t, m.Following())
	require.Contains(t, ansi.Strip(m.View()), "line 8")

	// Lines for another view are not this one's.
	m, _ = m.Update(LinesMsg{ID: m.ID() + 1000, Batch: data.LogBatch{Lines: lines(100, 1)}})
	require.Len(t, m.Lines(), 8)
	require.Len(t, strings.Split(m.View(), "\n"), 4)
}

func TestBoundedAndEnded(t *testing.T) {
	t.Parallel()
	m := New(data.LogTarget{ID: "x"}, "logs x", style.Plain())
	m.SetSize(60, 4)
	m.Append(lines(0, MaxLines+10))
	require.Len(t, m.Lines(), MaxLines)
	require.Equal(t, "line 10", m.Lines()[0].Text)
	m, _ = m.Update(LinesMsg{ID: m.ID(), Batch: data.LogBatch{Err: fmt.Errorf("execution gone")}})
	require.Contains(t, ansi.Strip(m.View()), "ended: execution gone")
}

func TestAppendReplacesPartialLine(t *testing.T) {
	t.Parallel()
	l := func(text string, partial bool) data.LogLine { return data.LogLine{Text: text, Partial: partial} }
	tests := []struct {
		name    string
		batches [][]data.LogLine
		want    []string
	}{
		{"whole lines accumulate", [][]data.LogLine{{l("a", false)}, {l("b", false)}}, []string{"a", "b"}},
		{"prompt is completed in place", [][]data.LogLine{{l("boot", false), l("login: ", true)}, {l("login: root", false)}}, []string{"boot", "login: root"}},
		{"partial grows", [][]data.LogLine{{l("lo", true)}, {l("login", true)}, {l("login: ", true)}}, []string{"login: "}},
		{"empty batch keeps the partial", [][]data.LogLine{{l("lo", true)}, {}}, []string{"lo"}},
		{"partial then more lines", [][]data.LogLine{{l("a", true)}, {l("ab", false), l("c", false)}}, []string{"ab", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := New(data.LogTarget{Kind: data.LogConsole, ID: "vm"}, "console vm", style.Plain())
			for _, b := range tt.batches {
				m.Append(b)
			}
			var got []string
			for _, line := range m.Lines() {
				got = append(got, line.Text)
			}
			require.Equal(t, tt.want, got)
		})
	}
}
