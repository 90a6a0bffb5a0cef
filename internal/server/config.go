package server

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/retention"
)

// Config is the whole configuration of nkudo-server. It is filled in
// layers: DefaultConfig, then ApplyEnv, then command-line flags (bound to
// the fields by the command), then Validate.
type Config struct {
	Addr        string // HTTPS listen address (NKUDO_ADDR)
	MetricsAddr string // Prometheus listener; empty disables it (NKUDO_METRICS_ADDR)
	// PprofAddr serves net/http/pprof for profiling under load; off by
	// default and loopback only, because profiles expose memory contents
	// and cost CPU while taken (NKUDO_PPROF_ADDR).
	PprofAddr   string
	DataDir     string // SQLite file and PKI (NKUDO_DATA_DIR)
	DatabaseURL string // PostgreSQL; empty means embedded SQLite (NKUDO_DATABASE_URL)
	AdminKey    string // bootstrap bearer key (NKUDO_ADMIN_KEY); never logged

	ServerNames    []string // extra names in the server certificate (NKUDO_SERVER_NAMES)
	TrustedProxies []string // proxies whose X-Forwarded-For is believed (NKUDO_TRUSTED_PROXIES)

	CACertFile           string // NKUDO_CA_CERT_FILE
	CAKeyFile            string // NKUDO_CA_KEY_FILE
	ServerCertFile       string // NKUDO_SERVER_CERT_FILE
	ServerKeyFile        string // NKUDO_SERVER_KEY_FILE
	RequirePersistentPKI bool   // NKUDO_REQUIRE_PERSISTENT_PKI
	// PKISealKey seals the CA key that replicas share through PostgreSQL:
	// 32 random bytes, base64 (NKUDO_PKI_SEAL_KEY); env only, never
	// logged. Required with PostgreSQL unless the CA files are given.
	PKISealKey string

	EnrollmentTTL         time.Duration // NKUDO_ENROLLMENT_TTL
	AgentCertTTL          time.Duration // NKUDO_AGENT_CERT_TTL
	HeartbeatInterval     time.Duration // NKUDO_HEARTBEAT_INTERVAL
	HeartbeatOfflineAfter time.Duration // NKUDO_HEARTBEAT_OFFLINE_AFTER
	MaxBodyBytes          int64         // NKUDO_MAX_BODY_BYTES
	ShutdownTimeout       time.Duration // NKUDO_SHUTDOWN_TIMEOUT

	// Retention is how long finished work is kept (NKUDO_RETENTION_*).
	Retention retention.Policy

	LogLevel  string // debug, info, warn, error (NKUDO_LOG_LEVEL)
	LogFormat string // text or json (NKUDO_LOG_FORMAT)

	// NetBird Management API; NetBird integration is off when the URL is
	// empty.
	NetBirdAPIURL string // NKUDO_NETBIRD_API_URL
	// NetBirdAPIToken is a personal access token; env only, never logged
	// (NKUDO_NETBIRD_API_TOKEN).
	NetBirdAPIToken string
	// NetBirdManagementURL is what agents pass to `netbird up
	// --management-url`; empty means the API URL's origin
	// (NKUDO_NETBIRD_MANAGEMENT_URL).
	NetBirdManagementURL string

	// deprecations are the warnings of ApplyEnv about old variable names.
	deprecations []string
}

// MinAdminKeyLen keeps guessable bootstrap keys out of production.
const MinAdminKeyLen = 16

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Addr:                  "127.0.0.1:8443",
		MetricsAddr:           "127.0.0.1:9464",
		DataDir:               DefaultDataDir(),
		EnrollmentTTL:         15 * time.Minute,
		AgentCertTTL:          24 * time.Hour,
		HeartbeatInterval:     15 * time.Second,
		HeartbeatOfflineAfter: 60 * time.Second,
		MaxBodyBytes:          1 << 20,
		ShutdownTimeout:       10 * time.Second,
		LogLevel:              "info",
		LogFormat:             "text",
		Retention:             retention.DefaultPolicy(),
	}
}

// DefaultDataDir is /var/lib/nkudo for root and ~/.local/share/nkudo
// (or $XDG_DATA_HOME/nkudo) for everyone else.
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/nkudo"
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "nkudo")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "nkudo")
	}
	return filepath.Join(home, ".local", "share", "nkudo")
}

