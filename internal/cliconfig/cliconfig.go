package cliconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Environment variables that locate the file.
const (
	EnvConfig        = "NKUDO_CONFIG"
	EnvXDGConfigHome = "XDG_CONFIG_HOME"
)

// FileMode is the only mode the file is written with: it holds API keys.
const FileMode fs.FileMode = 0o600

// Sentinel errors of the package.
var (
	ErrContextNotFound  = errors.New("context not found")
	ErrNoCurrentContext = errors.New("no current context")
	ErrInvalidContext   = errors.New("invalid context")
	ErrInsecureFile     = errors.New("config file is readable by others")
)

// Context is one control plane and the credentials to use it.
type Context struct {
	Name   string `yaml:"name" json:"name"`
	Server string `yaml:"server" json:"server"`
	// CA is the server's CA certificate, inline PEM or a file path.
	CA     string `yaml:"ca" json:"ca"`
	APIKey string `yaml:"api-key" json:"-"`
	// Tenant is the tenant id the admin key acts on.
	Tenant string `yaml:"tenant,omitempty" json:"tenant,omitempty"`
	// TenantName is the tenant's name, shown by the console; recorded
	// where it is known (nkudo dev), since a tenant key names no tenant.
	TenantName string `yaml:"tenant-name,omitempty" json:"tenant_name,omitempty"`
	// ReadOnly contexts refuse every mutating command, whatever the key
	// would allow: a guard against fat fingers on production.
	ReadOnly bool `yaml:"read-only,omitempty" json:"read_only,omitempty"`
}

// TenantLabel is how the console names the context's tenant: its name,
// else the id the admin key acts on, else "" (unknown).
func (c Context) TenantLabel() string {
	if c.TenantName != "" {
		return c.TenantName
	}
	return c.Tenant
}

// Validate checks the fields a context cannot work without.
func (c Context) Validate() error {
	var problems []string
	if c.Name == "" || strings.ContainsAny(c.Name, " \t\n/") {
		problems = append(problems, fmt.Sprintf("name %q must be non-empty without spaces or slashes", c.Name))
	}
	if !strings.HasPrefix(c.Server, "https://") {
		problems = append(problems, fmt.Sprintf("server %q must be an https:// URL", c.Server))
	}
	if c.CA == "" {
		problems = append(problems, "ca is required (PEM or a file path)")
	}
	if c.APIKey == "" {
		problems = append(problems, "api-key is required")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w %q: %s", ErrInvalidContext, c.Name, strings.Join(problems, "; "))
	}
	return nil
}

// CAPEM returns the CA certificate: CA itself when it is PEM, otherwise
// the content of the file it names.
func (c Context) CAPEM() ([]byte, error) {
	if strings.Contains(c.CA, "-----BEGIN") {
		return []byte(c.CA), nil
	}
	path := c.CA
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("reading CA of context %q: %w", c.Name, err)
		}
		path = filepath.Join(home, rest)
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CA of context %q: %w", c.Name, err)
	}
	return pem, nil
}

// Config is the whole file.
type Config struct {
	CurrentContext string    `yaml:"current-context"`
	Contexts       []Context `yaml:"contexts"`
}

// Path returns where the file lives: $NKUDO_CONFIG, else
// $XDG_CONFIG_HOME/nkudo/config.yaml, else ~/.config/nkudo/config.yaml.
// getenv is os.Getenv outside tests.
func Path(getenv func(string) string) (string, error) {
	if p := getenv(EnvConfig); p != "" {
		return p, nil
	}
	if x := getenv(EnvXDGConfigHome); x != "" {
		return filepath.Join(x, "nkudo", "config.yaml"), nil
	}
	home := getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("locating config file: %w", err)
		}
	}
	return filepath.Join(home, ".config", "nkudo", "config.yaml"), nil
}

// Load reads the file at path. A missing file is an empty config, so the
// first `nkudo login` just works.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening config %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checking config %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("loading config %s: %w (mode %04o); run: chmod 600 %s", path, ErrInsecureFile, st.Mode().Perm(), path)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	var c Config
	if err := yaml.Unmarshal(buf.Bytes(), &c); err != nil {
		return nil, fmt.Errorf("parsing config %s: %w", path, err)
	}
	seen := map[string]bool{}
	for _, ctx := range c.Contexts {
		if seen[ctx.Name] {
			return nil, fmt.Errorf("parsing config %s: context %q is defined twice", path, ctx.Name)
		}
		seen[ctx.Name] = true
	}
	return &c, nil
}

// Save writes the config to path atomically with mode 0600, creating its
// directory (0700) when needed.
func (c *Config) Save(path string) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding config: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating config dir %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("writing config %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	// CreateTemp already uses 0600; Chmod makes it independent of that
	// detail and of the umask.
	if err := tmp.Chmod(FileMode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing config %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing config %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing config %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing config %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing config %s: %w", path, err)
	}
	return nil
}

// Get returns the context called name.
func (c *Config) Get(name string) (Context, error) {
	for _, ctx := range c.Contexts {
		if ctx.Name == name {
			return ctx, nil
		}
	}
	return Context{}, fmt.Errorf("%w: %q", ErrContextNotFound, name)
}

// Current returns the current context.
func (c *Config) Current() (Context, error) {
	if c.CurrentContext == "" {
		return Context{}, ErrNoCurrentContext
	}
	return c.Get(c.CurrentContext)
}

// Set adds ctx or replaces the context of the same name, keeping the
// order of the others.
func (c *Config) Set(ctx Context) error {
	if err := ctx.Validate(); err != nil {
		return err
	}
	for i := range c.Contexts {
		if c.Contexts[i].Name == ctx.Name {
			c.Contexts[i] = ctx
			return nil
		}
	}
	c.Contexts = append(c.Contexts, ctx)
	return nil
}

// Use makes the context called name current.
func (c *Config) Use(name string) error {
	if _, err := c.Get(name); err != nil {
		return err
	}
	c.CurrentContext = name
	return nil
}

// Delete removes the context called name; deleting the current context
// leaves none current rather than silently picking another server.
func (c *Config) Delete(name string) error {
	i := slices.IndexFunc(c.Contexts, func(ctx Context) bool { return ctx.Name == name })
	if i < 0 {
		return fmt.Errorf("%w: %q", ErrContextNotFound, name)
	}
	c.Contexts = slices.Delete(c.Contexts, i, i+1)
	if c.CurrentContext == name {
		c.CurrentContext = ""
	}
	return nil
}
