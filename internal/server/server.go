package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/kubedoio/n-kudo/internal/api"
	"github.com/kubedoio/n-kudo/internal/event"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/mesh"
	"github.com/kubedoio/n-kudo/internal/notify"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/retention"
	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/postgres"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
)

// Log keys used across the server's logs.
const (
	logKeyAddr        = "addr"
	logKeyErr         = "err"
	logKeyEngine      = "engine"
	logKeyFingerprint = "ca_fingerprint"
)

// SQLiteFile is the name of the embedded database inside the data dir.
const SQLiteFile = "nkudo.db"

// NewLogger builds the slog logger described by the config.
func NewLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// OpenStore opens the store the config names: PostgreSQL when DatabaseURL
// is set, otherwise SQLite in the data dir. Migrations are applied.
func OpenStore(ctx context.Context, cfg Config) (store.Store, string, error) {
	if cfg.DatabaseURL != "" {
		st, err := postgres.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, "", fmt.Errorf("opening PostgreSQL (NKUDO_DATABASE_URL): %w", err)
		}
		return st, "postgres", nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("creating data dir %s: %w", cfg.DataDir, err)
	}
	path := filepath.Join(cfg.DataDir, SQLiteFile)
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, "", fmt.Errorf("opening SQLite %s: %w", path, err)
	}
	return st, "sqlite", nil
}

// Migrate applies the migrations of the configured engine and returns.
func Migrate(ctx context.Context, cfg Config) error {
	if cfg.DatabaseURL != "" {
		return postgres.Migrate(ctx, cfg.DatabaseURL)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir %s: %w", cfg.DataDir, err)
	}
	return sqlite.Migrate(ctx, filepath.Join(cfg.DataDir, SQLiteFile))
}

// LoadPKI loads or creates the CA and server certificate for cfg: from
// the CA files when given, else from the database st when replicas share
// it (PostgreSQL, see Config.SharedPKI), else from the data dir.
func LoadPKI(ctx context.Context, cfg Config, st store.SharedPKI, log *slog.Logger) (*pki.Authority, error) {
	opts := pki.Options{
		Dir:               filepath.Join(cfg.DataDir, "pki"),
		CACertFile:        cfg.CACertFile,
		CAKeyFile:         cfg.CAKeyFile,
		ServerCertFile:    cfg.ServerCertFile,
		ServerKeyFile:     cfg.ServerKeyFile,
		RequirePersistent: cfg.RequirePersistentPKI,
		ServerNames:       cfg.ServerNames,
		Logger:            log,
	}
	if !cfg.SharedPKI() {
		return pki.LoadOrCreate(opts)
	}
	key, err := pki.ParseSealKey(cfg.PKISealKey)
	if err != nil {
		return nil, fmt.Errorf("NKUDO_PKI_SEAL_KEY: %w", err)
	}
	return pki.LoadShared(ctx, opts, pki.Shared{Store: caStore{st}, SealKey: key})
}

// caStore lets the PKI keep its CA in the store.
type caStore struct{ st store.SharedPKI }

func (c caStore) LoadCA(ctx context.Context) (pki.StoredCA, error) {
	ca, err := c.st.LoadCA(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return pki.StoredCA{}, pki.ErrNoStoredCA
	}
	return pki.StoredCA{CertPEM: ca.CertPEM, SealedKey: ca.SealedKey}, err
}

func (c caStore) StoreCAIfAbsent(ctx context.Context, ca pki.StoredCA) (pki.StoredCA, error) {
	got, err := c.st.StoreCAIfAbsent(ctx, store.StoredCA{CertPEM: ca.CertPEM, SealedKey: ca.SealedKey, CreatedAt: time.Now()})
	return pki.StoredCA{CertPEM: got.CertPEM, SealedKey: got.SealedKey}, err
}

// Server is a configured nkudo-server, ready to Serve.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    store.Store
	pki      *pki.Authority
	api      *api.API
	hub      *hub.Hub
	events   *event.Broker
	mesh     *mesh.Mesh // nil when NetBird is off
	registry *prometheus.Registry

	// bus links the replicas sharing the database (PostgreSQL
	// LISTEN/NOTIFY), or is in-process for SQLite; relay (PostgreSQL
	// only, nil otherwise) shares the event stream over it.
	bus   notify.Bus
	relay *event.Relay
	// retention deletes expired rows in the background.
	retention *retention.Job

	apiLn     net.Listener
	metricsLn net.Listener
	pprofLn   net.Listener // nil unless --pprof-addr is set
}

