// Command nkudo-load is the load harness of n-kudo: it enrolls and
// connects a fleet of simulated agents to a running nkudo-server and
// measures it against the spec's "What it must sustain" targets.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubedoio/n-kudo/internal/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "nkudo-load",
		Short:         "Load harness for nkudo-server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCmd())
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "nkudo-load:", err)
		os.Exit(1)
	}
}

// options are the flags of `nkudo-load run` that do not map one to one
// onto loadtest.Config.
type options struct {
	caFile, sourceIPs, scenario, output, restartCmd, logLevel string
	timeout                                                   time.Duration
}

func newRunCmd() *cobra.Command {
	cfg := loadtest.Config{AdminKey: os.Getenv("NKUDO_ADMIN_KEY")}
	var o options
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run load scenarios against a running server",
		Long: `Run load scenarios against a running nkudo-server on this machine.

A fresh tenant, site and enrollment tokens are created with the admin key;
N agents are enrolled through POST /v1/enroll with real CSRs and connected
over mutual-TLS WebSockets. Scenarios (comma-separated, run in this order):
enroll, sessions, heartbeats, dispatch, logs, reconnect; "all" runs them all.

reconnect needs the server restarted: give --restart-cmd (run with sh -c; it
must return once the new server process is started), or restart it yourself
within --restart-timeout.

The server's per-IP enrollment limit (20/s, burst 50) is met by spreading
the fleet over --source-ips (all of 127.0.0.0/8 is loopback on Linux).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), cmd, cfg, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ServerURL, "server", "https://127.0.0.1:8443", "server base URL (loopback only)")
	f.StringVar(&o.caFile, "ca-file", "", "server CA certificate (<data-dir>/pki/ca.crt)")
	f.StringVar(&cfg.AdminKey, "admin-key", cfg.AdminKey, "server admin key [NKUDO_ADMIN_KEY]")
	f.IntVar(&cfg.Agents, "agents", 100, "number of simulated agents")
	f.DurationVar(&cfg.Heartbeat, "heartbeat", loadtest.DefaultHeartbeat, "background heartbeat interval of each agent")
	f.DurationVar(&cfg.Duration, "duration", loadtest.DefaultDuration, "length of each timed scenario (heartbeats, dispatch, logs)")
	f.StringVar(&o.scenario, "scenario", loadtest.ScenarioAll, "all, or a comma-separated list of enroll,sessions,heartbeats,dispatch,logs,reconnect")
	f.IntVar(&cfg.ServerPID, "server-pid", 0, "server process id, for RSS from /proc/PID/status")
	f.StringVar(&cfg.MetricsURL, "metrics-url", "http://127.0.0.1:9464/metrics", "server Prometheus endpoint; empty skips server-side figures")
	f.StringVar(&o.sourceIPs, "source-ips", "127.0.0.2-127.0.0.254", "loopback source addresses to spread connections over (ranges and lists)")
	f.IntVar(&cfg.HeartbeatRate, "heartbeat-rate", loadtest.DefaultHeartbeatRate, "total heartbeats/s in the heartbeats scenario")
	f.IntVar(&cfg.DispatchRate, "dispatch-rate", loadtest.DefaultDispatchRate, "plans/s created in the dispatch scenario")
	f.IntVar(&cfg.DispatchAgents, "dispatch-agents", loadtest.DefaultDispatchAgents, "agents that receive plans in the dispatch scenario")
	f.IntVar(&cfg.LogAgents, "log-agents", loadtest.DefaultLogAgents, "agents that send log batches in the logs scenario")
	f.IntVar(&cfg.LogBatchLines, "log-batch-lines", loadtest.DefaultLogBatchLines, "lines per log batch (at most 1000)")
	f.IntVar(&cfg.APIKeys, "api-keys", loadtest.DefaultAPIKeys, "operator keys sharing the plan API calls (the per-key limit is 50/s)")
	f.StringVar(&o.restartCmd, "restart-cmd", "", "shell command that restarts the server, for the reconnect scenario")
	f.DurationVar(&cfg.RestartTimeout, "restart-timeout", loadtest.DefaultRestartTimeout, "bound on waiting for the restart and the reconnects")
	f.IntVar(&cfg.DialConcurrency, "dial-concurrency", loadtest.DefaultDialConcurrency, "concurrent agent handshakes from the harness")
	f.IntVar(&cfg.EnrollConcurrency, "enroll-concurrency", loadtest.DefaultEnrollConcurrency, "concurrent enrollment requests")
	f.StringVarP(&o.output, "output", "o", "table", "table or json")
	f.DurationVar(&o.timeout, "timeout", 30*time.Minute, "hard bound on the whole run")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error (logs go to stderr)")
	return cmd
}

func run(ctx context.Context, cmd *cobra.Command, cfg loadtest.Config, o options) error {
	if o.output != "table" && o.output != "json" {
		return fmt.Errorf("-o %q: want table or json", o.output)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if o.caFile == "" {
		return errors.New("--ca-file is required (the server writes it to <data-dir>/pki/ca.crt)")
	}
	ca, err := os.ReadFile(o.caFile)
	if err != nil {
		return fmt.Errorf("reading --ca-file: %w", err)
	}
	cfg.CAPEM = ca
	if o.sourceIPs != "" {
		if cfg.SourceIPs, err = loadtest.ParseIPRange(o.sourceIPs); err != nil {
			return fmt.Errorf("--source-ips: %w", err)
		}
	}
	for _, s := range strings.Split(o.scenario, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Scenarios = append(cfg.Scenarios, s)
		}
	}
	if o.restartCmd != "" {
		restart := o.restartCmd
		cfg.Restart = func(ctx context.Context) error {
			c := exec.CommandContext(ctx, "/bin/sh", "-c", restart)
			c.Stdout, c.Stderr = os.Stderr, os.Stderr
			if err := c.Run(); err != nil {
				return fmt.Errorf("running --restart-cmd: %w", err)
			}
			return nil
		}
	}
	nofile, err := loadtest.RaiseFileLimit()
	if err != nil {
		return err
	}
	if need := uint64(cfg.Agents) + 256; nofile < need {
		return fmt.Errorf("open file limit %d is below the %d this run needs: raise the hard limit (ulimit -Hn)", nofile, need)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	rep, err := loadtest.Run(ctx, cfg, log)
	if rep != nil {
		w := cmd.OutOrStdout()
		var werr error
		if o.output == "json" {
			werr = rep.WriteJSON(w)
		} else {
			werr = rep.WriteTable(w)
		}
		if werr != nil && err == nil {
			err = werr
		}
	}
	return err
}
