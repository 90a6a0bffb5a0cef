package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kubedoio/n-kudo/internal/cliconfig"
	"github.com/kubedoio/n-kudo/internal/devstack"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/hypervisor/cloudhypervisor"
)

// devContext is the context `nkudo dev` writes and makes current.
const devContext = "dev"

type devFlags struct {
	dataDir string
	agents  int
	addr    string
	noTUI   bool
}

func (a *app) devCmd() *cobra.Command {
	var f devFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole stack locally: server, agents, console",
		Long: `Run nkudo-server on loopback with SQLite in a data dir, bootstrap a
tenant, site and key, enroll --agents local agents through the real
enrollment flow and WebSocket channel, write a "dev" context and make it
current, then open the console.

Agents use the simulated hypervisor (labelled "simulated" everywhere)
unless cloud-hypervisor is on PATH. Without --data-dir everything lives in
a temporary directory removed on exit; with it, a later run reuses the
same tenant, key and agents. Ctrl-C stops everything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runDev(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", "", "keep the stack's state here (default: a temporary dir removed on exit)")
	fl.IntVar(&f.agents, "agents", 2, "number of local agents")
	fl.StringVar(&f.addr, "addr", "127.0.0.1:0", "server listen address (loopback; port 0 picks a free one)")
	fl.BoolVar(&f.noTUI, "no-tui", false, "keep running headless (for scripts) instead of opening the console")
	return cmd
}

func (a *app) runDev(cmd *cobra.Command, f devFlags) error {
	if f.agents < 0 || f.agents > devstack.MaxAgents {
		return usagef("--agents must be between 0 and %d", devstack.MaxAgents)
	}
	if err := checkLoopback(f.addr); err != nil {
		return err
	}
	dataDir := f.dataDir
	if dataDir == "" {
		tmp, err := os.MkdirTemp("", "nkudo-dev-")
		if err != nil {
			return fmt.Errorf("creating a temporary data dir: %w", err)
		}
		defer os.RemoveAll(tmp)
		dataDir = tmp
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	release, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer release()
	// Logs go to a file: the console owns the terminal.
	logPath := filepath.Join(dataDir, "dev.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening log file: %w", err)
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, nil))

	provider, hvName := devProvider(exec.LookPath)
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	fmt.Fprintf(a.stderr, "nkudo dev: starting a server and %d agent(s) (%s) in %s\n", f.agents, hvName, dataDir)
	stack, err := devstack.Start(ctx, devstack.Options{
		DataDir: dataDir, Agents: f.agents, Addr: f.addr, Provider: provider, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("starting dev stack (log: %s): %w", logPath, err)
	}
	prev, err := a.writeDevContext(stack)
	if err != nil {
		cancel()
		_ = stack.Wait()
		return err
	}
	defer a.restoreContext(a.contextName, prev)
	fmt.Fprintf(a.stderr, "nkudo dev: server %s, context %q is current, logs in %s\n", stack.URL, a.contextName, logPath)
	fmt.Fprintf(a.stderr, "nkudo dev: VM images come from %s (try --disk-image %s)\n", stack.ImageDir, filepath.Join(stack.ImageDir, devstack.SampleImage))

	if f.noTUI {
		fmt.Fprintln(a.stdout, "nkudo dev: ready; press Ctrl-C to stop")
		if err := stack.Wait(); err != nil {
			return fmt.Errorf("dev stack stopped (log: %s): %w", logPath, err)
		}
		fmt.Fprintln(a.stderr, "nkudo dev: stopped")
		return nil
	}
	consoleErr := a.startConsole(cmd)
	cancel()
	if err := stack.Wait(); err != nil {
		return fmt.Errorf("dev stack stopped (log: %s): %w", logPath, err)
	}
	return consoleErr
}

// writeDevContext saves this stack's context (CA inline, since a
// temporary data dir disappears with the stack) and makes it current: "dev",
// or dev-N when a running stack holds "dev". It returns the context that
// was current before, for restoreContext.
func (a *app) writeDevContext(s *devstack.Stack) (prev string, err error) {
	cfg, path, err := a.loadConfig()
	if err != nil {
		return "", err
	}
	prev = cfg.CurrentContext
	name := devContextName(cfg)
	if err := cfg.Set(cliconfig.Context{
		Name: name, Server: s.URL, CA: string(s.CAPEM), APIKey: s.APIKey, TenantName: devstack.TenantName,
	}); err != nil {
		return "", fmt.Errorf("writing dev context: %w", err)
	}
	if err := cfg.Use(name); err != nil {
		return "", err
	}
	if err := cfg.Save(path); err != nil {
		return "", fmt.Errorf("saving %s: %w", path, err)
	}
	a.contextName = name
	return prev, nil
}

// restoreContext makes prev current again when the stack's context still
// is (the operator did not switch meanwhile): a stopped stack's context
// points at nothing.
func (a *app) restoreContext(ours, prev string) {
	cfg, path, err := a.loadConfig()
	if err != nil || cfg.CurrentContext != ours || prev == ours {
		return
	}
	if _, err := cfg.Get(prev); err != nil {
		return
	}
	if err := cfg.Use(prev); err != nil {
		return
	}
	if err := cfg.Save(path); err != nil {
		fmt.Fprintf(a.stderr, "nkudo dev: restoring context %q: %v\n", prev, err)
		return
	}
	fmt.Fprintf(a.stderr, "nkudo dev: context %q is current again\n", prev)
}

// devProvider picks the agents' hypervisor: Cloud Hypervisor when its
// binary is on PATH, otherwise the simulated one. It reports the choice
// for the banner.
func devProvider(lookPath func(string) (string, error)) (devstack.ProviderFunc, string) {
	bin, err := lookPath("cloud-hypervisor")
	if err != nil {
		return devstack.SimProvider, "simulated hypervisor"
	}
	return func(_ context.Context, runtimeDir string, log *slog.Logger) (hypervisor.Provider, error) {
		return cloudhypervisor.New(cloudhypervisor.Options{Binary: bin, RuntimeDir: runtimeDir, Logger: log})
	}, "cloud-hypervisor " + bin
}
