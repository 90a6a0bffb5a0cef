// Command nkudo-server is the n-kudo control plane: the JSON API for
// operators and the mutual-TLS WebSocket channel for agents.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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
	root.AddCommand(newServeCmd(), newMigrateCmd(), newBackupCmd(), newRestoreCmd(), newHealthcheckCmd(), newVersionCmd())
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
first start and reused after; with PostgreSQL the replicas share one CA
through the database, its key sealed with NKUDO_PKI_SEAL_KEY. A background
job deletes rows older than the --retention-* ages. NKUDO_ADMIN_KEY must
be set.`,
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
	f.StringVar(&cfg.DatabaseURL, "database-url", cfg.DatabaseURL, "PostgreSQL URL; empty uses embedded SQLite [NKUDO_DATABASE_URL]")
	f.StringSliceVar(&cfg.ServerNames, "server-name", cfg.ServerNames, "extra DNS name or IP for the server certificate (repeatable) [NKUDO_SERVER_NAMES]")
	f.StringSliceVar(&cfg.TrustedProxies, "trusted-proxies", cfg.TrustedProxies, "proxies (IPs or CIDRs) whose X-Forwarded-For is trusted [NKUDO_TRUSTED_PROXIES]")
	f.BoolVar(&cfg.RequirePersistentPKI, "require-persistent-pki", cfg.RequirePersistentPKI, "refuse to start without NKUDO_CA_CERT_FILE/NKUDO_CA_KEY_FILE/NKUDO_SERVER_CERT_FILE/NKUDO_SERVER_KEY_FILE [NKUDO_REQUIRE_PERSISTENT_PKI]")
	f.DurationVar(&cfg.EnrollmentTTL, "enrollment-ttl", cfg.EnrollmentTTL, "default enrollment token lifetime [NKUDO_ENROLLMENT_TTL]")
	f.DurationVar(&cfg.AgentCertTTL, "agent-cert-ttl", cfg.AgentCertTTL, "lifetime of agent client certificates [NKUDO_AGENT_CERT_TTL]")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", cfg.HeartbeatInterval, "heartbeat interval told to agents [NKUDO_HEARTBEAT_INTERVAL]")
	f.DurationVar(&cfg.HeartbeatOfflineAfter, "heartbeat-offline-after", cfg.HeartbeatOfflineAfter, "mark an agent offline after this long without a heartbeat [NKUDO_HEARTBEAT_OFFLINE_AFTER]")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", cfg.MaxBodyBytes, "largest accepted request body [NKUDO_MAX_BODY_BYTES]")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "grace period for in-flight requests on SIGTERM [NKUDO_SHUTDOWN_TIMEOUT]")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error [NKUDO_LOG_LEVEL]")
	f.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "text or json [NKUDO_LOG_FORMAT]")
	f.StringVar(&cfg.NetBirdAPIURL, "netbird-api-url", cfg.NetBirdAPIURL, "NetBird Management API URL; empty turns NetBird off (token from NKUDO_NETBIRD_API_TOKEN) [NKUDO_NETBIRD_API_URL]")
	bindRetentionFlags(f, &cfg)
	f.StringVar(&cfg.NetBirdManagementURL, "netbird-management-url", cfg.NetBirdManagementURL, "management URL agents join with; default the API URL's origin [NKUDO_NETBIRD_MANAGEMENT_URL]")
	return cmd
}

// bindRetentionFlags binds the retention ages (7d, 36h, 0 = keep forever).
func bindRetentionFlags(f *pflag.FlagSet, cfg *server.Config) {
	r := &cfg.Retention
	f.Var(server.AgeValue{D: &r.Logs}, "retention-logs", "delete execution log lines older than this (e.g. 7d, 36h; 0 keeps them) [NKUDO_RETENTION_LOGS]")
	f.Var(server.AgeValue{D: &r.Audit}, "retention-audit", "delete audit events older than this [NKUDO_RETENTION_AUDIT]")
	f.Var(server.AgeValue{D: &r.Plans}, "retention-plans", "delete finished plans (with their executions and logs) this long after they finished [NKUDO_RETENTION_PLANS]")
	f.Var(server.AgeValue{D: &r.IdempotencyKeys}, "retention-idempotency", "forget Idempotency-Key answers older than this [NKUDO_RETENTION_IDEMPOTENCY]")
	f.Var(server.AgeValue{D: &r.RevokedAgents}, "retention-revoked-agents", "delete revoked agents (with their host, plans and VM records) this long after revocation [NKUDO_RETENTION_REVOKED_AGENTS]")
	f.DurationVar(&r.Interval, "retention-interval", r.Interval, "how often the retention job runs [NKUDO_RETENTION_INTERVAL]")
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
	cmd.Flags().StringVar(&cfg.DatabaseURL, "database-url", cfg.DatabaseURL, "PostgreSQL URL; empty migrates the SQLite file in --data-dir [NKUDO_DATABASE_URL]")
	cmd.Flags().StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data dir holding the SQLite database [NKUDO_DATA_DIR]")
	return cmd
}

func newBackupCmd() *cobra.Command {
	cfg, envErr := loadConfig()
	var to string
	var pkiOnly bool
	cmd := &cobra.Command{
		Use:   "backup --to FILE",
		Short: "Write a backup of the database and the PKI",
		Long: `Write a consistent backup while the server runs: a gzipped tar archive
with the PKI (CA certificate and key; keep the file as secret as the CA key)
and, with SQLite, a snapshot of the live database (VACUUM INTO).

With PostgreSQL, back the database up with pg_dump (it includes the sealed
CA) and use --pki-only to write the CA in the clear as well, which restores
the fleet's trust even if NKUDO_PKI_SEAL_KEY is lost.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if envErr != nil {
				return envErr
			}
			if to == "" {
				return errors.New("--to FILE is required")
			}
			m, err := server.Backup(cmd.Context(), cfg, to, pkiOnly)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s, CA %s\n", to, strings.Join(m.Files, ", "), m.CAFingerprint)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "archive to write (must not exist)")
	f.BoolVar(&pkiOnly, "pki-only", false, "write only the PKI (PostgreSQL: the data is pg_dump's)")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data dir of the server [NKUDO_DATA_DIR]")
	f.StringVar(&cfg.DatabaseURL, "database-url", cfg.DatabaseURL, "PostgreSQL URL of the server, if it uses one [NKUDO_DATABASE_URL]")
	return cmd
}

func newRestoreCmd() *cobra.Command {
	cfg, envErr := loadConfig()
	var from string
	cmd := &cobra.Command{
		Use:   "restore --from FILE --data-dir DIR",
		Short: "Restore a backup into an empty data dir",
		Long: `Unpack a backup written by ` + "`nkudo-server backup`" + ` into --data-dir, which must be
new or empty, and check it (CA pair, database integrity). Then start the
server on that data dir: enrolled agents reconnect with the certificates
they have.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if envErr != nil {
				return envErr
			}
			if from == "" {
				return errors.New("--from FILE is required")
			}
			m, err := server.Restore(cmd.Context(), cfg, from)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s (written %s by %s) into %s: %s, CA %s\n",
				from, m.CreatedAt.Format(time.RFC3339), m.Version, cfg.DataDir, strings.Join(m.Files, ", "), m.CAFingerprint)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "archive to restore")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "empty data dir to restore into [NKUDO_DATA_DIR]")
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
