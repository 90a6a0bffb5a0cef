package api

import (
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubedoio/n-kudo/internal/event"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/mesh"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultEnrollmentTTL = 15 * time.Minute
	DefaultMaxBodyBytes  = 1 << 20
)

// Options configure an API. Store is required; every other field has a
// default.
type Options struct {
	Store  store.Store
	Logger *slog.Logger
	// AdminKey is NKUDO_ADMIN_KEY. Only its SHA-256 is kept; it is never
	// logged. Empty disables admin authentication.
	AdminKey string
	// EnrollmentTTL is the default lifetime of an enrollment token.
	EnrollmentTTL time.Duration
	// MaxBodyBytes caps every request body.
	MaxBodyBytes int64
	// BodyReadTimeout bounds the read of each request body (408 after
	// it); DefaultBodyReadTimeout when zero, no bound when negative.
	BodyReadTimeout time.Duration
	// TrustedProxies lists the CIDRs/IPs whose X-Forwarded-For is believed.
	// Empty: the client address always comes from the socket.
	TrustedProxies []string
	// Registerer receives the HTTP metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// IdempotencyWait bounds how long a request waits for another one
	// holding its Idempotency-Key to answer before it answers 409 with
	// Retry-After; DefaultIdempotencyWait when zero.
	IdempotencyWait time.Duration
	// IdempotencyLease is how long a key's reservation holds without an
	// answer: a request running under a key is cut at half of it, and a
	// reservation whose replica died is taken over after it.
	// DefaultIdempotencyLease when zero.
	IdempotencyLease time.Duration
	// RateLimit tunes the token buckets; zero fields take defaults.
	RateLimit RateLimitConfig
	// OnAgentRevoked, when set, is called after an agent was revoked
	// through the API, so the agent channel can close its live session.
	// It must not block.
	OnAgentRevoked func(store.Agent)

	// Authority signs agent certificates at POST /v1/enroll; without it
	// enrollment answers 503.
	Authority *pki.Authority
	// AgentCertTTL is the lifetime of enrolled agents' certificates;
	// pki.DefaultAgentCertTTL when zero.
	AgentCertTTL time.Duration
	// Hub is the agent channel: it serves GET /v1/agent/connect, receives
	// new plans, closes revoked agents' sessions and feeds live log
	// streams. Without it the channel answers 503, plans wait in the store
	// for whichever hub the agent connects to, and log streams poll.
	Hub *hub.Hub
	// Events is the live change feed served at GET /v1/events; without it
	// that route answers 503.
	Events *event.Broker
	// NetBird, when set, mints sealed setup keys for tokens of
	// NetBird-enabled sites, removes revoked agents' peers and adds the
	// management side to host views. Nil turns NetBird integration off.
	NetBird *mesh.Mesh
}

// API is the JSON API: a Gin engine with its middleware and handlers.
type API struct {
	store   store.Store
	log     *slog.Logger
	now     func() time.Time
	engine  *gin.Engine
	maxBody int64
	// bodyTimeout is Options.BodyReadTimeout; 0 means no bound.
	bodyTimeout time.Duration
	tokenTTL    time.Duration
	revoked     func(store.Agent)

	authority    *pki.Authority
	agentCertTTL time.Duration
	hub          *hub.Hub
	events       *event.Broker
	netbird      *mesh.Mesh
	// streamsDone is closed by CloseStreams to end live log streams.
	streamsDone  chan struct{}
	closeStreams sync.Once

	adminEnabled bool
	adminHash    [sha256.Size]byte

	limits  RateLimitConfig
	ipLim   *limiterTable
	keyLim  *limiterTable
	failLim *limiterTable
	enroLim *limiterTable

	touches   *touchTable
	idemWait  time.Duration
	idemLease time.Duration
	metrics   *httpMetrics
}

