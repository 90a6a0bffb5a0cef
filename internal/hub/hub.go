package hub

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/notify"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store"
)

// Sentinel errors.
var (
	// ErrLagged: a log subscriber did not keep up and was dropped; it should
	// re-read the stored lines and subscribe again.
	ErrLagged = errors.New("log subscriber fell behind")
	// ErrClosed: the subscription or the hub was closed.
	ErrClosed = errors.New("hub closed")
	// ErrStopped: Run was called on a hub that already ran.
	ErrStopped = errors.New("hub already ran")
)

// Defaults for zero Options fields.
const (
	DefaultQueueSize         = 64
	DefaultWriteTimeout      = 10 * time.Second
	DefaultHeartbeatInterval = agentproto.DefaultHeartbeatIntervalMS * time.Millisecond
	DefaultFlushInterval     = 250 * time.Millisecond
	DefaultHelloTimeout      = 10 * time.Second
	DefaultPingInterval      = 30 * time.Second
	// DefaultConsoleKeepAlive paces the keep-alives of relayed consoles:
	// a reader or holder replica that died is noticed within 30 s.
	DefaultConsoleKeepAlive = 10 * time.Second
	// DefaultHandshakesPerCPU sizes the admission limit: concurrent
	// handshakes (from the request to the end of hello processing) per
	// CPU. A handshake is mostly CPU (TLS, the hello's JSON) and a few
	// store round trips, so a few dozen per core keep the cores busy
	// without letting a reconnect storm queue hellos for seconds.
	DefaultHandshakesPerCPU = 32
	// DefaultAdmissionWait is how long a request waits for an admission
	// slot before it is refused with 503: long enough to absorb a burst
	// (its TLS handshake is already paid for), short enough that the
	// agent's dial does not time out.
	DefaultAdmissionWait = time.Second
	// DefaultRetryAfter bounds the Retry-After of an overload refusal;
	// each refusal draws a uniform number of seconds in [1, it].
	DefaultRetryAfter = 10 * time.Second
	// DefaultFlushSize is the number of queued heartbeats that triggers a
	// flush before the interval ends.
	DefaultFlushSize = 1000
)

// Tuning constants that need no knob.
const (
	// shardCount spreads the session registry over independent locks so
	// 10,000 sessions connecting at once do not queue on one mutex.
	shardCount = 64
	// logQueueBatches bounds the log batches waiting for the log batcher;
	// a full queue makes the sending session's reader wait, which pushes
	// back on that agent only (its TCP window fills), never on others.
	logQueueBatches = 512
	// logFlushLines and logFlushDelay bound one AppendLogLines call: big
	// enough to amortise the transaction, short enough that a follower
	// sees lines within tens of milliseconds.
	logFlushLines = 5000
	logFlushDelay = 10 * time.Millisecond
	// shutdownFlushTimeout bounds the final flushes when Run stops.
	shutdownFlushTimeout = 10 * time.Second
	// silentIntervals heartbeat intervals without a frame close a session.
	silentIntervals = 3
)

// slog keys.
const (
	logKeyAgent  = "agent_id"
	logKeyReason = "reason"
	logKeyErr    = "err"
	logKeyCode   = "code"
	logKeyRemote = "remote"
	logKeyType   = "type"
	logKeyCount  = "count"
)

