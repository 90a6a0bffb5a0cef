package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubedoio/n-kudo/internal/cliconfig"
	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/tui"
	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/remote"
)

// startConsole is what `nkudo` without arguments does: open the TUI on
// the selected context (--context or the current one).
func (a *app) startConsole(cmd *cobra.Command) error {
	cfg, path, err := a.loadConfig()
	if err != nil {
		return err
	}
	cc, err := a.selectedContext()
	if err != nil {
		return err
	}
	src, err := consoleSource(cc)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(cfg.Contexts))
	for _, c := range cfg.Contexts {
		names = append(names, c.Name)
	}
	current := src
	defer func() { current.Close() }()
	return tui.Run(cmd.Context(), tui.Options{
		Source:      src,
		ContextName: cc.Name,
		Tenant:      cc.TenantLabel(),
		ReadOnly:    cc.ReadOnly,
		Contexts:    names,
		// :ctx NAME switches the console to another context and makes it
		// current, as k9s does with kubeconfig.
		Switch: func(ctx context.Context, name string) (data.Source, string, error) {
			next, err := cfg.Get(name)
			if err != nil {
				return nil, "", err
			}
			// The console's read-only guard is fixed at start; never let a
			// switch quietly change it either way.
			if next.ReadOnly != cc.ReadOnly {
				return nil, "", fmt.Errorf("context %q has read-only %t; restart with 'nkudo --context %s'", name, next.ReadOnly, name)
			}
			s, err := consoleSource(next)
			if err != nil {
				return nil, "", err
			}
			if err := cfg.Use(name); err == nil {
				if err := cfg.Save(path); err != nil {
					fmt.Fprintf(a.stderr, "nkudo: saving current context: %v\n", err)
				}
			}
			current.Close()
			current = s
			return s, next.TenantLabel(), nil
		},
	})
}

// consoleSource connects the TUI's data layer to a context's server.
func consoleSource(cc cliconfig.Context) (*remote.Source, error) {
	pem, err := cc.CAPEM()
	if err != nil {
		return nil, err
	}
	src, err := remote.New(client.Config{BaseURL: cc.Server, CAPEM: pem, APIKey: cc.APIKey, Tenant: cc.Tenant, UserAgent: "nkudo-console"}, remote.Options{})
	if err != nil {
		return nil, fmt.Errorf("connecting console to %s: %w", cc.Server, err)
	}
	return src, nil
}
