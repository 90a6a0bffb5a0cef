// Package tui is the nkudo operator console: a bubbletea program whose root
// model routes between resource pages (tenants, sites, hosts, VMs, plans,
// actions, logs and the VM console), overlays (command palette, filter,
// confirmations, the create form, help) and a status line.
//
// All I/O goes through a data.Source inside tea.Cmds that return typed
// messages; live changes arrive from the Source's event subscription (the
// server's SSE stream), never from a polling loop. Views are pure functions
// of the fleet model, so golden files pin them down at fixed sizes.
package tui
