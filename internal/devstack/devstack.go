package devstack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/kubedoio/n-kudo/internal/agent"
	"github.com/kubedoio/n-kudo/internal/agent/enroll"
	"github.com/kubedoio/n-kudo/internal/agent/hostfacts"
	"github.com/kubedoio/n-kudo/internal/agent/identity"
	"github.com/kubedoio/n-kudo/internal/agent/imagedir"
	"github.com/kubedoio/n-kudo/internal/agent/statefile"
	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/hypervisor/sim"
	"github.com/kubedoio/n-kudo/internal/server"
	"github.com/kubedoio/n-kudo/internal/version"
)

// Names of the objects the stack bootstraps.
const (
	TenantName = "dev"
	SiteName   = "dev-site"
	KeyName    = "nkudo-dev"
)

// MaxAgents bounds --agents: each agent is a real session and a real
// state dir, and a laptop is not a load test.
const MaxAgents = 64

// ErrInvalidOptions reports unusable Options.
var ErrInvalidOptions = errors.New("invalid dev stack options")

// ProviderFunc opens the hypervisor provider of one agent.
type ProviderFunc func(ctx context.Context, runtimeDir string, log *slog.Logger) (hypervisor.Provider, error)

// Options configure a Stack.
type Options struct {
	// DataDir holds everything: server/ (database, PKI, admin key),
	// agents/agent-N/ (identity, state, runtime), images/ (the agents'
	// image directory, with a sample SampleImage) and dev.json.
	DataDir string
	// Agents is how many local agents to enroll and run.
	Agents int
	// Addr is the server's listen address; default 127.0.0.1:0.
	Addr string
	// HeartbeatInterval is what the server asks of agents; default 5 s,
	// so the console's gauges move while you watch.
	HeartbeatInterval time.Duration
	// Provider opens each agent's hypervisor; default SimProvider.
	Provider ProviderFunc
	// Logger receives the server's and the agents' logs.
	Logger *slog.Logger
}

// SampleImage is the file every dev stack puts in its image directory, so
// `nkudo vm create --disk-image <data-dir>/images/alpine.raw` works at
// once. It is an empty sparse file: enough for the sim hypervisor, which
// never reads it; a real VMM needs a real image put in its place.
const SampleImage = "alpine.raw"

// sampleImageSize is the apparent size of SampleImage (sparse: no blocks).
const sampleImageSize = 1 << 30

// SimProvider opens the simulated hypervisor.
func SimProvider(_ context.Context, runtimeDir string, _ *slog.Logger) (hypervisor.Provider, error) {
	return sim.Open(runtimeDir)
}

// Stack is a running control plane with its local agents.
type Stack struct {
	URL      string // https://127.0.0.1:<port>
	CAFile   string
	CAPEM    []byte
	AdminKey string
	APIKey   string // a tenant admin key of the dev tenant
	TenantID uuid.UUID
	SiteID   uuid.UUID
	Agents   []identity.Info
	// ImageDir is the agents' image directory (<data-dir>/images): VM
	// disk images and kernels must be files inside it.
	ImageDir string

	group  *errgroup.Group
	cancel context.CancelFunc
}

// bootstrap is what dev.json remembers between runs on the same data dir.
type bootstrap struct {
	TenantID uuid.UUID `json:"tenant_id"`
	SiteID   uuid.UUID `json:"site_id"`
	APIKey   string    `json:"api_key"`
}

