package tui

import "github.com/charmbracelet/bubbles/key"

// KeyMap is the console's global and action keys.
type KeyMap struct {
	Quit, Palette, Filter, Help, Back, Enter, Refresh   key.Binding
	Start, Stop, Reboot, Delete, Create, Console, Token key.Binding
	Logs                                                key.Binding
}

// DefaultKeyMap follows k9s where it can.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Quit:    key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit (:q)")),
		Palette: key.NewBinding(key.WithKeys(":"), key.WithHelp(":", "command")),
		Filter:  key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Help:    key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Back:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back/clear filter")),
		Enter:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "drill in")),
		Refresh: key.NewBinding(key.WithKeys("ctrl+r"), key.WithHelp("ctrl+r", "re-list")),
		Start:   key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "start vm")),
		Stop:    key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "stop vm")),
		Reboot:  key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "reboot vm")),
		Delete:  key.NewBinding(key.WithKeys("ctrl+d", "D"), key.WithHelp("D", "delete vm (or ctrl+d)")),
		Create:  key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "new vm")),
		Console: key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "vm console")),
		Token:   key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "enrollment token")),
		Logs:    key.NewBinding(key.WithKeys("l"), key.WithHelp("l", "latest plan's log")),
	}
}

func (k KeyMap) navigation() []key.Binding {
	return []key.Binding{k.Enter, k.Back, k.Palette, k.Filter, k.Refresh, k.Help, k.Quit}
}

func (k KeyMap) actions() []key.Binding {
	return []key.Binding{k.Start, k.Stop, k.Reboot, k.Delete, k.Create, k.Console, k.Logs, k.Token}
}
