package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubedoio/n-kudo/internal/cliconfig"
	"github.com/kubedoio/n-kudo/internal/client"
)

// app holds what every command needs, passed explicitly: the standard
// streams, the environment, the clock and the selected context.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	// isTerminal reports whether stdin is an interactive terminal, so
	// destructive commands can prompt instead of failing.
	isTerminal func(io.Reader) bool
	// contextName is the --context flag.
	contextName string
	// pollEvery is how often --wait re-reads a plan.
	pollEvery time.Duration
	// retryFor is how long a followed stream (logs -f) keeps retrying an
	// unreachable server before the command gives up with exit 5.
	retryFor time.Duration
}

func newApp(stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) *app {
	return &app{
		stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv,
		now:        time.Now,
		isTerminal: stdinIsTerminal,
		pollEvery:  500 * time.Millisecond,
		retryFor:   30 * time.Second,
	}
}

func stdinIsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// run executes args and returns the exit code, printing any error once
// as `nkudo: <message> (<code>, request <id>)`.
func (a *app) run(ctx context.Context, args []string) int {
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(a.stderr, "nkudo: "+err.Error())
	code := exitCode(err)
	if code == exitUsage && !client.IsInvalidArgument(err) {
		// The server's own refusal already says what to fix.
		fmt.Fprintln(a.stderr, "Run 'nkudo --help' for usage.")
	}
	return code
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "nkudo",
		Short: "The n-kudo operator console",
		Long: `nkudo is the operator console of n-kudo: run without arguments it opens
the TUI; with a command it is a scriptable CLI (-o json for machines).

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.startConsole(cmd)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&a.contextName, "context", "", "context to use instead of the current one (see 'nkudo context list')")
	root.AddCommand(
		a.versionCmd(),
		a.loginCmd(),
		a.contextCmd(),
		a.getCmd(),
		a.vmCmd(),
		a.logsCmd(),
		a.tokenCmd(),
		a.devCmd(),
	)
	for _, c := range root.Commands() {
		c.SetFlagErrorFunc(root.FlagErrorFunc())
	}
	return root
}

// configPath locates the contexts file.
func (a *app) configPath() (string, error) {
	return cliconfig.Path(a.getenv)
}

// loadConfig reads the contexts file.
func (a *app) loadConfig() (*cliconfig.Config, string, error) {
	path, err := a.configPath()
	if err != nil {
		return nil, "", err
	}
	cfg, err := cliconfig.Load(path)
	if err != nil {
		return nil, "", err
	}
	return cfg, path, nil
}

// selectedContext is --context, else the current context.
func (a *app) selectedContext() (cliconfig.Context, error) {
	cfg, _, err := a.loadConfig()
	if err != nil {
		return cliconfig.Context{}, err
	}
	if a.contextName != "" {
		return cfg.Get(a.contextName)
	}
	c, err := cfg.Current()
	if err != nil {
		return cliconfig.Context{}, fmt.Errorf("%w: run 'nkudo login' or 'nkudo context use NAME'", err)
	}
	return c, nil
}

// access says whether a command changes anything; read-only contexts
// refuse the ones that do.
type access int

const (
	readAccess access = iota
	writeAccess
)

// client builds an API client for the selected context.
func (a *app) client(mode access) (*client.Client, error) {
	return a.clientWith(mode, nil)
}

// clientWith is client with a hook on stream health (nil for none).
func (a *app) clientWith(mode access, onStream func(path string, connected bool, err error)) (*client.Client, error) {
	cc, err := a.selectedContext()
	if err != nil {
		return nil, err
	}
	if mode == writeAccess && cc.ReadOnly {
		return nil, fmt.Errorf("%w: context %q refuses changes (set read-only: false in the config to allow them)", errReadOnly, cc.Name)
	}
	pem, err := cc.CAPEM()
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{BaseURL: cc.Server, CAPEM: pem, APIKey: cc.APIKey, Tenant: cc.Tenant, UserAgent: "nkudo-cli",
		OnStreamState: onStream})
}

// exactArgs is cobra.ExactArgs with a usage error, for exit code 2.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("expected %s, got %d argument(s)", names, len(args))
		}
		return nil
	}
}