// Options configure a Hub. Store and Authority are required.
type Options struct {
	Store     store.Store
	Logger    *slog.Logger
	Authority *pki.Authority
	// AgentCertTTL is the lifetime of renewed agent certificates;
	// pki.DefaultAgentCertTTL when zero.
	AgentCertTTL time.Duration
	// HeartbeatInterval is what hello_ack asks agents for; a session silent
	// for three intervals is closed.
	HeartbeatInterval time.Duration
	// OfflineAfter marks an agent offline when its last heartbeat is older;
	// 4 heartbeat intervals when zero.
	OfflineAfter time.Duration
	// Registerer receives the hub's metrics; none are registered when nil.
	Registerer prometheus.Registerer
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
	// QueueSize bounds each session's outbound queue.
	QueueSize int
	// WriteTimeout bounds the write of one frame.
	WriteTimeout time.Duration

	// FlushInterval is the longest a heartbeat waits for its batch.
	FlushInterval time.Duration
	// FlushSize flushes the heartbeat batch early when that many hosts
	// are queued.
	FlushSize int
	// SweepInterval is how often the offline sweeper runs; OfflineAfter/4
	// when zero.
	SweepInterval time.Duration
	// HelloTimeout bounds the wait for the first frame.
	HelloTimeout time.Duration
	// PingInterval is how often a websocket ping checks the peer.
	PingInterval time.Duration
	// Bus, when set, links the hubs of replicas sharing one database:
	// plans and revocations for an agent connected elsewhere, and log
	// lines for followers elsewhere, travel over it. It must not be
	// running yet: New subscribes to it.
	Bus notify.Bus
	// Clustered says other replicas may hold agents' sessions: a console
	// opened here for an agent connected elsewhere is relayed over Bus
	// (required then) from the replica holding the session. A lone hub
	// answers at once that the agent is offline.
	Clustered bool
	// ConsoleKeepAlive is how often the two ends of a relayed console
	// tell each other they are still there; an end silent for three
	// periods is given up. DefaultConsoleKeepAlive when zero.
	ConsoleKeepAlive time.Duration

	// MaxHandshakes bounds the connections between the request and the
	// end of their hello processing (admission control); the CPU count
	// times DefaultHandshakesPerCPU when zero.
	MaxHandshakes int
	// MaxHandshakesPerAgent bounds the handshakes one agent identity
	// holds at once; DefaultHandshakesPerAgent when zero.
	MaxHandshakesPerAgent int
	// MaxHandshakesPerAddress bounds the handshakes one source address
	// (an IPv6 /64) holds at once; a quarter of MaxHandshakes when zero.
	MaxHandshakesPerAddress int
	// AdmissionWait is how long a connection waits for a handshake slot
	// before it is refused with 503 and Retry-After.
	AdmissionWait time.Duration
	// RetryAfter bounds the jittered Retry-After of an overload refusal.
	RetryAfter time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.AgentCertTTL <= 0 {
		o.AgentCertTTL = pki.DefaultAgentCertTTL
	}
	minHB := time.Duration(agentproto.MinHeartbeatIntervalMS) * time.Millisecond
	maxHB := time.Duration(agentproto.MaxHeartbeatIntervalMS) * time.Millisecond
	switch {
	case o.HeartbeatInterval <= 0:
		o.HeartbeatInterval = DefaultHeartbeatInterval
	case o.HeartbeatInterval < minHB:
		o.HeartbeatInterval = minHB
	case o.HeartbeatInterval > maxHB:
		o.HeartbeatInterval = maxHB
	}
	if o.OfflineAfter <= 0 {
		o.OfflineAfter = 4 * o.HeartbeatInterval
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.FlushSize <= 0 {
		o.FlushSize = DefaultFlushSize
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = o.OfflineAfter / 4
	}
	if o.HelloTimeout <= 0 {
		o.HelloTimeout = DefaultHelloTimeout
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.ConsoleKeepAlive <= 0 {
		o.ConsoleKeepAlive = DefaultConsoleKeepAlive
	}
	if o.MaxHandshakes <= 0 {
		o.MaxHandshakes = runtime.GOMAXPROCS(0) * DefaultHandshakesPerCPU
	}
	if o.MaxHandshakesPerAgent <= 0 {
		o.MaxHandshakesPerAgent = DefaultHandshakesPerAgent
	}
	if o.MaxHandshakesPerAddress <= 0 {
		o.MaxHandshakesPerAddress = max(1, o.MaxHandshakes/defaultAddressShare)
	}
	if o.AdmissionWait <= 0 {
		o.AdmissionWait = DefaultAdmissionWait
	}
	if o.RetryAfter < time.Second {
		o.RetryAfter = DefaultRetryAfter
	}
}

// Hub runs the agent sessions of one server process.
type Hub struct {
	opts    Options
	log     *slog.Logger
	store   store.Store
	metrics *metrics
	// revoked remembers recent revocations (agent id → time) so a session
	// whose handshake passed the store's revocation check just before the
	// revoke, and registers just after it, is closed too.
	revoked sync.Map
	// bus links replicas (nil: a lone hub); node tells this hub's own
	// notices apart from other replicas'.
	bus  notify.Bus
	node uuid.UUID
	// checkEvery is the period of each session's liveness check: often
	// enough to notice silence within a fraction of the allowed window.
	checkEvery time.Duration

	shards [shardCount]shard
	live   atomic.Int64
	// acceptSeq numbers connections in the order they are accepted, so
	// that of two sessions of one agent the later connection wins however
	// their hellos interleave.
	acceptSeq atomic.Uint64
	// admit is the handshake semaphore of admission control: a slot is
	// held from the request until the hello has been processed; perAddr
	// and perAgent cap the slots one source may hold (admission.go).
	admit    chan struct{}
	perAddr  *keyedLimit[netip.Prefix]
	perAgent *keyedLimit[uuid.UUID]

	heartbeats *heartbeatBatcher
	plans      *planLookup
	logs       *logBatcher
	subs       subscriptions
	consoles   consoleTable
	// relayed are the consoles read here from an agent connected to
	// another replica; served are the tails of local agents this replica
	// relays to readers on other replicas.
	relayed consoleTable
	served  servedTable

	// lifeMu guards the following; it orders session starts against
	// shutdown so Run can wait for every session it must close.
	lifeMu   sync.Mutex
	started  bool
	stopping bool
	sessWG   sync.WaitGroup
	// relayWG counts the goroutines serving relayed consoles.
	relayWG sync.WaitGroup
	// stopCtx is cancelled when Run begins shutting down; every session
	// hangs a close on it with context.AfterFunc, which covers sessions
	// still waiting for their hello without a goroutine per session.
	stopCtx context.Context
	stopAll context.CancelFunc

	// beforeRegister, set by tests only, runs in onHello between queueing
	// hello_ack and registering the session.
	beforeRegister atomic.Pointer[func(agentID uuid.UUID)]
}

type shard struct {
	mu sync.Mutex // guards m
	m  map[uuid.UUID]*session
}

// New returns a Hub. It panics only on a programming error: a nil Store
// or Authority, or a Bus that is already running.
func New(opts Options) *Hub {
	if opts.Store == nil || opts.Authority == nil {
		panic("hub.New: Store and Authority are required")
	}
	opts.setDefaults()
	h := &Hub{
		opts:    opts,
		log:     opts.Logger,
		store:   opts.Store,
		metrics: newMetrics(opts.Registerer),
		bus:     opts.Bus,
		node:    uuid.New(),
		admit:   make(chan struct{}, opts.MaxHandshakes),
	}
	h.perAddr = newKeyedLimit[netip.Prefix](opts.MaxHandshakesPerAddress)
	h.perAgent = newKeyedLimit[uuid.UUID](opts.MaxHandshakesPerAgent)
	h.stopCtx, h.stopAll = context.WithCancel(context.Background())
	h.checkEvery = min(opts.PingInterval, opts.HeartbeatInterval)
	for i := range h.shards {
		h.shards[i].m = make(map[uuid.UUID]*session)
	}
	h.heartbeats = newHeartbeatBatcher(h)
	h.plans = newPlanLookup(h)
	h.logs = newLogBatcher(h)
	h.subs.m = make(map[uuid.UUID]map[*LogSubscription]struct{})
	h.subs.dropped = h.metrics.subscribersDropped
	if opts.Clustered && h.bus == nil {
		panic("hub.New: Clustered needs a Bus")
	}
	if h.bus != nil {
		if err := h.subscribeBus(); err != nil {
			panic("hub.New: " + err.Error())
		}
	}
	return h
}

func (h *Hub) now() time.Time { return h.opts.Now() }

func (h *Hub) shardOf(id uuid.UUID) *shard {
	return &h.shards[id[15]%shardCount]
}

// Run owns the hub's background loops: the heartbeat batcher, the log
// batcher, the pending-plans lookup and the offline sweeper. When ctx
// ends it closes every session with CloseGoingAway, waits for them,
// flushes what is queued and returns.
func (h *Hub) Run(ctx context.Context) error {
	h.lifeMu.Lock()
	if h.started {
		h.lifeMu.Unlock()
		return ErrStopped
	}
	h.started = true
	h.lifeMu.Unlock()

	// Batchers outlive ctx: sessions still deliver their last frames
	// while they close, and those must be flushed before Run returns.
	batchCtx, stopBatchers := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { h.heartbeats.run(batchCtx) })
	wg.Go(func() { h.logs.run(batchCtx) })
	wg.Go(func() { h.plans.run(batchCtx) })
	wg.Go(func() { h.sweep(ctx) })
	if h.opts.Clustered {
		wg.Go(func() { h.keepConsoles(ctx) })
	}

	<-ctx.Done()
	h.lifeMu.Lock()
	h.stopping = true
	h.stopAll()
	h.lifeMu.Unlock()

	h.closeAll(agentproto.CloseGoingAway, agentproto.CloseGoingAwayReason)
	h.sessWG.Wait()
	// Relayed tails end with their sessions; their readers elsewhere are
	// told before the bus stops.
	h.relayWG.Wait()
	stopBatchers()
	wg.Wait()
	h.subs.closeAll()
	return nil
}

// closeAll closes every live session.
func (h *Hub) closeAll(code websocket.StatusCode, reason string) {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			s.kill(code, reason, nil)
		}
		sh.mu.Unlock()
	}
}

