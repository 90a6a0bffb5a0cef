package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/kubedoio/n-kudo/internal/agent/actioncache"
	"github.com/kubedoio/n-kudo/internal/agent/execlog"
	"github.com/kubedoio/n-kudo/internal/agent/executor"
	"github.com/kubedoio/n-kudo/internal/agent/identity"
	"github.com/kubedoio/n-kudo/internal/agent/imagedir"
	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/backoff"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/pki"
)

// Sentinel errors.
var (
	// ErrStopped: the server told the agent to stop for good (revoked,
	// capability too old) or refused its identity; reconnecting cannot
	// help without operator action.
	ErrStopped = errors.New("agent stopped by the server")
	// ErrConfig: the options are unusable.
	ErrConfig = errors.New("invalid agent options")
)

// DefaultReconnectMax caps the reconnect backoff. Below the backoff
// package's general 60 s: an agent that failed a few times in a row while
// its server restarted should be back within seconds of the server being
// up, and the server paces a storm itself (Retry-After, CloseOverloaded).
const DefaultReconnectMax = 15 * time.Second

// State file names inside the state directory.
const (
	ActionCacheFile = "actions.json"
	PlanQueueFile   = "plans.json"
	LogBufferFile   = "logs.json"
)

// Log keys.
const (
	logKeyErr     = "err"
	logKeyAgent   = "agent_id"
	logKeyServer  = "server"
	logKeyCode    = "close_code"
	logKeyReason  = "reason"
	logKeyDelay   = "retry_in"
	logKeyType    = "type"
	logKeyAction  = "action_id"
	logKeyPlan    = "plan_id"
	logKeySerial  = "serial"
	logKeyExpires = "expires_at"
)

// FactSource reports the host's facts and usage (internal/agent/hostfacts
// in production).
type FactSource interface {
	Facts(ctx context.Context) (agentproto.HostFacts, error)
	Usage(ctx context.Context) (agentproto.Usage, error)
}

// NetBirdSource reports the host's NetBird state.
type NetBirdSource interface {
	Status(ctx context.Context) agentproto.NetBirdStatus
}

// Options configures an Agent. StateDir, Identity, Provider and Facts are
// required.
type Options struct {
	StateDir string
	Identity *identity.Identity
	// Servers are the base URLs (https://HOST:PORT) of the replicas to
	// connect to, tried in turn: each session that fails or ends moves
	// to the next. Empty means the list stored at enrollment.
	Servers  []string
	Provider hypervisor.Provider
	// Images confines the files VMs boot from (--image-dir); nil refuses
	// every VM create.
	Images *imagedir.Dirs
	Facts  FactSource
	// NetBird is nil while NetBird support is off: the agent reports
	// state "disabled".
	NetBird NetBirdSource
	// RuntimeDir is the providers' runtime directory: the console log of
	// VM id is <RuntimeDir>/<id>/console.log. Empty disables console tails.
	RuntimeDir string
	// AgentVersion is sent in hello.
	AgentVersion string
	Logger       *slog.Logger
	Now          func() time.Time

	// Backoff paces reconnects; nil means backoff's defaults.
	Backoff *backoff.Backoff
	// StableAfter is how long a session must have lasted for the backoff
	// to start over; default 1 minute.
	StableAfter time.Duration
	// OverloadedDelay is added before reconnecting after the server
	// closed with CloseOverloaded; default 5 s.
	OverloadedDelay time.Duration
	// DialTimeout bounds dialling and the WebSocket handshake; default 30 s.
	DialTimeout time.Duration
	// HelloTimeout bounds the wait for hello_ack; default 10 s.
	HelloTimeout time.Duration
	// WriteTimeout bounds one frame write; default 10 s.
	WriteTimeout time.Duration
	// QueueSize bounds the outbound frames of a session; default 64.
	QueueSize int
	// RenewAt is the share of the certificate's lifetime after which it
	// is renewed; default 2/3.
	RenewAt float64
	// RenewRetry is the wait before asking again after a renewal went
	// unanswered or was refused; default 1 minute.
	RenewRetry time.Duration
	// MaxLogLines bounds the execution log buffer.
	MaxLogLines int
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Backoff == nil {
		o.Backoff = &backoff.Backoff{Max: DefaultReconnectMax}
	}
	if o.StableAfter <= 0 {
		o.StableAfter = time.Minute
	}
	if o.OverloadedDelay <= 0 {
		o.OverloadedDelay = 5 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 30 * time.Second
	}
	if o.HelloTimeout <= 0 {
		o.HelloTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 64
	}
	if o.RenewAt <= 0 || o.RenewAt >= 1 {
		o.RenewAt = 2.0 / 3.0
	}
	if o.RenewRetry <= 0 {
		o.RenewRetry = time.Minute
	}
	if o.AgentVersion == "" {
		o.AgentVersion = "dev"
	}
}

