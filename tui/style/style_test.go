package style

import (
	"bytes"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
	"github.com/stretchr/testify/require"
)

func TestForState(t *testing.T) {
	t.Parallel()
	s := Plain()
	tests := []struct {
		state string
		want  lipgloss.Style
	}{
		{"running", s.OK}, {"succeeded", s.OK}, {"online", s.OK}, {"connected", s.OK},
		{"pending", s.Warn}, {"creating", s.Warn}, {"stopped", s.Warn}, {"reconnecting", s.Warn},
		{"failed", s.Bad}, {"unknown", s.Bad}, {"offline", s.Bad}, {"deleted", s.Bad},
		{"something new", s.Cell}, {"", s.Cell},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want.GetForeground(), s.ForState(tt.state).GetForeground())
			require.Equal(t, tt.want.GetBold(), s.ForState(tt.state).GetBold())
		})
	}
}

// TestNoColor checks that NO_COLOR output carries no escape sequences at
// all, while the selection stays visible (reverse video), and that a
// colour terminal gets colours.
func TestNoColor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		noColor    bool
		wantEscape bool
	}{
		{"no colour", true, false},
		{"colour terminal", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New(Options{Output: &bytes.Buffer{}, NoColor: tt.noColor})
			if !tt.noColor {
				s.Renderer.SetColorProfile(termenv.TrueColor)
			}
			for _, st := range []lipgloss.Style{s.Title, s.OK, s.Warn, s.Dim, s.Accent, s.Error} {
				out := st.Render("word")
				require.Contains(t, out, "word")
				require.Equal(t, tt.wantEscape, strings.Contains(out, "38;2;"), "foreground colour in %q", out)
				if tt.noColor {
					require.NotContains(t, out, "\x1b[38", "no colour escape at all")
				}
			}
			require.Equal(t, tt.noColor, s.Selected.GetReverse(), "selection without colour is reverse video")
			require.Equal(t, !tt.noColor, s.Header.GetUnderline())
		})
	}
}