// New opens the store and PKI and binds the listeners, so that a caller
// learns about every startup problem before Serve. Close releases what New
// acquired when Serve is never called.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	s := &Server{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	for _, d := range cfg.Deprecations() {
		log.Warn(d)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir %s: %w", cfg.DataDir, err)
	}
	st, engine, err := s.openStorage(ctx)
	if err != nil {
		return nil, err
	}
	authority := s.pki
	// Every write, from the API and the agent channel alike, goes
	// through the event decorator so that GET /v1/events sees it.
	s.events = event.NewBroker(event.Options{})
	if s.bus, err = newBus(cfg, engine, log.With("component", "notify")); err != nil {
		_ = st.Close()
		return nil, err
	}
	// The relay reads other replicas' changes from the undecorated store:
	// re-publishing them must not announce them again. SQLite has one
	// replica, whose broker already sees every change: no relay, so
	// heartbeats are not encoded for nobody.
	if engine == "postgres" {
		if s.relay, err = event.NewRelay(s.events, st, s.bus, log.With("component", "events")); err != nil {
			_ = st.Close()
			return nil, fmt.Errorf("building event relay: %w", err)
		}
	}
	st = event.NewStore(st, s.events, log.With("component", "events"))
	s.store = st

	// The hub comes first: the API hands it plans, revocations and log
	// followers.
	s.hub = hub.New(hub.Options{
		Store:             st,
		Logger:            log.With("component", "hub"),
		Authority:         authority,
		AgentCertTTL:      cfg.AgentCertTTL,
		HeartbeatInterval: cfg.HeartbeatInterval,
		OfflineAfter:      cfg.HeartbeatOfflineAfter,
		Registerer:        s.registry,
		Bus:               s.bus,
		Clustered:         engine == "postgres", // replicas relay consoles
	})
	if cfg.NetBirdEnabled() {
		s.mesh, err = newMesh(cfg, st, log.With("component", "netbird"), s.registry)
		if err != nil {
			s.Close()
			return nil, err
		}
	}
	s.api, err = api.New(api.Options{
		Store:          st,
		Logger:         log,
		AdminKey:       cfg.AdminKey,
		EnrollmentTTL:  cfg.EnrollmentTTL,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		TrustedProxies: cfg.TrustedProxies,
		Registerer:     s.registry,
		Authority:      authority,
		AgentCertTTL:   cfg.AgentCertTTL,
		Hub:            s.hub,
		Events:         s.events,
		NetBird:        s.mesh,
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("building API: %w", err)
	}

	var lc net.ListenConfig
	s.apiLn, err = lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("listening on %s (--addr): %w", cfg.Addr, err)
	}
	if cfg.MetricsAddr != "" {
		s.metricsLn, err = lc.Listen(ctx, "tcp", cfg.MetricsAddr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("listening on %s (--metrics-addr): %w", cfg.MetricsAddr, err)
		}
	}
	if cfg.PprofAddr != "" {
		s.pprofLn, err = lc.Listen(ctx, "tcp", cfg.PprofAddr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("listening on %s (--pprof-addr): %w", cfg.PprofAddr, err)
		}
		log.Warn("profiling endpoint enabled", logKeyAddr, s.pprofLn.Addr().String())
	}
	log.Info("nkudo-server ready",
		logKeyAddr, s.apiLn.Addr().String(),
		logKeyEngine, engine,
		logKeyFingerprint, authority.Fingerprint(),
		"ca_file", filepath.Join(cfg.DataDir, "pki", "ca.crt"))
	return s, nil
}

// openStorage opens the store, then the PKI (replicas on PostgreSQL keep
// their one CA in the store) and the retention job on it. On failure it
// closes what it opened.
func (s *Server) openStorage(ctx context.Context) (store.Store, string, error) {
	st, engine, err := OpenStore(ctx, s.cfg)
	if err != nil {
		return nil, "", err
	}
	s.pki, err = LoadPKI(ctx, s.cfg, st, s.log.With("component", "pki"))
	if err != nil {
		_ = st.Close()
		return nil, "", fmt.Errorf("loading PKI: %w", err)
	}
	s.retention, err = retention.New(retention.Options{
		Store: st, Policy: s.cfg.Retention, Logger: s.log.With("component", "retention"), Registerer: s.registry,
	})
	if err != nil {
		_ = st.Close()
		return nil, "", err
	}
	return st, engine, nil
}

// Addr is the address the API listens on (useful with port 0).
func (s *Server) Addr() net.Addr { return s.apiLn.Addr() }

// MetricsAddr is the metrics listener's address, nil when disabled.
func (s *Server) MetricsAddr() net.Addr {
	if s.metricsLn == nil {
		return nil
	}
	return s.metricsLn.Addr()
}

// Authority is the server's PKI.
func (s *Server) Authority() *pki.Authority { return s.pki }

// Store is the server's store.
func (s *Server) Store() store.Store { return s.store }