// sweep marks agents without a recent heartbeat offline, and closes their
// sessions if any are still open (a half-open TCP connection, say).
func (h *Hub) sweep(ctx context.Context) {
	t := time.NewTicker(h.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.forgetRevocations(h.now().Add(-revokedMemory))
		cutoff := h.now().Add(-h.opts.OfflineAfter)
		agents, err := h.store.MarkStaleAgentsOffline(ctx, cutoff)
		if err != nil {
			if ctx.Err() == nil {
				h.log.Error("sweeping offline agents", logKeyErr, err)
			}
			continue
		}
		h.metrics.agentsMarkedOffline.Add(float64(len(agents)))
		for _, a := range agents {
			if s := h.lookup(a.ID); s != nil {
				s.kill(agentproto.CloseHeartbeatTimeout, agentproto.CloseHeartbeatTimeoutReason, nil)
			}
		}
		if len(agents) > 0 {
			h.log.Info("marked agents offline", logKeyCount, len(agents))
		}
	}
}

// beginSession reserves a place for a session, refusing once Run stops.
func (h *Hub) beginSession() bool { return h.begin(&h.sessWG) }

// begin counts a goroutine Run waits for in wg, refusing once Run stops.
func (h *Hub) begin(wg *sync.WaitGroup) bool {
	h.lifeMu.Lock()
	defer h.lifeMu.Unlock()
	if h.stopping {
		return false
	}
	wg.Add(1)
	return true
}

