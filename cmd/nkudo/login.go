package main

import (
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kubedoio/n-kudo/internal/cliconfig"
	"github.com/kubedoio/n-kudo/internal/client"
)

func (a *app) loginCmd() *cobra.Command {
	var (
		server, caFile, apiKey, name, tenant string
		readOnly                             bool
	)
	cmd := &cobra.Command{
		Use:   "login --server URL --ca-file FILE --api-key KEY",
		Short: "Verify an API key against a server and save it as a context",
		Long: `login checks the key with a real call to the server, then saves the server,
its CA (inline, so the config stands alone) and the key as a context in
the config file (mode 0600) and makes it current.

The key may come from $NKUDO_API_KEY instead of --api-key, which keeps it
out of the shell history. An admin key needs --tenant to act on a tenant.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if apiKey == "" {
				apiKey = a.getenv("NKUDO_API_KEY")
			}
			if server == "" || caFile == "" || apiKey == "" {
				return usagef("--server, --ca-file and --api-key (or $NKUDO_API_KEY) are required")
			}
			u, err := url.Parse(server)
			if err != nil || u.Scheme != "https" || u.Host == "" {
				return usagef("--server %q must be an https:// URL", server)
			}
			if name == "" {
				name = u.Host
			}
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return fmt.Errorf("reading --ca-file: %w", err)
			}
			c, err := client.New(client.Config{BaseURL: server, CAPEM: pem, APIKey: apiKey, Tenant: tenant, UserAgent: "nkudo-cli"})
			if err != nil {
				return usageError{err}
			}
			defer c.Close()
			who, err := verifyKey(cmd, c, tenant)
			if err != nil {
				return err
			}
			cfg, path, err := a.loadConfig()
			if err != nil {
				return err
			}
			cc := cliconfig.Context{Name: name, Server: strings.TrimRight(server, "/"), CA: string(pem), APIKey: apiKey, Tenant: tenant, ReadOnly: readOnly}
			if err := cfg.Set(cc); err != nil {
				return usageError{err}
			}
			if err := cfg.Use(name); err != nil {
				return err
			}
			if err := cfg.Save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s as %s; context %q is now current.\n", cc.Server, who, name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "server URL, e.g. https://127.0.0.1:8443")
	f.StringVar(&caFile, "ca-file", "", "the server's CA certificate (<data-dir>/pki/ca.crt)")
	f.StringVar(&apiKey, "api-key", "", "API key (nk_…) or the admin key; default $NKUDO_API_KEY")
	f.StringVar(&name, "context", "", "name of the context to save (default: the server's host:port)")
	f.StringVar(&tenant, "tenant", "", "tenant id the admin key acts on")
	f.BoolVar(&readOnly, "read-only", false, "make the context refuse every mutating command")
	return cmd
}

// verifyKey makes one cheap authenticated call. A tenant key can list
// sites; the admin key without a tenant can only list tenants.
func verifyKey(cmd *cobra.Command, c *client.Client, tenant string) (string, error) {
	ctx := cmd.Context()
	_, err := c.ListSites(ctx, client.ListOptions{Limit: 1})
	switch {
	case err == nil && tenant != "":
		return "a verified key (tenant " + tenant + ")", nil
	case err == nil:
		return "a verified tenant key", nil
	case client.IsInvalidArgument(err) && tenant == "":
		if _, terr := c.ListTenants(ctx, client.ListOptions{Limit: 1}); terr != nil {
			return "", fmt.Errorf("verifying the key: %w", terr)
		}
		return "the admin key", nil
	default:
		return "", fmt.Errorf("verifying the key: %w", err)
	}
}
