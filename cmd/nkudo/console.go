package main

import (
	"github.com/spf13/cobra"
)

// startConsole is what `nkudo` without arguments does: the hook for the
// TUI. tui.Run exists, but it needs a tui/data.Source, and the adapter
// from internal/client to that interface is the TUI's to write. Once it
// lands, this becomes:
//
//	cc, err := a.selectedContext()          // --context or current
//	c, err := a.client(readAccess)          // the API client for it
//	return tui.Run(cmd.Context(), tui.Options{
//		Source: <adapter>(c), ContextName: cc.Name, Tenant: cc.Tenant,
//		ReadOnly: cc.ReadOnly, Contexts: <names from a.loadConfig()>,
//	})
//
// Until then the console is the CLI, so it prints the help.
func (a *app) startConsole(cmd *cobra.Command) error {
	return cmd.Help()
}
