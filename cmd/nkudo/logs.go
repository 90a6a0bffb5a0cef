package main

import (
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/kubedoio/n-kudo/internal/client"
)

func (a *app) logsCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs EXECUTION",
		Short: "Print an execution's log (-f follows it live)",
		Long: `logs prints the log lines of an execution (an action of a plan; its id is
in 'nkudo get plans -o json' and in the output of --wait). -f keeps
following until the execution ends, resuming after network trouble
without repeating a line.`,
		Args: exactArgs(1, "an execution id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := uuid.Parse(args[0])
			if err != nil {
				return usagef("%q is not an execution id", args[0])
			}
			c, err := a.client(readAccess)
			if err != nil {
				return err
			}
			defer c.Close()
			w := cmd.OutOrStdout()
			if follow {
				return c.FollowLogs(cmd.Context(), id, 0, func(l client.LogLine) error {
					return printLogLine(w, l)
				})
			}
			for l, err := range c.AllLogs(cmd.Context(), id, 0) {
				if err != nil {
					return err
				}
				if err := printLogLine(w, l); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the log until the execution ends")
	return cmd
}

func printLogLine(w io.Writer, l client.LogLine) error {
	_, err := fmt.Fprintf(w, "%s %-6s %s\n", l.At.UTC().Format(time.RFC3339), l.Stream, l.Message)
	return err
}