func (o *Options) setDefaults() error {
	if o.DataDir == "" {
		return fmt.Errorf("%w: a data dir is required", ErrInvalidOptions)
	}
	if o.Agents < 0 || o.Agents > MaxAgents {
		return fmt.Errorf("%w: --agents must be between 0 and %d (got %d)", ErrInvalidOptions, MaxAgents, o.Agents)
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 5 * time.Second
	}
	if o.Provider == nil {
		o.Provider = SimProvider
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Start runs the server, bootstraps (or reuses) the dev tenant, site and
// key, enrolls the missing agents through the real enrollment route and
// starts every agent on the real WebSocket channel. It returns once all
// agents are online; everything stops when ctx is cancelled, and Wait
// reports how it ended.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	adminKey, err := loadOrCreateSecret(filepath.Join(o.DataDir, "admin.key"))
	if err != nil {
		return nil, err
	}

	cfg := server.DefaultConfig()
	cfg.DataDir = filepath.Join(o.DataDir, "server")
	cfg.Addr = o.Addr
	cfg.MetricsAddr = ""
	cfg.AdminKey = adminKey
	cfg.HeartbeatInterval = o.HeartbeatInterval
	cfg.HeartbeatOfflineAfter = 3 * o.HeartbeatInterval
	cfg.ShutdownTimeout = 5 * time.Second
	srv, err := server.New(ctx, cfg, o.Logger.With("component", "server"))
	if err != nil {
		return nil, fmt.Errorf("starting server: %w", err)
	}
	// The stack's own cancel stops what Start began when a later step
	// fails; otherwise the caller's ctx owns its life.
	sctx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(sctx)
	g.Go(func() error { return srv.Serve(gctx) })

	s := &Stack{
		URL:      "https://" + srv.Addr().String(),
		CAFile:   filepath.Join(cfg.DataDir, "pki", "ca.crt"),
		AdminKey: adminKey,
		group:    g,
		cancel:   cancel,
	}
	fail := func(err error) (*Stack, error) {
		cancel()
		return nil, errors.Join(err, s.Wait())
	}
	if s.CAPEM, err = os.ReadFile(s.CAFile); err != nil {
		return fail(fmt.Errorf("reading server CA: %w", err))
	}
	b, err := s.bootstrap(gctx, filepath.Join(o.DataDir, "dev.json"))
	if err != nil {
		return fail(err)
	}
	s.TenantID, s.SiteID, s.APIKey = b.TenantID, b.SiteID, b.APIKey

	ids, err := s.enrollAgents(gctx, o)
	if err != nil {
		return fail(err)
	}
	s.Agents = ids
	if s.ImageDir, err = makeImageDir(filepath.Join(o.DataDir, "images")); err != nil {
		return fail(err)
	}
	images, err := imagedir.New([]string{s.ImageDir})
	if err != nil {
		return fail(fmt.Errorf("opening image dir: %w", err))
	}
	for i, id := range ids {
		a, err := s.newAgent(gctx, o, agentDir(o.DataDir, i+1), id, images)
		if err != nil {
			return fail(err)
		}
		g.Go(func() error {
			if err := a.Run(gctx); err != nil && gctx.Err() == nil {
				return fmt.Errorf("running agent %s: %w", id.Hostname, err)
			}
			return nil
		})
	}
	if err := s.waitOnline(gctx, len(ids)); err != nil {
		return fail(err)
	}
	return s, nil
}

// Wait blocks until the stack has stopped (its context was cancelled or a
// part failed) and returns the first failure.
func (s *Stack) Wait() error {
	err := s.group.Wait()
	s.cancel()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Client returns an API client for the dev tenant's key.
func (s *Stack) Client() (*client.Client, error) {
	return client.New(client.Config{BaseURL: s.URL, CAPEM: s.CAPEM, APIKey: s.APIKey})
}

func (s *Stack) adminClient(tenant string) (*client.Client, error) {
	return client.New(client.Config{BaseURL: s.URL, CAPEM: s.CAPEM, APIKey: s.AdminKey, Tenant: tenant})
}

// bootstrap reuses dev.json when its key still works, otherwise finds or
// creates the dev tenant and site and mints a new key.
func (s *Stack) bootstrap(ctx context.Context, path string) (bootstrap, error) {
	var b bootstrap
	if err := statefile.Read(path, &b); err == nil && b.APIKey != "" {
		s.APIKey = b.APIKey
		c, err := s.Client()
		if err != nil {
			return b, err
		}
		defer c.Close()
		if _, err := c.GetSite(ctx, b.SiteID); err == nil {
			return b, nil
		}
	}
	admin, err := s.adminClient("")
	if err != nil {
		return b, err
	}
	defer admin.Close()
	tenantID, err := findOrCreateTenant(ctx, admin)
	if err != nil {
		return b, err
	}
	key, err := admin.CreateAPIKey(ctx, tenantID, KeyName+"-"+strconv.FormatInt(time.Now().Unix(), 10), "admin")
	if err != nil {
		return b, fmt.Errorf("creating dev API key: %w", err)
	}
	s.APIKey = key.Key
	c, err := s.Client()
	if err != nil {
		return b, err
	}
	defer c.Close()
	siteID, err := findOrCreateSite(ctx, c)
	if err != nil {
		return b, err
	}
	b = bootstrap{TenantID: tenantID, SiteID: siteID, APIKey: key.Key}
	if err := statefile.Write(path, b); err != nil {
		return b, fmt.Errorf("saving dev bootstrap: %w", err)
	}
	return b, nil
}

func findOrCreateTenant(ctx context.Context, admin *client.Client) (uuid.UUID, error) {
	for t, err := range admin.AllTenants(ctx) {
		if err != nil {
			return uuid.Nil, fmt.Errorf("listing tenants: %w", err)
		}
		if t.Name == TenantName {
			return t.ID, nil
		}
	}
	t, err := admin.CreateTenant(ctx, TenantName)
	if err != nil {
		return uuid.Nil, fmt.Errorf("creating dev tenant: %w", err)
	}
	return t.ID, nil
}

func findOrCreateSite(ctx context.Context, c *client.Client) (uuid.UUID, error) {
	for site, err := range c.AllSites(ctx) {
		if err != nil {
			return uuid.Nil, fmt.Errorf("listing sites: %w", err)
		}
		if site.Name == SiteName {
			return site.ID, nil
		}
	}
	site, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: SiteName, Description: "created by nkudo dev"})
	if err != nil {
		return uuid.Nil, fmt.Errorf("creating dev site: %w", err)
	}
	return site.ID, nil
}

