package server

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

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
		{"postgres url", func(c *Config) { c.DatabaseURL = "postgres://u@localhost/db" }, ""},
		{"ca cert without key", func(c *Config) { c.CACertFile = "/ca.crt" }, "CA_CERT_FILE and CA_KEY_FILE"},
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
