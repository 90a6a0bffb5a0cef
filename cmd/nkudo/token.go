package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubedoio/n-kudo/internal/client"
)

func (a *app) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Enrollment tokens for new hosts",
		Args:  exactArgs(0, "a subcommand: create"),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var (
		site, output string
		ttl          time.Duration
		maxUses      int
	)
	create := &cobra.Command{
		Use:   "create --site S",
		Short: "Create an enrollment token for a site (shown once)",
		Long: `create issues a token that lets agents enroll into the site:
  nkudo-agent enroll --server URL --token TOKEN --ca-file ca.crt
The token is shown once. With -o json the API's object is printed.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if site == "" {
				return usagef("--site is required")
			}
			if output != "text" && output != "json" {
				return usagef("-o %q: want text or json", output)
			}
			if maxUses < 0 || ttl < 0 {
				return usagef("--ttl and --max-uses must not be negative")
			}
			c, err := a.client(writeAccess)
			if err != nil {
				return err
			}
			defer c.Close()
			s, err := resolveSite(cmd.Context(), c, site)
			if err != nil {
				return err
			}
			tok, err := c.CreateEnrollmentToken(cmd.Context(), s.ID, client.CreateEnrollmentTokenRequest{TTL: ttl, MaxUses: maxUses})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				return printJSON(w, tok)
			}
			fmt.Fprintf(w, "Token:    %s\n", tok.Token)
			fmt.Fprintf(w, "Site:     %s (%s)\n", s.Name, s.ID)
			fmt.Fprintf(w, "Expires:  %s (in %s)\n", tok.ExpiresAt.UTC().Format(time.RFC3339), humanDuration(tok.ExpiresAt.Sub(a.now())))
			fmt.Fprintf(w, "Max uses: %d\n", tok.MaxUses)
			fmt.Fprintln(w, "The token is shown only once.")
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&site, "site", "", "site (id or name)")
	f.DurationVar(&ttl, "ttl", 0, "lifetime, 1m to 24h (default: the server's, 15m)")
	f.IntVar(&maxUses, "max-uses", 0, "number of enrollments allowed (default 1)")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.AddCommand(create)
	return cmd
}