func (h *Hub) lookup(agentID uuid.UUID) *session {
	sh := h.shardOf(agentID)
	sh.mu.Lock()
	s := sh.m[agentID]
	sh.mu.Unlock()
	return s
}

// register makes s the agent's session and closes the one it replaces,
// and reports whether s was registered. The newer connection (by accept
// order) always wins: when hellos queue, an agent may have given up on an
// old connection and be served on a new one before the old hello is
// processed; letting the old one in last would close the live session
// with a permanent close. A session already closed is not registered.
func (h *Hub) register(s *session) bool {
	sh := h.shardOf(s.id.AgentID)
	sh.mu.Lock()
	old := sh.m[s.id.AgentID]
	if s.killed() || (old != nil && old.connSeq > s.connSeq) {
		sh.mu.Unlock()
		if old != nil {
			h.log.Info("closing stale agent session: a newer one is live", logKeyAgent, s.id.AgentID)
		}
		s.kill(agentproto.CloseReplaced, agentproto.CloseReplacedReason, nil)
		return false
	}
	// Revoke records the agent before it looks its session up (under this
	// shard lock), and the check below runs under the same lock before the
	// insert: a revocation racing this handshake always closes one of them.
	if _, ok := h.revoked.Load(s.id.AgentID); ok {
		sh.mu.Unlock()
		s.kill(agentproto.CloseRevoked, agentproto.CloseRevokedReason,
			&agentproto.Revoked{Reason: "agent identity revoked by an operator"})
		return false
	}
	sh.m[s.id.AgentID] = s
	sh.mu.Unlock()
	if old != nil {
		old.kill(agentproto.CloseReplaced, agentproto.CloseReplacedReason, nil)
		h.log.Info("agent session replaced", logKeyAgent, s.id.AgentID)
		return true
	}
	h.metrics.sessions.Set(float64(h.live.Add(1)))
	return true
}

