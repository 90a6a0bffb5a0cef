package style

import (
	"io"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// Adaptive colours: the first of each pair is for light backgrounds, the
// second for dark ones, so text stays readable on both.
var (
	colAccent = lipgloss.AdaptiveColor{Light: "#005F87", Dark: "#5FD7FF"}
	colOK     = lipgloss.AdaptiveColor{Light: "#006400", Dark: "#87D787"}
	colWarn   = lipgloss.AdaptiveColor{Light: "#875F00", Dark: "#FFD75F"}
	colBad    = lipgloss.AdaptiveColor{Light: "#AF0000", Dark: "#FF5F5F"}
	colDim    = lipgloss.AdaptiveColor{Light: "#6C6C6C", Dark: "#8A8A8A"}
	colSelBG  = lipgloss.AdaptiveColor{Light: "#D7E7F7", Dark: "#264F78"}
	colSelFG  = lipgloss.AdaptiveColor{Light: "#000000", Dark: "#FFFFFF"}
	colBarBG  = lipgloss.AdaptiveColor{Light: "#E4E4E4", Dark: "#303030"}
	colBarFG  = lipgloss.AdaptiveColor{Light: "#1C1C1C", Dark: "#D0D0D0"}
)

// Styles is the console's palette. The zero value is not usable; call New.
type Styles struct {
	Renderer *lipgloss.Renderer

	Title     lipgloss.Style
	Crumb     lipgloss.Style
	CrumbLast lipgloss.Style
	Header    lipgloss.Style
	Cell      lipgloss.Style
	Selected  lipgloss.Style
	Dim       lipgloss.Style
	OK        lipgloss.Style
	Warn      lipgloss.Style
	Bad       lipgloss.Style
	Accent    lipgloss.Style
	StatusBar lipgloss.Style
	Modal     lipgloss.Style
	HelpKey   lipgloss.Style
	HelpDesc  lipgloss.Style
	Error     lipgloss.Style
}

// Options choose the renderer's output and colour handling.
type Options struct {
	// Output is where the program draws (for terminal detection).
	Output io.Writer
	// NoColor forces plain text (NO_COLOR, or a dumb terminal).
	NoColor bool
}

// New builds the styles for one program.
func New(o Options) Styles {
	r := lipgloss.NewRenderer(o.Output)
	if o.NoColor {
		r.SetColorProfile(termenv.Ascii)
	}
	s := Styles{Renderer: r}
	s.Title = r.NewStyle().Bold(true).Foreground(colAccent)
	s.Crumb = r.NewStyle().Foreground(colDim)
	s.CrumbLast = r.NewStyle().Bold(true).Foreground(colAccent)
	s.Header = r.NewStyle().Bold(true).Underline(!o.NoColor).Foreground(colAccent)
	s.Cell = r.NewStyle()
	// Reverse keeps the selection visible when colours are off.
	if o.NoColor {
		s.Selected = r.NewStyle().Reverse(true)
	} else {
		s.Selected = r.NewStyle().Background(colSelBG).Foreground(colSelFG)
	}
	s.Dim = r.NewStyle().Foreground(colDim)
	s.OK = r.NewStyle().Foreground(colOK)
	s.Warn = r.NewStyle().Foreground(colWarn)
	s.Bad = r.NewStyle().Foreground(colBad).Bold(true)
	s.Accent = r.NewStyle().Foreground(colAccent)
	s.StatusBar = r.NewStyle().Background(colBarBG).Foreground(colBarFG)
	s.Modal = r.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(colAccent).Padding(0, 1)
	s.HelpKey = r.NewStyle().Bold(true).Foreground(colAccent)
	s.HelpDesc = r.NewStyle().Foreground(colDim)
	s.Error = r.NewStyle().Foreground(colBad)
	return s
}

// Plain returns colourless styles, for tests and golden files.
func Plain() Styles { return New(Options{Output: io.Discard, NoColor: true}) }

// ForState picks the style of a VM, plan or action state word.
func (s Styles) ForState(state string) lipgloss.Style {
	switch state {
	case "running", "succeeded", "connected", "online":
		return s.OK
	case "pending", "dispatched", "creating", "stopped", "disconnected", "reconnecting", "connecting":
		return s.Warn
	case "failed", "unknown", "offline", "cancelled", "deleted":
		return s.Bad
	}
	return s.Cell
}