// ApplyEnv overrides fields from environment variables looked up with
// lookup (os.LookupEnv in production), as listed in EnvVars. Malformed
// values are errors rather than silently ignored. A variable found only
// under its deprecated name is used and noted in Deprecations, which the
// server logs at start.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) error {
	var errs []error
	c.deprecations = nil
	for _, e := range EnvVars {
		name, v, ok := e.Name, "", false
		if v, ok = lookup(e.Name); !ok && e.Old != "" {
			if v, ok = lookup(e.Old); ok {
				name = e.Old
				c.deprecations = append(c.deprecations, fmt.Sprintf("environment variable %s is deprecated: use %s", e.Old, e.Name))
			}
		} else if _, both := lookup(e.Old); ok && e.Old != "" && both {
			c.deprecations = append(c.deprecations, fmt.Sprintf("environment variable %s is ignored: %s is set", e.Old, e.Name))
		}
		if !ok {
			continue
		}
		if err := e.set(c, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Deprecations lists one line per deprecated environment variable that
// ApplyEnv used or ignored, for the server to log at start.
func (c Config) Deprecations() []string { return c.deprecations }

// Validate reports every problem with the configuration at once, each
// naming the flag or variable to fix.
func (c Config) Validate() error {
	var errs []error
	if err := validHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("--addr (NKUDO_ADDR): %w", err))
	}
	if c.MetricsAddr != "" {
		if err := validHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-addr (NKUDO_METRICS_ADDR): %w", err))
		} else if c.MetricsAddr == c.Addr {
			errs = append(errs, errors.New("--metrics-addr must differ from --addr"))
		}
	}
	if c.PprofAddr != "" {
		if err := validLoopbackHostPort(c.PprofAddr); err != nil {
			errs = append(errs, fmt.Errorf("--pprof-addr (NKUDO_PPROF_ADDR): %w", err))
		} else if c.PprofAddr == c.Addr || c.PprofAddr == c.MetricsAddr {
			errs = append(errs, errors.New("--pprof-addr must differ from --addr and --metrics-addr"))
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir (NKUDO_DATA_DIR) is required"))
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		errs = append(errs, errors.New("--database-url (NKUDO_DATABASE_URL) must be a postgres:// URL"))
	}
	switch {
	case c.AdminKey == "":
		errs = append(errs, errors.New("NKUDO_ADMIN_KEY is required: set it to a random secret of at least 16 characters (e.g. `openssl rand -hex 32`)"))
	case len(c.AdminKey) < MinAdminKeyLen:
		errs = append(errs, fmt.Errorf("NKUDO_ADMIN_KEY is too short: use at least %d characters", MinAdminKeyLen))
	}
	if (c.CACertFile == "") != (c.CAKeyFile == "") {
		errs = append(errs, errors.New("NKUDO_CA_CERT_FILE and NKUDO_CA_KEY_FILE must be set together"))
	}
	if (c.ServerCertFile == "") != (c.ServerKeyFile == "") {
		errs = append(errs, errors.New("NKUDO_SERVER_CERT_FILE and NKUDO_SERVER_KEY_FILE must be set together"))
	}
	if c.RequirePersistentPKI && (c.CACertFile == "" || c.ServerCertFile == "") {
		errs = append(errs, errors.New("NKUDO_REQUIRE_PERSISTENT_PKI=true needs NKUDO_CA_CERT_FILE, NKUDO_CA_KEY_FILE, NKUDO_SERVER_CERT_FILE and NKUDO_SERVER_KEY_FILE"))
	}
	for _, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			errs = append(errs, fmt.Errorf("--trusted-proxies: %q is neither an IP nor a CIDR", p))
		}
	}
	errs = append(errs, c.validateDurations()...)
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("NKUDO_MAX_BODY_BYTES must be at least 1024 (got %d)", c.MaxBodyBytes))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("--log-format: %q is not text or json", c.LogFormat))
	}
	errs = append(errs, c.validateNetBird()...)
	errs = append(errs, c.validatePKISeal()...)
	return errors.Join(errs...)
}