func agentDir(dataDir string, n int) string {
	return filepath.Join(dataDir, "agents", fmt.Sprintf("agent-%d", n))
}

// enrollAgents enrolls every agent whose state dir has no identity yet,
// with one token for all of them, and returns all identities in order.
func (s *Stack) enrollAgents(ctx context.Context, o Options) ([]identity.Info, error) {
	var missing []int
	for n := 1; n <= o.Agents; n++ {
		ok, err := identity.Exists(agentDir(o.DataDir, n))
		if err != nil {
			return nil, fmt.Errorf("checking agent %d: %w", n, err)
		}
		if !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		c, err := s.Client()
		if err != nil {
			return nil, err
		}
		defer c.Close()
		tok, err := c.CreateEnrollmentToken(ctx, s.SiteID, client.CreateEnrollmentTokenRequest{TTL: 5 * time.Minute, MaxUses: len(missing)})
		if err != nil {
			return nil, fmt.Errorf("creating enrollment token: %w", err)
		}
		for _, n := range missing {
			if _, err := enroll.Enroll(ctx, enroll.Options{
				Server:   s.URL,
				Token:    tok.Token,
				StateDir: agentDir(o.DataDir, n),
				CAFile:   s.CAFile,
				Hostname: fmt.Sprintf("dev-agent-%d", n),
			}); err != nil {
				return nil, fmt.Errorf("enrolling agent %d: %w", n, err)
			}
		}
	}
	ids := make([]identity.Info, 0, o.Agents)
	for n := 1; n <= o.Agents; n++ {
		id, err := identity.Load(agentDir(o.DataDir, n))
		if err != nil {
			return nil, fmt.Errorf("loading agent %d: %w", n, err)
		}
		ids = append(ids, id.Info)
	}
	return ids, nil
}

// makeImageDir creates the stack's image directory with its SampleImage
// (kept when it exists: the user may have put a real image there) and
// returns its absolute path.
func makeImageDir(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("locating image dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating image dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, SampleImage), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return dir, nil
	}
	if err != nil {
		return "", fmt.Errorf("creating sample image: %w", err)
	}
	err = f.Truncate(sampleImageSize)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("sizing sample image: %w", err)
	}
	return dir, nil
}

func (s *Stack) newAgent(ctx context.Context, o Options, dir string, info identity.Info, images *imagedir.Dirs) (*agent.Agent, error) {
	id, err := identity.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("loading agent %s: %w", info.Hostname, err)
	}
	log := o.Logger.With("component", "agent", "agent", info.Hostname)
	runtimeDir := filepath.Join(dir, "runtime")
	pv, err := o.Provider(ctx, runtimeDir, log)
	if err != nil {
		return nil, fmt.Errorf("opening hypervisor of %s: %w", info.Hostname, err)
	}
	caps, err := pv.Capabilities(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading hypervisor capabilities of %s: %w", info.Hostname, err)
	}
	facts := agent.NewHostFacts(hostfacts.Options{
		Mounts: []string{"/", runtimeDir}, Hostname: info.Hostname,
		Hypervisor: caps, AgentVersion: version.Version,
	})
	a, err := agent.New(agent.Options{
		StateDir: dir, RuntimeDir: runtimeDir, Identity: id, Provider: pv, Images: images, Facts: facts,
		AgentVersion: version.Version, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("building agent %s: %w", info.Hostname, err)
	}
	return a, nil
}

// waitOnline polls the hosts until want of them are online, so the
// console opens on a live fleet rather than a half-connected one.
func (s *Stack) waitOnline(ctx context.Context, want int) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		online := 0
		for h, err := range c.AllHosts(ctx, client.Filter{}) {
			if err != nil {
				break
			}
			if h.Online {
				online++
			}
		}
		if online >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d agents to come online (%d are): %w", want, online, ctx.Err())
		case <-tick.C:
		}
	}
}

// loadOrCreateSecret returns the secret in path, creating a random one
// (0600) on first use, so a dev data dir keeps its admin key.
func loadOrCreateSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= server.MinAdminKeyLen {
		return string(b), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generating admin key: %w", err)
	}
	key := base64.RawURLEncoding.EncodeToString(raw)
	if err := statefile.WriteBytes(path, []byte(key)); err != nil {
		return "", fmt.Errorf("saving admin key: %w", err)
	}
	return key, nil
}

// Summary is what `nkudo dev --no-tui` prints: enough to script against
// the stack.
func (s *Stack) Summary() ([]byte, error) {
	return json.MarshalIndent(map[string]any{
		"server":    s.URL,
		"ca_file":   s.CAFile,
		"tenant_id": s.TenantID,
		"site_id":   s.SiteID,
		"agents":    s.Agents,
	}, "", "  ")
}
