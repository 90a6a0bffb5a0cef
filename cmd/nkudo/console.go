package main

import (
	"github.com/spf13/cobra"
)

// startConsole is what `nkudo` without arguments does. It is the hook
// for the TUI (package tui): once tui.Run exists it is wired here as
//
//	return tui.Run(cmd.Context(), tui.Options{...from a.selectedContext()...})
//
// Until then the console is the CLI, so it prints the help.
func (a *app) startConsole(cmd *cobra.Command) error {
	return cmd.Help()
}
