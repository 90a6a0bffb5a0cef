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
	DatabaseURL string // PostgreSQL; empty means embedded SQLite (DATABASE_URL)
	AdminKey    string // bootstrap bearer key (NKUDO_ADMIN_KEY); never logged

	ServerNames    []string // extra names in the server certificate (NKUDO_SERVER_NAMES)
	TrustedProxies []string // proxies whose X-Forwarded-For is believed (NKUDO_TRUSTED_PROXIES)

	CACertFile           string // CA_CERT_FILE
	CAKeyFile            string // CA_KEY_FILE
	ServerCertFile       string // SERVER_CERT_FILE
	ServerKeyFile        string // SERVER_KEY_FILE
	RequirePersistentPKI bool   // REQUIRE_PERSISTENT_PKI

	EnrollmentTTL         time.Duration // DEFAULT_ENROLLMENT_TTL
	AgentCertTTL          time.Duration // AGENT_CERT_TTL
	HeartbeatInterval     time.Duration // HEARTBEAT_INTERVAL
	HeartbeatOfflineAfter time.Duration // HEARTBEAT_OFFLINE_AFTER
	MaxBodyBytes          int64         // NKUDO_MAX_BODY_BYTES
	ShutdownTimeout       time.Duration // HTTP_SHUTDOWN_TIMEOUT

	LogLevel  string // debug, info, warn, error (NKUDO_LOG_LEVEL)
	LogFormat string // text or json (NKUDO_LOG_FORMAT)

	// NetBird Management API; NetBird integration is off when the URL is
	// empty.
	NetBirdAPIURL string // NETBIRD_API_URL
	// NetBirdAPIToken is a personal access token; env only, never logged
	// (NETBIRD_API_TOKEN).
	NetBirdAPIToken string
	// NetBirdManagementURL is what agents pass to `netbird up
	// --management-url`; empty means the API URL's origin
	// (NETBIRD_MANAGEMENT_URL).
	NetBirdManagementURL string
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
// lookup (os.LookupEnv in production). Malformed values are errors rather
// than silently ignored.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) error {
	var errs []error
	str := func(name string, dst *string) {
		if v, ok := lookup(name); ok {
			*dst = v
		}
	}
	list := func(name string, dst *[]string) {
		if v, ok := lookup(name); ok {
			*dst = splitList(v)
		}
	}
	dur := func(name string, dst *time.Duration) {
		if v, ok := lookup(name); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not a duration (e.g. 30s, 15m)", name, v))
				return
			}
			*dst = d
		}
	}
	boolean := func(name string, dst *bool) {
		if v, ok := lookup(name); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not true or false", name, v))
				return
			}
			*dst = b
		}
	}
	str("NKUDO_ADDR", &c.Addr)
	str("NKUDO_METRICS_ADDR", &c.MetricsAddr)
	str("NKUDO_PPROF_ADDR", &c.PprofAddr)
	str("NKUDO_DATA_DIR", &c.DataDir)
	str("DATABASE_URL", &c.DatabaseURL)
	str("NKUDO_ADMIN_KEY", &c.AdminKey)
	list("NKUDO_SERVER_NAMES", &c.ServerNames)
	list("NKUDO_TRUSTED_PROXIES", &c.TrustedProxies)
	str("CA_CERT_FILE", &c.CACertFile)
	str("CA_KEY_FILE", &c.CAKeyFile)
	str("SERVER_CERT_FILE", &c.ServerCertFile)
	str("SERVER_KEY_FILE", &c.ServerKeyFile)
	boolean("REQUIRE_PERSISTENT_PKI", &c.RequirePersistentPKI)
	dur("DEFAULT_ENROLLMENT_TTL", &c.EnrollmentTTL)
	dur("AGENT_CERT_TTL", &c.AgentCertTTL)
	dur("HEARTBEAT_INTERVAL", &c.HeartbeatInterval)
	dur("HEARTBEAT_OFFLINE_AFTER", &c.HeartbeatOfflineAfter)
	dur("HTTP_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout)
	if v, ok := lookup("NKUDO_MAX_BODY_BYTES"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("NKUDO_MAX_BODY_BYTES: %q is not a number of bytes", v))
		} else {
			c.MaxBodyBytes = n
		}
	}
	str("NKUDO_LOG_LEVEL", &c.LogLevel)
	str("NKUDO_LOG_FORMAT", &c.LogFormat)
	str("NETBIRD_API_URL", &c.NetBirdAPIURL)
	str("NETBIRD_API_TOKEN", &c.NetBirdAPIToken)
	str("NETBIRD_MANAGEMENT_URL", &c.NetBirdManagementURL)
	return errors.Join(errs...)
}

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
		errs = append(errs, errors.New("--database-url (DATABASE_URL) must be a postgres:// URL"))
	}
	switch {
	case c.AdminKey == "":
		errs = append(errs, errors.New("NKUDO_ADMIN_KEY is required: set it to a random secret of at least 16 characters (e.g. `openssl rand -hex 32`)"))
	case len(c.AdminKey) < MinAdminKeyLen:
		errs = append(errs, fmt.Errorf("NKUDO_ADMIN_KEY is too short: use at least %d characters", MinAdminKeyLen))
	}
	if (c.CACertFile == "") != (c.CAKeyFile == "") {
		errs = append(errs, errors.New("CA_CERT_FILE and CA_KEY_FILE must be set together"))
	}
	if (c.ServerCertFile == "") != (c.ServerKeyFile == "") {
		errs = append(errs, errors.New("SERVER_CERT_FILE and SERVER_KEY_FILE must be set together"))
	}
	if c.RequirePersistentPKI && (c.CACertFile == "" || c.ServerCertFile == "") {
		errs = append(errs, errors.New("REQUIRE_PERSISTENT_PKI=true needs CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE and SERVER_KEY_FILE"))
	}
	for _, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			errs = append(errs, fmt.Errorf("--trusted-proxies: %q is neither an IP nor a CIDR", p))
		}
	}
	positive := []struct {
		name string
		d    time.Duration
		min  time.Duration
	}{
		{"DEFAULT_ENROLLMENT_TTL", c.EnrollmentTTL, time.Minute},
		{"AGENT_CERT_TTL", c.AgentCertTTL, 5 * time.Minute},
		{"HEARTBEAT_INTERVAL", c.HeartbeatInterval, time.Second},
		{"HEARTBEAT_OFFLINE_AFTER", c.HeartbeatOfflineAfter, time.Second},
		{"HTTP_SHUTDOWN_TIMEOUT", c.ShutdownTimeout, 0},
	}
	for _, p := range positive {
		if p.d < p.min || p.d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be at least %s (got %s)", p.name, max(p.min, time.Nanosecond), p.d))
		}
	}
	if c.HeartbeatOfflineAfter > 0 && c.HeartbeatInterval > 0 && c.HeartbeatOfflineAfter < 2*c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("HEARTBEAT_OFFLINE_AFTER (%s) must be at least twice HEARTBEAT_INTERVAL (%s), or agents flap offline", c.HeartbeatOfflineAfter, c.HeartbeatInterval))
	}
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
	return errors.Join(errs...)
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
			return []error{errors.New("NETBIRD_MANAGEMENT_URL needs --netbird-api-url (NETBIRD_API_URL)")}
		}
		return nil
	}
	var errs []error
	if err := secureURL(c.NetBirdAPIURL); err != nil {
		errs = append(errs, fmt.Errorf("--netbird-api-url (NETBIRD_API_URL): %w", err))
	}
	if strings.TrimSpace(c.NetBirdAPIToken) == "" {
		errs = append(errs, errors.New("NETBIRD_API_TOKEN is required with NETBIRD_API_URL: a NetBird personal access token"))
	} else if strings.ContainsAny(c.NetBirdAPIToken, "\r\n ") {
		errs = append(errs, errors.New("NETBIRD_API_TOKEN must be a single word"))
	}
	if c.NetBirdManagementURL != "" {
		if err := secureURL(c.NetBirdManagementURL); err != nil {
			errs = append(errs, fmt.Errorf("NETBIRD_MANAGEMENT_URL: %w", err))
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