// setDefaults fills zero fields with their defaults and refuses values
// the API cannot work with.
func (o *Options) setDefaults() error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.EnrollmentTTL == 0 {
		o.EnrollmentTTL = DefaultEnrollmentTTL
	}
	if o.EnrollmentTTL < minTokenTTL || o.EnrollmentTTL > maxTokenTTL {
		return fmt.Errorf("%w: EnrollmentTTL %s outside %s..%s", ErrInvalidOptions, o.EnrollmentTTL, minTokenTTL, maxTokenTTL)
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxBodyBytes < 0 {
		return fmt.Errorf("%w: MaxBodyBytes is negative", ErrInvalidOptions)
	}
	switch {
	case o.BodyReadTimeout == 0:
		o.BodyReadTimeout = DefaultBodyReadTimeout
	case o.BodyReadTimeout < 0:
		o.BodyReadTimeout = 0
	}
	if o.IdempotencyWait == 0 {
		o.IdempotencyWait = DefaultIdempotencyWait
	}
	if o.IdempotencyLease == 0 {
		o.IdempotencyLease = DefaultIdempotencyLease
	}
	if o.IdempotencyWait < 0 || o.IdempotencyLease < 0 {
		return fmt.Errorf("%w: IdempotencyWait and IdempotencyLease must not be negative", ErrInvalidOptions)
	}
	if o.AgentCertTTL < 0 {
		return fmt.Errorf("%w: AgentCertTTL is negative", ErrInvalidOptions)
	}
	return nil
}

// New builds the API and registers its routes.
func New(opts Options) (*API, error) {
	if opts.Store == nil {
		return nil, fmt.Errorf("building api: %w: Store is required", ErrInvalidOptions)
	}
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("building api: %w", err)
	}
	limits, err := opts.RateLimit.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("building api: %w", err)
	}
	metrics, err := newHTTPMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("building api: %w", err)
	}

	a := &API{
		store:   opts.Store,
		log:     opts.Logger,
		now:     opts.Now,
		maxBody: opts.MaxBodyBytes,

		bodyTimeout: opts.BodyReadTimeout,
		tokenTTL:    opts.EnrollmentTTL,
		revoked:     opts.OnAgentRevoked,

		authority:    opts.Authority,
		agentCertTTL: opts.AgentCertTTL,
		hub:          opts.Hub,
		events:       opts.Events,
		netbird:      opts.NetBird,
		streamsDone:  make(chan struct{}),
		limits:       limits,
		ipLim:        newLimiterTable(limits.PerIP, limits.PerIPBurst, limits),
		keyLim:       newLimiterTable(limits.PerKey, limits.PerKeyBurst, limits),
		failLim:      newLimiterTable(limits.FailedAuthPerIP, limits.FailedAuthBurst, limits),
		enroLim:      newLimiterTable(limits.EnrollPerIP, limits.EnrollBurst, limits),
		touches:      newTouchTable(),
		idemWait:     opts.IdempotencyWait,
		idemLease:    opts.IdempotencyLease,
		metrics:      metrics,
	}
	if h := opts.Hub; h != nil {
		// A revoked agent's live session closes at once, then whatever
		// else the caller wants to hear about it.
		then := opts.OnAgentRevoked
		a.revoked = func(g store.Agent) {
			h.Revoke(g.ID)
			if then != nil {
				then(g)
			}
		}
	}
	if opts.AdminKey != "" {
		a.adminEnabled = true
		a.adminHash = sha256.Sum256([]byte(opts.AdminKey))
	}

	engine, err := a.newEngine(opts.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("building api: %w", err)
	}
	a.engine = engine
	a.routes()
	return a, nil
}

// Handler returns the HTTP handler serving the API.
func (a *API) Handler() http.Handler { return a.engine }

// Engine returns the Gin engine so later features can add routes; they
// inherit the global middleware (request id, log, metrics, recovery, body
// limit). Use the exported middleware accessors for the rest.
func (a *API) Engine() *gin.Engine { return a.engine }