// validateDurations checks the durations that must be positive, and the
// heartbeat pair.
func (c Config) validateDurations() []error {
	var errs []error
	positive := []struct {
		name string
		d    time.Duration
		min  time.Duration
	}{
		{"NKUDO_ENROLLMENT_TTL", c.EnrollmentTTL, time.Minute},
		{"NKUDO_AGENT_CERT_TTL", c.AgentCertTTL, 5 * time.Minute},
		{"NKUDO_HEARTBEAT_INTERVAL", c.HeartbeatInterval, time.Second},
		{"NKUDO_HEARTBEAT_OFFLINE_AFTER", c.HeartbeatOfflineAfter, time.Second},
		{"NKUDO_SHUTDOWN_TIMEOUT", c.ShutdownTimeout, 0},
		{"NKUDO_RETENTION_INTERVAL", c.Retention.Interval, time.Second},
	}
	for _, p := range positive {
		if p.d < p.min || p.d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be at least %s (got %s)", p.name, max(p.min, time.Nanosecond), p.d))
		}
	}
	if c.HeartbeatOfflineAfter > 0 && c.HeartbeatInterval > 0 && c.HeartbeatOfflineAfter < 2*c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("NKUDO_HEARTBEAT_OFFLINE_AFTER (%s) must be at least twice NKUDO_HEARTBEAT_INTERVAL (%s), or agents flap offline", c.HeartbeatOfflineAfter, c.HeartbeatInterval))
	}
	return errs
}

// NetBirdEnabled reports whether the NetBird integration is configured.
func (c Config) NetBirdEnabled() bool { return c.NetBirdAPIURL != "" }

// ManagementURL is the NetBird management URL handed to agents: the
// configured one, else the API URL's origin (NetBird serves both).
func (c Config) ManagementURL() string {
	if c.NetBirdManagementURL != "" {
		return c.NetBirdManagementURL
	}
	u, err := url.Parse(c.NetBirdAPIURL)
	if err != nil {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
}

func (c Config) validateNetBird() []error {
	if c.NetBirdAPIURL == "" {
		if c.NetBirdManagementURL != "" {
			return []error{errors.New("NKUDO_NETBIRD_MANAGEMENT_URL needs --netbird-api-url (NKUDO_NETBIRD_API_URL)")}
		}
		return nil
	}
	var errs []error
	if err := secureURL(c.NetBirdAPIURL); err != nil {
		errs = append(errs, fmt.Errorf("--netbird-api-url (NKUDO_NETBIRD_API_URL): %w", err))
	}
	if strings.TrimSpace(c.NetBirdAPIToken) == "" {
		errs = append(errs, errors.New("NKUDO_NETBIRD_API_TOKEN is required with NKUDO_NETBIRD_API_URL: a NetBird personal access token"))
	} else if strings.ContainsAny(c.NetBirdAPIToken, "\r\n ") {
		errs = append(errs, errors.New("NKUDO_NETBIRD_API_TOKEN must be a single word"))
	}
	if c.NetBirdManagementURL != "" {
		if err := secureURL(c.NetBirdManagementURL); err != nil {
			errs = append(errs, fmt.Errorf("NKUDO_NETBIRD_MANAGEMENT_URL: %w", err))
		}
	}
	return errs
}

// secureURL accepts an https URL, or http to a loopback host (a local
// NetBird or a test stand-in): the API token must not cross a network in
// clear text.
func secureURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not a plain http(s)://HOST[:PORT][/PATH] URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%q must use https (http only to a loopback address)", raw)
	}
	return fmt.Errorf("%q must be an https URL", raw)
}

func validHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if host != "" && net.ParseIP(host) == nil && strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q has an invalid host", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has an invalid port", addr)
	}
	return nil
}

// validLoopbackHostPort accepts host:port whose host is a loopback IP or
// "localhost": an empty host would listen on every interface.
func validLoopbackHostPort(addr string) error {
	if err := validHostPort(addr); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q must listen on a loopback address (e.g. 127.0.0.1:6060)", addr)
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// validatePKISeal checks the seal key's form, and that one is given where
// replicas share the CA through the database: with PostgreSQL and no CA
// files, a replica without it could neither open the stored CA nor store
// one the others could open.
func (c Config) validatePKISeal() []error {
	if c.PKISealKey != "" {
		if _, err := pki.ParseSealKey(c.PKISealKey); err != nil {
			return []error{fmt.Errorf("NKUDO_PKI_SEAL_KEY: %w", err)}
		}
		return nil
	}
	if c.SharedPKI() {
		return []error{errors.New("NKUDO_PKI_SEAL_KEY is required with PostgreSQL unless NKUDO_CA_CERT_FILE and NKUDO_CA_KEY_FILE are given: " +
			"replicas share the CA through the database, its key sealed with this key; set the same value on every replica " +
			"(32 random bytes in base64, e.g. `openssl rand -base64 32`)")}
	}
	return nil
}

// SharedPKI reports whether the CA lives in the database, shared by every
// replica: PostgreSQL without operator-supplied CA files.
func (c Config) SharedPKI() bool { return c.DatabaseURL != "" && c.CACertFile == "" }
