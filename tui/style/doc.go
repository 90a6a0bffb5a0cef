// Package style holds every colour and text style of the console in one
// place, built on one lipgloss renderer so NO_COLOR and the terminal's
// background are decided once.
package style