func (a *API) newEngine(trusted []string) (*gin.Engine, error) {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.ContextWithFallback = true
	// Only the socket address counts unless the peer is a configured
	// proxy; an empty list must mean "trust nobody", not gin's default of
	// trusting everyone.
	if len(trusted) == 0 {
		trusted = nil
	}
	if err := e.SetTrustedProxies(trusted); err != nil {
		return nil, fmt.Errorf("setting trusted proxies: %w: %w", ErrInvalidOptions, err)
	}
	e.Use(securityHeaders, a.requestIDMiddleware, a.observe, a.recoverPanic, a.limitBody)
	e.NoRoute(func(c *gin.Context) {
		a.writeError(c, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such route"})
	})
	e.NoMethod(func(c *gin.Context) {
		a.writeError(c, &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, Message: "method not allowed on this route"})
	})
	return e, nil
}

// routes registers every route of the package. The chain order matters:
// rate limit by IP, authenticate, rate limit by key, scope to a tenant,
// audit (so refused mutations are recorded too), check the role, then
// idempotency for creating POSTs.
func (a *API) routes() {
	e := a.engine
	e.GET("/healthz", a.healthz)
	e.GET("/readyz", a.readyz)

	// Agent-facing routes: no API key. Enrollment has its own per-address
	// bucket; the channel is authenticated by the client certificate.
	e.POST("/v1/enroll", a.limitEnroll, a.enroll)
	e.GET("/v1/agent/connect", a.agentConnect)

	v1 := e.Group("/v1", a.limitIP)
	v1.GET("/openapi.json", a.serveOpenAPI)

	authed := v1.Group("", a.authenticate, a.limitKey)

	authed.POST("/tenants", a.audited("tenant.create"), a.requireAdminKey, a.idempotent, a.createTenant)
	authed.GET("/tenants", a.requireAdminKey, a.listTenants)

	keys := authed.Group("/tenants/:tenant/api-keys")
	keys.POST("", a.audited("api_key.create"), a.tenantAdminFromPath, a.idempotent, a.createAPIKey)
	keys.GET("", a.tenantAdminFromPath, a.listAPIKeys)
	keys.DELETE("/:id", a.audited("api_key.delete"), a.tenantAdminFromPath, a.deleteAPIKey)

	t := authed.Group("", a.tenantScope)
	operator := a.requireRole(store.RoleOperator)
	admin := a.requireRole(store.RoleAdmin)

	t.GET("/sites", a.listSites)
	t.POST("/sites", a.audited("site.create"), operator, a.idempotent, a.createSite)
	t.GET("/sites/:site", a.getSite)
	t.PATCH("/sites/:site", a.audited("site.update"), operator, a.updateSite)
	t.DELETE("/sites/:site", a.audited("site.delete"), operator, a.deleteSite)
	t.POST("/sites/:site/enrollment-tokens", a.audited("enrollment_token.create"), operator, a.idempotent, a.createEnrollmentToken)

	t.GET("/events", a.streamEvents)
	t.GET("/hosts", a.listHosts)
	t.GET("/hosts/:host", a.getHost)
	t.GET("/agents", a.listAgents)
	t.POST("/agents/:agent/revoke", a.audited("agent.revoke"), operator, a.revokeAgent)
	t.GET("/vms", a.listVMs)
	t.GET("/vms/:vm", a.getVM)
	t.POST("/vms", a.audited("vm.create"), operator, a.idempotent, a.createVM)
	t.POST("/vms/:vm/start", a.audited("vm.start"), operator, a.idempotent, a.vmActionHandler(vmStart))
	t.POST("/vms/:vm/stop", a.audited("vm.stop"), operator, a.idempotent, a.vmActionHandler(vmStop))
	t.POST("/vms/:vm/reboot", a.audited("vm.reboot"), operator, a.idempotent, a.vmActionHandler(vmReboot))
	t.DELETE("/vms/:vm", a.audited("vm.delete"), operator, a.vmActionHandler(vmDelete))
	t.GET("/vms/:vm/console", a.vmConsole)
	t.GET("/plans", a.listPlans)
	t.GET("/plans/:plan", a.getPlan)
	t.POST("/sites/:site/plans", a.audited("plan.create"), operator, a.idempotent, a.createPlan)
	t.GET("/executions/:id", a.getExecution)
	t.GET("/executions/:id/logs", a.listLogs)
	t.GET("/audit-events", admin, a.listAuditEvents)
}
