package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubedoio/n-kudo/internal/version"
)

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  exactArgs(0, "no arguments"),
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version.String("nkudo"))
		},
	}
}
