package remote

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/tui/data"
)

func TestConsoleLines(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 27, 23, 0, 0, 0, time.UTC)
	type line struct {
		text    string
		partial bool
	}
	tests := []struct {
		name   string
		chunks []string
		// want is what each chunk returns.
		want [][]line
	}{
		{"whole lines", []string{"a\nb\n"}, [][]line{{{"a", false}, {"b", false}}}},
		{"prompt stays partial", []string{"boot\nlogin: "}, [][]line{{{"boot", false}, {"login: ", true}}}},
		{"partial is continued", []string{"log", "in: ", "root\n"}, [][]line{{{"log", true}}, {{"login: ", true}}, {{"login: root", false}}}},
		{"crlf", []string{"a\r\nb\r\n"}, [][]line{{{"a", false}, {"b", false}}}},
		{"carriage return overwrites", []string{"50%\r100%\n"}, [][]line{{{"100%", false}}}},
		{"escape sequences dropped", []string{"\x1b[1;32mok\x1b[0m\n"}, [][]line{{{"ok", false}}}},
		{"controls dropped, tabs spaced", []string{"a\x07\tb\x00\n"}, [][]line{{{"a b", false}}}},
		{"utf-8 split across chunks", []string{"caf\xc3", "\xa9\n"}, [][]line{{{"caf\uFFFD", true}}, {{"café", false}}}},
		{"empty chunk", []string{""}, [][]line{nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c ConsoleLines
			for i, ch := range tt.chunks {
				var got []line
				for _, l := range c.Write([]byte(ch), t0) {
					require.Equal(t, t0, l.At)
					got = append(got, line{l.Text, l.Partial})
				}
				require.Equal(t, tt.want[i], got, "chunk %d", i)
			}
		})
	}
}

func TestConsoleLinesBoundsAnEndlessLine(t *testing.T) {
	t.Parallel()
	var c ConsoleLines
	var got []data.LogLine
	for range 3 {
		got = c.Write([]byte(strings.Repeat("é", maxConsoleLine/2)), time.Now())
	}
	require.NotEmpty(t, got)
	for _, l := range got {
		require.LessOrEqual(t, len(l.Text), maxConsoleLine)
		require.NotContains(t, l.Text, "\uFFFD", "a cut never splits a rune")
	}
	require.True(t, got[len(got)-1].Partial)
	require.LessOrEqual(t, len(c.pending), maxConsoleLine)
}