// Close releases the listeners and the store.
func (s *Server) Close() {
	if s.apiLn != nil {
		_ = s.apiLn.Close()
	}
	if s.metricsLn != nil {
		_ = s.metricsLn.Close()
	}
	if s.pprofLn != nil {
		_ = s.pprofLn.Close()
	}
	if s.store != nil {
		_ = s.store.Close()
	}
}

// Serve runs until ctx is cancelled, then shuts down gracefully within
// ShutdownTimeout: it stops accepting HTTP and ends live log streams, waits
// for in-flight requests, then stops the hub (agent sessions are closed
// with going-away, so agents reconnect elsewhere or after the restart, and
// queued heartbeats and log lines are flushed), and finally closes the
// store.
func (s *Server) Serve(ctx context.Context) error {
	defer s.Close()
	httpSrv := &http.Server{
		Handler:           s.api.Handler(),
		TLSConfig:         s.pki.ServerTLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	servers := []*http.Server{httpSrv}

	// The hub outlives ctx: it must keep serving live sessions until HTTP
	// is shut down, and its batchers must flush before the store closes.
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHub()
	// The bus and the event relay outlive the hub: its last log flush
	// still tells other replicas' followers.
	busCtx, stopBus := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBus()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer stopBus()
		if err := s.hub.Run(hubCtx); err != nil {
			return fmt.Errorf("running agent hub: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := s.bus.Run(busCtx); err != nil {
			return fmt.Errorf("running notification bus: %w", err)
		}
		return nil
	})
	if s.relay != nil {
		g.Go(func() error {
			if err := s.relay.Run(busCtx); err != nil {
				return fmt.Errorf("running event relay: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := httpSrv.ServeTLS(s.apiLn, "", ""); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving API: %w", err)
		}
		return nil
	})
	s.runJobs(gctx, g)
	servers = append(servers, s.serveSide(g)...)
	g.Go(func() error {
		<-gctx.Done()
		// Whatever happens below, the hub stops once HTTP is down.
		defer stopHub()
		s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), s.cfg.ShutdownTimeout)
		defer cancel()
		// Log streams never finish on their own; Shutdown would wait
		// for them until the timeout.
		s.api.CloseStreams()
		var errs []error
		for _, srv := range servers {
			if err := srv.Shutdown(sctx); err != nil {
				errs = append(errs, err)
				_ = srv.Close()
			}
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("shutting down: %w", err)
		}
		return nil
	})
	err := g.Wait()
	s.log.Info("stopped")
	return err
}

// serveSide starts the metrics and pprof listeners, when configured, in g,
// and returns their servers for the shutdown to stop.
func (s *Server) serveSide(g *errgroup.Group) []*http.Server {
	var servers []*http.Server
	if s.metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry}))
		metricsSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, metricsSrv)
		g.Go(func() error {
			if err := metricsSrv.Serve(s.metricsLn); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving metrics: %w", err)
			}
			return nil
		})
	}
	if s.pprofLn != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		// No write timeout: a CPU profile or trace streams for as long
		// as its ?seconds= asks.
		pprofSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, pprofSrv)
		g.Go(func() error {
			if err := pprofSrv.Serve(s.pprofLn); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving pprof: %w", err)
			}
			return nil
		})
	}
	return servers
}

// runJobs starts the background jobs that stop with the HTTP servers:
// retention and, when NetBird is on, its sweeper (expired tokens' setup
// keys, the peer cache).
func (s *Server) runJobs(ctx context.Context, g *errgroup.Group) {
	g.Go(func() error {
		if err := s.retention.Run(ctx); err != nil {
			return fmt.Errorf("running retention: %w", err)
		}
		return nil
	})
	if s.mesh != nil {
		g.Go(func() error {
			if err := s.mesh.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("running netbird integration: %w", err)
			}
			return nil
		})
	}
}

// BusListening is closed once the notification bus listens: from then on
// plans, revocations, log lines and events from other replicas reach this
// one.
func (s *Server) BusListening() <-chan struct{} {
	if l, ok := s.bus.(interface{ Listening() <-chan struct{} }); ok {
		return l.Listening()
	}
	ch := make(chan struct{})
	close(ch)
	return ch
}

// newBus returns the notification bus of the engine: PostgreSQL
// LISTEN/NOTIFY on the same database, so that every replica on it hears
// the others, or an in-process bus for SQLite, which has one replica.
func newBus(cfg Config, engine string, log *slog.Logger) (notify.Bus, error) {
	if engine != "postgres" {
		return notify.NewLocal(notify.LocalOptions{Logger: log}), nil
	}
	bus, err := notify.NewPostgres(notify.PostgresOptions{URL: cfg.DatabaseURL, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("building notification bus (NKUDO_DATABASE_URL): %w", err)
	}
	return bus, nil
}

// Hub is the agent channel of the server.
func (s *Server) Hub() *hub.Hub { return s.hub }