// Agent is the runtime of one enrolled agent.
type Agent struct {
	o Options
	// connects are the wss URLs of the servers' agent channels; connect
	// is the one the next (or current) session uses. Only the session
	// loop's goroutine touches connect and next.
	connects  []string
	connect   string
	next      int
	certs     *pki.CertStore
	transport *http.Transport
	cache     *actioncache.Cache
	queue     *executor.Queue
	logs      *execlog.Buffer
	exec      *executor.Executor
	wake      chan struct{} // results or running notices to send

	mu        sync.Mutex // guards the following
	running   []agentproto.ActionResult
	caPEM     []byte
	lastFacts string // factsKey of the facts last sent
}

// maxRunning bounds the best-effort "running" notices held between
// sessions' sends.
const maxRunning = 64

// New opens the agent's local state and returns an agent ready to Run.
func New(o Options) (*Agent, error) {
	o.setDefaults()
	if o.StateDir == "" || o.Identity == nil || o.Provider == nil || o.Facts == nil {
		return nil, fmt.Errorf("%w: state dir, identity, provider and facts are required", ErrConfig)
	}
	servers := o.Servers
	if len(servers) == 0 {
		servers = o.Identity.Info.ServerList()
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("%w: no server to connect to", ErrConfig)
	}
	connects := make([]string, 0, len(servers))
	for _, srv := range servers {
		c, err := connectURL(srv)
		if err != nil {
			return nil, err
		}
		connects = append(connects, c)
	}
	certs := pki.NewCertStore(o.Identity.Cert)
	tlsConf, err := certs.ClientTLSConfig(o.Identity.CAPEM)
	if err != nil {
		return nil, fmt.Errorf("creating agent: %w", err)
	}
	cache, err := actioncache.Open(filepath.Join(o.StateDir, ActionCacheFile))
	if err != nil {
		return nil, fmt.Errorf("creating agent: %w", err)
	}
	queue, err := executor.OpenQueue(filepath.Join(o.StateDir, PlanQueueFile))
	if err != nil {
		return nil, fmt.Errorf("creating agent: %w", err)
	}
	logs, err := execlog.Open(filepath.Join(o.StateDir, LogBufferFile), o.MaxLogLines)
	if err != nil {
		return nil, fmt.Errorf("creating agent: %w", err)
	}
	a := &Agent{
		o: o, connects: connects, connect: connects[0], certs: certs,
		transport: &http.Transport{TLSClientConfig: tlsConf, Proxy: http.ProxyFromEnvironment},
		cache:     cache, queue: queue, logs: logs,
		wake:  make(chan struct{}, 1),
		caPEM: o.Identity.CAPEM,
	}
	a.exec = executor.New(executor.Options{
		Provider: o.Provider, Images: o.Images, Cache: cache, Queue: queue, Logs: logs, Notifier: a,
		Logger: o.Logger.With("component", "executor"), Now: o.Now,
	})
	return a, nil
}

func connectURL(server string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("%w: server %q is not an https URL", ErrConfig, server)
	}
	u.Scheme = "wss"
	u.Path = strings.TrimRight(u.Path, "/") + "/v1/agent/connect"
	return u.String(), nil
}

// Running implements executor.Notifier.
func (a *Agent) Running(r agentproto.ActionResult) {
	a.mu.Lock()
	if len(a.running) < maxRunning {
		a.running = append(a.running, r)
	}
	a.mu.Unlock()
	a.signal()
}

