package server

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testSealKey is 32 bytes in base64.
const testSealKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

func validConfig() Config {
	c := DefaultConfig()
	c.DataDir = "/tmp/nkudo-test"
	c.AdminKey = "0123456789abcdef0123"
	return c
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // substring; empty means valid
	}{
		{"defaults with admin key", func(*Config) {}, ""},
		{"missing admin key", func(c *Config) { c.AdminKey = "" }, "NKUDO_ADMIN_KEY is required"},
		{"short admin key", func(c *Config) { c.AdminKey = "short" }, "too short"},
		{"bad addr", func(c *Config) { c.Addr = "nope" }, "--addr"},
		{"bad port", func(c *Config) { c.Addr = "127.0.0.1:99999" }, "invalid port"},
		{"metrics same as addr", func(c *Config) { c.MetricsAddr = c.Addr }, "must differ"},
		{"metrics disabled", func(c *Config) { c.MetricsAddr = "" }, ""},
		{"pprof on loopback", func(c *Config) { c.PprofAddr = "127.0.0.1:6060" }, ""},
		{"pprof on localhost", func(c *Config) { c.PprofAddr = "localhost:6060" }, ""},
		{"pprof on ipv6 loopback", func(c *Config) { c.PprofAddr = "[::1]:6060" }, ""},
		{"pprof on all interfaces", func(c *Config) { c.PprofAddr = ":6060" }, "loopback"},
		{"pprof on a public address", func(c *Config) { c.PprofAddr = "192.0.2.1:6060" }, "loopback"},
		{"pprof same as metrics", func(c *Config) { c.PprofAddr = c.MetricsAddr }, "must differ"},
		{"mysql url", func(c *Config) { c.DatabaseURL = "mysql://x" }, "postgres://"},
		{"postgres url", func(c *Config) { c.DatabaseURL = "postgres://u@localhost/db"; c.PKISealKey = testSealKey }, ""},
		{"postgres without seal key", func(c *Config) { c.DatabaseURL = "postgres://u@localhost/db" }, "NKUDO_PKI_SEAL_KEY is required with PostgreSQL"},
		{"postgres with CA files needs no seal key", func(c *Config) {
			c.DatabaseURL = "postgres://u@localhost/db"
			c.CACertFile, c.CAKeyFile = "a", "b"
		}, ""},
		{"short seal key", func(c *Config) { c.PKISealKey = "c2hvcnQ=" }, "decodes to 5 bytes, want 32"},
		{"passphrase seal key", func(c *Config) { c.PKISealKey = "correct horse battery staple" }, "not base64"},
		{"zero retention interval", func(c *Config) { c.Retention.Interval = 0 }, "NKUDO_RETENTION_INTERVAL"},
		{"ca cert without key", func(c *Config) { c.CACertFile = "/ca.crt" }, "NKUDO_CA_CERT_FILE and NKUDO_CA_KEY_FILE"},
		{"persistent pki without files", func(c *Config) { c.RequirePersistentPKI = true }, "REQUIRE_PERSISTENT_PKI"},
		{"persistent pki with files", func(c *Config) {
			c.RequirePersistentPKI = true
			c.CACertFile, c.CAKeyFile, c.ServerCertFile, c.ServerKeyFile = "a", "b", "c", "d"
		}, ""},
		{"bad proxy", func(c *Config) { c.TrustedProxies = []string{"not-an-ip"} }, "neither an IP nor a CIDR"},
		{"proxy cidr", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.1"} }, ""},
		{"offline before two heartbeats", func(c *Config) { c.HeartbeatOfflineAfter = 20 * time.Second }, "at least twice"},
		{"zero cert ttl", func(c *Config) { c.AgentCertTTL = 0 }, "AGENT_CERT_TTL"},
		{"tiny body limit", func(c *Config) { c.MaxBodyBytes = 10 }, "NKUDO_MAX_BODY_BYTES"},
		{"bad log level", func(c *Config) { c.LogLevel = "loud" }, "--log-level"},
		{"bad log format", func(c *Config) { c.LogFormat = "xml" }, "--log-format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestConfigValidateReportsAllProblems(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.AdminKey = ""
	c.Addr = "bad"
	err := c.Validate()
	require.Error(t, err)
	require.Contains(t, err.Error(), "NKUDO_ADMIN_KEY")
	require.Contains(t, err.Error(), "--addr")
}

func TestConfigApplyEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{
			name: "all kinds",
			env: map[string]string{
				"NKUDO_ADDR":              "0.0.0.0:443",
				"NKUDO_DATA_DIR":          "/srv/nkudo",
				"DATABASE_URL":            "postgres://db/nkudo",
				"NKUDO_SERVER_NAMES":      "cp.example.com, 10.0.0.1 ,",
				"REQUIRE_PERSISTENT_PKI":  "true",
				"HEARTBEAT_OFFLINE_AFTER": "90s",
				"NKUDO_MAX_BODY_BYTES":    "2048",
			},
			check: func(t *testing.T, c Config) {
				require.Equal(t, "0.0.0.0:443", c.Addr)
				require.Equal(t, "/srv/nkudo", c.DataDir)
				require.Equal(t, "postgres://db/nkudo", c.DatabaseURL)
				require.Equal(t, []string{"cp.example.com", "10.0.0.1"}, c.ServerNames)
				require.True(t, c.RequirePersistentPKI)
				require.Equal(t, 90*time.Second, c.HeartbeatOfflineAfter)
				require.EqualValues(t, 2048, c.MaxBodyBytes)
			},
		},
		{
			name: "new names",
			env: map[string]string{
				"NKUDO_DATABASE_URL":       "postgres://db/new",
				"NKUDO_CA_CERT_FILE":       "/ca.crt",
				"NKUDO_HEARTBEAT_INTERVAL": "20s",
				"NKUDO_SHUTDOWN_TIMEOUT":   "3s",
				"NKUDO_PKI_SEAL_KEY":       testSealKey,
				"NKUDO_RETENTION_LOGS":     "3d",
				"NKUDO_RETENTION_AUDIT":    "36h",
				"NKUDO_RETENTION_PLANS":    "0",
			},
			check: func(t *testing.T, c Config) {
				require.Equal(t, "postgres://db/new", c.DatabaseURL)
				require.Equal(t, "/ca.crt", c.CACertFile)
				require.Equal(t, 20*time.Second, c.HeartbeatInterval)
				require.Equal(t, 3*time.Second, c.ShutdownTimeout)
				require.Equal(t, testSealKey, c.PKISealKey)
				require.Equal(t, 72*time.Hour, c.Retention.Logs)
				require.Equal(t, 36*time.Hour, c.Retention.Audit)
				require.Zero(t, c.Retention.Plans)
				require.Empty(t, c.Deprecations())
			},
		},
		{
			name: "old names still work, with a warning each",
			env:  map[string]string{"DATABASE_URL": "postgres://db/old", "HTTP_SHUTDOWN_TIMEOUT": "4s"},
			check: func(t *testing.T, c Config) {
				require.Equal(t, "postgres://db/old", c.DatabaseURL)
				require.Equal(t, 4*time.Second, c.ShutdownTimeout)
				require.ElementsMatch(t, []string{
					"environment variable DATABASE_URL is deprecated: use NKUDO_DATABASE_URL",
					"environment variable HTTP_SHUTDOWN_TIMEOUT is deprecated: use NKUDO_SHUTDOWN_TIMEOUT",
				}, c.Deprecations())
			},
		},
		{
			name: "the new name wins over the old",
			env:  map[string]string{"DATABASE_URL": "postgres://db/old", "NKUDO_DATABASE_URL": "postgres://db/new"},
			check: func(t *testing.T, c Config) {
				require.Equal(t, "postgres://db/new", c.DatabaseURL)
				require.Equal(t, []string{"environment variable DATABASE_URL is ignored: NKUDO_DATABASE_URL is set"}, c.Deprecations())
			},
		},
		{name: "bad age", env: map[string]string{"NKUDO_RETENTION_LOGS": "a week"}, wantErr: "NKUDO_RETENTION_LOGS"},
		{name: "negative age", env: map[string]string{"NKUDO_RETENTION_AUDIT": "-1d"}, wantErr: "NKUDO_RETENTION_AUDIT"},
		{name: "bad duration", env: map[string]string{"AGENT_CERT_TTL": "a day"}, wantErr: "AGENT_CERT_TTL"},
		{name: "bad bool", env: map[string]string{"REQUIRE_PERSISTENT_PKI": "maybe"}, wantErr: "REQUIRE_PERSISTENT_PKI"},
		{name: "bad number", env: map[string]string{"NKUDO_MAX_BODY_BYTES": "1MB"}, wantErr: "NKUDO_MAX_BODY_BYTES"},
		{name: "unset keeps defaults", env: map[string]string{}, check: func(t *testing.T, c Config) {
			require.Equal(t, DefaultConfig().Addr, c.Addr)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			err := c.ApplyEnv(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.wantErr != "" {
				require.Error(t, err)
				require.True(t, strings.Contains(err.Error(), tt.wantErr), err.Error())
				return
			}
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

// TestEnvVarsTable: each deprecated name maps to an NKUDO_ name,
// and no name is listed twice.
func TestEnvVarsTable(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, e := range EnvVars {
		require.True(t, strings.HasPrefix(e.Name, "NKUDO_"), e.Name)
		require.False(t, strings.HasPrefix(e.Old, "NKUDO_"), e.Old)
		for _, n := range []string{e.Name, e.Old} {
			if n == "" {
				continue
			}
			require.False(t, seen[n], "%s listed twice", n)
			seen[n] = true
		}
	}
	for _, old := range []string{"DATABASE_URL", "CA_CERT_FILE", "CA_KEY_FILE", "SERVER_CERT_FILE", "SERVER_KEY_FILE",
		"REQUIRE_PERSISTENT_PKI", "DEFAULT_ENROLLMENT_TTL", "AGENT_CERT_TTL", "NETBIRD_API_URL", "NETBIRD_API_TOKEN",
		"NETBIRD_MANAGEMENT_URL", "HEARTBEAT_INTERVAL", "HEARTBEAT_OFFLINE_AFTER", "HTTP_SHUTDOWN_TIMEOUT"} {
		require.True(t, seen[old], "%s is still read", old)
	}
}

func TestParseAge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"7d", 7 * 24 * time.Hour, false},
		{"0", 0, false},
		{"0d", 0, false},
		{"36h", 36 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"1.5d", 0, true},
		{"-3d", 0, true},
		{"-1h", 0, true},
		{"week", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseAge(tt.in)
		if tt.bad {
			require.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
		back, err := ParseAge(FormatAge(got))
		require.NoError(t, err)
		require.Equal(t, got, back, "FormatAge round-trips %s", tt.in)
	}
}
