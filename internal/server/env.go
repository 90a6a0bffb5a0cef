package server

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// EnvVar binds one environment variable to a Config field. Every name
// starts with NKUDO_; Old is the name an earlier release (or the seed's
// convention) used, still read with a deprecation warning, "" when none.
type EnvVar struct {
	Name string
	Old  string
	set  func(c *Config, v string) error
}

// EnvVars is every environment variable of nkudo-server, in the order the
// README lists them. This one table is what ApplyEnv reads, so a new
// variable, or a renamed one, is a line here.
var EnvVars = []EnvVar{
	{"NKUDO_ADDR", "", setString(func(c *Config) *string { return &c.Addr })},
	{"NKUDO_METRICS_ADDR", "", setString(func(c *Config) *string { return &c.MetricsAddr })},
	{"NKUDO_PPROF_ADDR", "", setString(func(c *Config) *string { return &c.PprofAddr })},
	{"NKUDO_DATA_DIR", "", setString(func(c *Config) *string { return &c.DataDir })},
	{"NKUDO_DATABASE_URL", "DATABASE_URL", setString(func(c *Config) *string { return &c.DatabaseURL })},
	{"NKUDO_ADMIN_KEY", "", setString(func(c *Config) *string { return &c.AdminKey })},
	{"NKUDO_SERVER_NAMES", "", setList(func(c *Config) *[]string { return &c.ServerNames })},
	{"NKUDO_TRUSTED_PROXIES", "", setList(func(c *Config) *[]string { return &c.TrustedProxies })},
	{"NKUDO_CA_CERT_FILE", "CA_CERT_FILE", setString(func(c *Config) *string { return &c.CACertFile })},
	{"NKUDO_CA_KEY_FILE", "CA_KEY_FILE", setString(func(c *Config) *string { return &c.CAKeyFile })},
	{"NKUDO_SERVER_CERT_FILE", "SERVER_CERT_FILE", setString(func(c *Config) *string { return &c.ServerCertFile })},
	{"NKUDO_SERVER_KEY_FILE", "SERVER_KEY_FILE", setString(func(c *Config) *string { return &c.ServerKeyFile })},
	{"NKUDO_REQUIRE_PERSISTENT_PKI", "REQUIRE_PERSISTENT_PKI", setBool(func(c *Config) *bool { return &c.RequirePersistentPKI })},
	{"NKUDO_PKI_SEAL_KEY", "", setString(func(c *Config) *string { return &c.PKISealKey })},
	{"NKUDO_ENROLLMENT_TTL", "DEFAULT_ENROLLMENT_TTL", setDuration(func(c *Config) *time.Duration { return &c.EnrollmentTTL })},
	{"NKUDO_AGENT_CERT_TTL", "AGENT_CERT_TTL", setDuration(func(c *Config) *time.Duration { return &c.AgentCertTTL })},
	{"NKUDO_NETBIRD_API_URL", "NETBIRD_API_URL", setString(func(c *Config) *string { return &c.NetBirdAPIURL })},
	{"NKUDO_NETBIRD_API_TOKEN", "NETBIRD_API_TOKEN", setString(func(c *Config) *string { return &c.NetBirdAPIToken })},
	{"NKUDO_NETBIRD_MANAGEMENT_URL", "NETBIRD_MANAGEMENT_URL", setString(func(c *Config) *string { return &c.NetBirdManagementURL })},
	{"NKUDO_HEARTBEAT_INTERVAL", "HEARTBEAT_INTERVAL", setDuration(func(c *Config) *time.Duration { return &c.HeartbeatInterval })},
	{"NKUDO_HEARTBEAT_OFFLINE_AFTER", "HEARTBEAT_OFFLINE_AFTER", setDuration(func(c *Config) *time.Duration { return &c.HeartbeatOfflineAfter })},
	{"NKUDO_MAX_BODY_BYTES", "", setInt64(func(c *Config) *int64 { return &c.MaxBodyBytes })},
	{"NKUDO_SHUTDOWN_TIMEOUT", "HTTP_SHUTDOWN_TIMEOUT", setDuration(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
	{"NKUDO_RETENTION_LOGS", "", setAge(func(c *Config) *time.Duration { return &c.Retention.Logs })},
	{"NKUDO_RETENTION_AUDIT", "", setAge(func(c *Config) *time.Duration { return &c.Retention.Audit })},
	{"NKUDO_RETENTION_PLANS", "", setAge(func(c *Config) *time.Duration { return &c.Retention.Plans })},
	{"NKUDO_RETENTION_IDEMPOTENCY", "", setAge(func(c *Config) *time.Duration { return &c.Retention.IdempotencyKeys })},
	{"NKUDO_RETENTION_REVOKED_AGENTS", "", setAge(func(c *Config) *time.Duration { return &c.Retention.RevokedAgents })},
	{"NKUDO_RETENTION_INTERVAL", "", setDuration(func(c *Config) *time.Duration { return &c.Retention.Interval })},
	{"NKUDO_LOG_LEVEL", "", setString(func(c *Config) *string { return &c.LogLevel })},
	{"NKUDO_LOG_FORMAT", "", setString(func(c *Config) *string { return &c.LogFormat })},
}

func setString(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = v; return nil }
}

func setList(field func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = splitList(v); return nil }
}

func setBool(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*field(c) = b
		return nil
	}
}

func setInt64(field func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		*field(c) = n
		return nil
	}
}

func setDuration(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. 30s, 15m)", v)
		}
		*field(c) = d
		return nil
	}
}

func setAge(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := ParseAge(v)
		if err != nil {
			return err
		}
		*field(c) = d
		return nil
	}
}

// ParseAge reads a retention age: a whole number of days ("7d"), or any
// Go duration ("36h", "90m"). "0" (or any zero) turns the retention off.
func ParseAge(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 32)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not an age (e.g. 7d, 36h, 0 to keep forever)", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not an age (e.g. 7d, 36h, 0 to keep forever)", v)
	}
	return d, nil
}

// FormatAge writes an age the way ParseAge reads it: whole days as "7d",
// anything else as a Go duration.
func FormatAge(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	if d == 0 {
		return "0"
	}
	return d.String()
}

// AgeValue is a pflag.Value for a retention age flag (ParseAge syntax).
type AgeValue struct{ D *time.Duration }

// String implements pflag.Value.
func (a AgeValue) String() string {
	if a.D == nil {
		return "0"
	}
	return FormatAge(*a.D)
}

// Set implements pflag.Value.
func (a AgeValue) Set(v string) error {
	if a.D == nil {
		return errors.New("age flag has no destination")
	}
	d, err := ParseAge(v)
	if err != nil {
		return err
	}
	*a.D = d
	return nil
}

// Type implements pflag.Value.
func (a AgeValue) Type() string { return "age" }