// unregister removes s if it is still the agent's session.
func (h *Hub) unregister(s *session) {
	sh := h.shardOf(s.id.AgentID)
	sh.mu.Lock()
	cur := sh.m[s.id.AgentID]
	if cur == s {
		delete(sh.m, s.id.AgentID)
	}
	sh.mu.Unlock()
	if cur == s {
		h.metrics.sessions.Set(float64(h.live.Add(-1)))
	}
}

// Online reports whether the agent has a live session on this hub.
func (h *Hub) Online(agentID uuid.UUID) bool {
	return h.lookup(agentID) != nil
}

// Sessions returns the number of live (registered) sessions.
func (h *Hub) Sessions() int {
	return int(h.live.Load())
}

// DispatchPlan sends a freshly stored plan to its agent if the agent is
// connected here. It never blocks on the session: a session whose queue
// is full is closed as a slow consumer, and the plan, still pending in the
// store, is sent again after the agent's next hello. When the hub has a
// Bus, the plan is also announced to the other replicas (a bounded wait),
// and the one holding the session sends it.
//
// The announcement goes out even when a session is here, as a revocation
// does: that session may be a half-open older one whose agent has already
// reconnected to another replica (this hub notices only when the session
// goes silent). Without the notice the plan would reach the agent only at
// its next reconnect, since the live session's hello read the pending
// plans before this one was stored. The agent ignores a plan it holds.
func (h *Hub) DispatchPlan(p store.Plan) {
	if s := h.lookup(p.AgentID); s != nil {
		s.dispatch(p)
	}
	if h.bus != nil {
		h.publish(TopicPlanDispatch, planNotice{Origin: h.node, TenantID: p.TenantID, AgentID: p.AgentID, PlanID: p.ID})
	}
}

// Revoke closes the agent's live session, if any, with a revoked notice
// and CloseRevoked. Call it after store.RevokeAgent, so the agent's next
// handshake is refused too.
//
// With a Bus, the revocation is announced to the other replicas as well,
// even when the session is here: a half-open older session of the same
// agent may still live on another replica.
func (h *Hub) Revoke(agentID uuid.UUID) {
	h.revokeLocal(agentID)
	if h.bus != nil {
		h.publish(TopicAgentRevoke, revokeNotice{Origin: h.node, AgentID: agentID})
	}
}

// revokedMemory is how long a revocation is remembered in memory: far
// longer than any handshake in flight, after which the store's revoked
// flag refuses the agent at the handshake.
const revokedMemory = 10 * time.Minute

// forgetRevocations drops in-memory revocations recorded before cutoff.
func (h *Hub) forgetRevocations(cutoff time.Time) {
	h.revoked.Range(func(k, v any) bool {
		if v.(time.Time).Before(cutoff) {
			h.revoked.Delete(k)
		}
		return true
	})
}
