// Command nkudo-server is the n-kudo control plane: the JSON API for
// operators and the mutual-TLS WebSocket channel for agents.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kubedoio/n-kudo/internal/server"
	"github.com/kubedoio/n-kudo/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "nkudo-server:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "nkudo-server",
		Short:         "The n-kudo control plane",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newMigrateCmd(), newVersionCmd())
	return root
}

// loadConfig layers defaults and environment; flags bound by the caller
// then override, and the caller validates.
func loadConfig() (server.Config, error) {
	cfg := server.DefaultConfig()
	if err := cfg.ApplyEnv(os.LookupEnv); err != nil {
		return cfg, fmt.Errorf("reading environment: %w", err)
	}
	return cfg, nil
}

func newServeCmd() *cobra.Command {
	cfg, envErr := loadConfig()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the API and the agent channel",
		Long: `Serve the JSON API and the agent channel over HTTPS.

With no --database-url the state lives in an embedded SQLite file in the
data dir. The CA and server certificate are created in <data-dir>/pki on
first start and reused after. NKUDO_ADMIN_KEY must be set.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if envErr != nil {
				return envErr
			}
			log := server.NewLogger(cfg, os.Stderr)
			srv, err := server.New(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			return srv.Serve(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", cfg.Addr, "HTTPS listen address [NKUDO_ADDR]")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, "Prometheus /metrics listen address, empty to disable [NKUDO_METRICS_ADDR]")
	f.StringVar(&cfg.PprofAddr, "pprof-addr", cfg.PprofAddr, "net/http/pprof listen address (loopback only), empty (the default) to disable [NKUDO_PPROF_ADDR]")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the SQLite database and the PKI [NKUDO_DATA_DIR]")
	f.StringVar(&cfg.DatabaseURL, "database-url", cfg.DatabaseURL, "PostgreSQL URL; empty uses embedded SQLite [DATABASE_URL]")
	f.StringSliceVar(&cfg.ServerNames, "server-name", cfg.ServerNames, "extra DNS name or IP for the server certificate (repeatable) [NKUDO_SERVER_NAMES]")
	f.StringSliceVar(&cfg.TrustedProxies, "trusted-proxies", cfg.TrustedProxies, "proxies (IPs or CIDRs) whose X-Forwarded-For is trusted [NKUDO_TRUSTED_PROXIES]")
	f.BoolVar(&cfg.RequirePersistentPKI, "require-persistent-pki", cfg.RequirePersistentPKI, "refuse to start without CA_CERT_FILE/CA_KEY_FILE/SERVER_CERT_FILE/SERVER_KEY_FILE [REQUIRE_PERSISTENT_PKI]")
	f.DurationVar(&cfg.EnrollmentTTL, "enrollment-ttl", cfg.EnrollmentTTL, "default enrollment token lifetime [DEFAULT_ENROLLMENT_TTL]")
	f.DurationVar(&cfg.AgentCertTTL, "agent-cert-ttl", cfg.AgentCertTTL, "lifetime of agent client certificates [AGENT_CERT_TTL]")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", cfg.HeartbeatInterval, "heartbeat interval told to agents [HEARTBEAT_INTERVAL]")
	f.DurationVar(&cfg.HeartbeatOfflineAfter, "heartbeat-offline-after", cfg.HeartbeatOfflineAfter, "mark an agent offline after this long without a heartbeat [HEARTBEAT_OFFLINE_AFTER]")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", cfg.MaxBodyBytes, "largest accepted request body [NKUDO_MAX_BODY_BYTES]")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "grace period for in-flight requests on SIGTERM [HTTP_SHUTDOWN_TIMEOUT]")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error [NKUDO_LOG_LEVEL]")
	f.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "text or json [NKUDO_LOG_FORMAT]")
	f.StringVar(&cfg.NetBirdAPIURL, "netbird-api-url", cfg.NetBirdAPIURL, "NetBird Management API URL; empty turns NetBird off (token from NETBIRD_API_TOKEN) [NETBIRD_API_URL]")
	f.StringVar(&cfg.NetBirdManagementURL, "netbird-management-url", cfg.NetBirdManagementURL, "management URL agents join with; default the API URL's origin [NETBIRD_MANAGEMENT_URL]")
	return cmd
}

func newMigrateCmd() *cobra.Command {
	cfg, envErr := loadConfig()
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the database migrations and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if envErr != nil {
				return envErr
			}
			if err := server.Migrate(cmd.Context(), cfg); err != nil {
				return fmt.Errorf("migrating: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "migrations applied")
			return nil
		},
	}
	cmd.Flags().StringVar(&cfg.DatabaseURL, "database-url", cfg.DatabaseURL, "PostgreSQL URL; empty migrates the SQLite file in --data-dir [DATABASE_URL]")
	cmd.Flags().StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data dir holding the SQLite database [NKUDO_DATA_DIR]")
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version.String("nkudo-server"))
		},
	}
}
