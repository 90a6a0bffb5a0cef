package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func (a *app) contextCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "context",
		Short: "List, switch and delete contexts (server + credentials)",
		Args:  exactArgs(0, "a subcommand: list, use, current or delete"),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List the contexts; * marks the current one",
			Args:  exactArgs(0, "no arguments"),
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, _, err := a.loadConfig()
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "CURRENT\tNAME\tSERVER\tTENANT\tMODE")
				for _, c := range cfg.Contexts {
					cur, mode := "", "read-write"
					if c.Name == cfg.CurrentContext {
						cur = "*"
					}
					if c.ReadOnly {
						mode = "read-only"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cur, c.Name, c.Server, dash(c.TenantLabel()), mode)
				}
				return tw.Flush()
			},
		},
		&cobra.Command{
			Use:   "use NAME",
			Short: "Make a context current",
			Args:  exactArgs(1, "a context name"),
			RunE: func(cmd *cobra.Command, args []string) error {
				cfg, path, err := a.loadConfig()
				if err != nil {
					return err
				}
				if err := cfg.Use(args[0]); err != nil {
					return err
				}
				if err := cfg.Save(path); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Switched to context %q.\n", args[0])
				return nil
			},
		},
		&cobra.Command{
			Use:   "current",
			Short: "Print the current context's name",
			Args:  exactArgs(0, "no arguments"),
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := a.selectedContext()
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), c.Name)
				return nil
			},
		},
		&cobra.Command{
			Use:   "delete NAME",
			Short: "Delete a context",
			Args:  exactArgs(1, "a context name"),
			RunE: func(cmd *cobra.Command, args []string) error {
				cfg, path, err := a.loadConfig()
				if err != nil {
					return err
				}
				if err := cfg.Delete(args[0]); err != nil {
					return err
				}
				if err := cfg.Save(path); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Deleted context %q.\n", args[0])
				return nil
			},
		},
	)
	return cmd
}