// Finished implements executor.Notifier.
func (a *Agent) Finished(agentproto.ActionResult) { a.signal() }

func (a *Agent) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *Agent) takeRunning() []agentproto.ActionResult {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.running
	a.running = nil
	return r
}

// Certificate returns the client certificate the next handshake uses.
func (a *Agent) Certificate() *pki.CertStore { return a.certs }

// Run runs the executor and the session loop until ctx ends (nil) or the
// server stops the agent for good (an error wrapping ErrStopped).
func (a *Agent) Run(ctx context.Context) error {
	defer a.transport.CloseIdleConnections()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.exec.Run(gctx) })
	g.Go(func() error { return a.loop(gctx) })
	err := g.Wait()
	if ferr := a.logs.Flush(); ferr != nil {
		a.o.Logger.Warn("flushing execution log buffer", logKeyErr, ferr)
	}
	return err
}

// loop is the reconnect loop (the Auto layer).
func (a *Agent) loop(ctx context.Context) error {
	base := a.o.Logger.With(logKeyAgent, a.o.Identity.Info.AgentID)
	for {
		log := base.With(logKeyServer, a.connect)
		start := a.o.Now()
		res := a.runSession(ctx)
		if ctx.Err() != nil {
			return nil
		}
		// Whatever ended the session, the next one tries the next
		// server: a replica that went away (restart, crash) is passed
		// over at once, with the usual backoff before the attempt.
		a.failover()
		if res.stop != nil {
			log.Error("server stopped the agent; not reconnecting", logKeyErr, res.stop)
			return res.stop
		}
		if res.established && a.o.Now().Sub(start) >= a.o.StableAfter {
			a.o.Backoff.Reset()
		}
		if res.retryAfter > 0 {
			// The server's admission control said when to come back and
			// already jittered it; a little more jitter of our own spreads
			// agents refused in the same second. The exponential backoff
			// is left alone: being refused for load is not a failure of
			// this agent, and growing its delay would only slow the
			// fleet's return after a restart.
			d := res.retryAfter + rand.N(res.retryAfter/4+1)
			log.Info("server busy; reconnecting after its Retry-After", logKeyErr, res.err, logKeyDelay, d)
			if !sleep(ctx, d) {
				return nil
			}
			continue
		}
		extra := time.Duration(0)
		if res.code == agentproto.CloseOverloaded {
			extra = a.o.OverloadedDelay
		}
		log.Warn("agent channel ended; reconnecting", logKeyErr, res.err, logKeyCode, int(res.code), "attempt", a.o.Backoff.Attempt()+1)
		if extra > 0 && !sleep(ctx, extra) {
			return nil
		}
		if err := a.o.Backoff.Wait(ctx); err != nil {
			return nil
		}
	}
}

// failover makes the next session use the next server of the list.
func (a *Agent) failover() {
	a.next = (a.next + 1) % len(a.connects)
	a.connect = a.connects[a.next]
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// sessionResult says how a session ended.
type sessionResult struct {
	// established: hello_ack was received.
	established bool
	// code is the close status the server sent, -1 when none.
	code websocket.StatusCode
	err  error
	// stop is set when the agent must not reconnect.
	stop error
	// retryAfter is the server's Retry-After of a refused handshake.
	retryAfter time.Duration
}

// factsKey is the comparable form of facts. Free disk space is left out:
// it changes constantly, is reported as usage in every heartbeat, and
// would otherwise make every heartbeat carry the full facts.
func factsKey(f agentproto.HostFacts) string {
	f.Disks = append([]agentproto.Disk(nil), f.Disks...)
	for i := range f.Disks {
		f.Disks[i].FreeBytes = 0
	}
	b, err := json.Marshal(f)
	if err != nil {
		return ""
	}
	return string(b)
}

func (a *Agent) factsSent(f agentproto.HostFacts) {
	k := factsKey(f)
	a.mu.Lock()
	a.lastFacts = k
	a.mu.Unlock()
}

func (a *Agent) factsChanged(f agentproto.HostFacts) bool {
	k := factsKey(f)
	a.mu.Lock()
	defer a.mu.Unlock()
	return k == "" || k != a.lastFacts
}
