package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store"
)

// outFrame is one queued outbound message. It is encoded by the writer,
// which numbers frames, so seq always matches the order on the wire even
// when several goroutines enqueue.
type outFrame struct {
	id  string
	msg agentproto.Message
}

// session is one agent's live connection. Its reader runs on a goroutine
// of its own (serve); a writer goroutine (writeLoop) exists only while
// frames are queued or the connection must be closed, and a timer checks
// for silence and pings. An idle session thus costs one goroutine. Fields
// are kept few, since 10,000 of them must stay small.
type session struct {
	hub    *Hub
	conn   *websocket.Conn
	id     pki.AgentIdentity
	hostID uuid.UUID
	// version is the agent version on record when the connection was
	// accepted; a hello reporting the same one needs no write of its own.
	version string
	// connSeq is the connection's place in accept order (Hub.acceptSeq).
	connSeq uint64
	// ctx bounds the session's store calls; cancelled when serve returns.
	ctx    context.Context
	cancel context.CancelFunc

	done   chan struct{} // closed by kill
	closed chan struct{} // closed once the writer has closed the connection

	killOnce    sync.Once
	closeCode   websocket.StatusCode // set before done is closed
	closeReason string
	final       agentproto.Message // sent before the close, when set

	// lastRead is the unix-nano time of the last frame read, for the
	// silence check.
	lastRead atomic.Int64

	// Reader-owned state.
	inSeq     uint64
	nbHash    uint64
	vmHash    uint64
	lastExec  uuid.UUID // last execution verified to belong to this agent
	holdsSlot bool      // the admission slot is still held
	admission admission // what holdsSlot holds

	qmu sync.Mutex // guards the following
	// queue holds the frames waiting for the writer, at most
	// Options.QueueSize; nil while idle.
	queue []outFrame
	// writing is set while a writer goroutine runs; that goroutine owns
	// outSeq and the connection's writes until it clears it.
	writing bool
	// held: writing is set, but the writer waits for startWriter.
	held   bool
	dead   bool // killed: nothing more is queued
	outSeq uint64
	// timer fires the liveness check; lastPing is when it last pinged.
	timer    *time.Timer
	lastPing time.Time

	mu    sync.Mutex // guards the following
	ready bool       // pending plans sent; DispatchPlan may enqueue directly
	early []store.Plan
}

func newSession(h *Hub, conn *websocket.Conn, id pki.AgentIdentity, agent store.Agent, connSeq uint64) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{
		hub:     h,
		conn:    conn,
		id:      id,
		hostID:  agent.HostID,
		version: agent.Version,
		connSeq: connSeq,
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		closed:  make(chan struct{}),
	}
	s.lastRead.Store(time.Now().UnixNano())
	return s
}

// kill asks the writer to close the connection with code (after sending
// final, when set), starting one if none runs. Only the first call counts;
// it reports whether it was the first. It never blocks.
func (s *session) kill(code websocket.StatusCode, reason string, final agentproto.Message) bool {
	first := false
	s.killOnce.Do(func() {
		first = true
		s.closeCode, s.closeReason, s.final = code, reason, final
		close(s.done)
		s.qmu.Lock()
		s.dead = true
		// Frames still queued are dropped: a killed session closes
		// promptly, and a slow consumer would not take them anyway.
		s.queue = nil
		start := !s.writing
		s.writing = true
		if s.timer != nil {
			s.timer.Stop()
		}
		s.qmu.Unlock()
		if start {
			go s.writeLoop()
		}
	})
	return first
}

// killed reports whether kill was called.
func (s *session) killed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// enqueue queues a frame without blocking and starts the writer if it is
// not running; a full queue closes the session as a slow consumer, because
// waiting would stall the caller (an API request, the log batcher) on one
// agent.
func (s *session) enqueue(id string, msg agentproto.Message) bool {
	s.qmu.Lock()
	if s.dead {
		s.qmu.Unlock()
		return false
	}
	if len(s.queue) >= s.hub.opts.QueueSize {
		s.qmu.Unlock()
		if s.kill(agentproto.CloseSlowConsumer, agentproto.CloseSlowConsumerReason, nil) {
			s.hub.metrics.slowConsumerCloses.Inc()
			s.hub.log.Warn("closing slow agent session: outbound queue full", logKeyAgent, s.id.AgentID)
		}
		return false
	}
	s.queue = append(s.queue, outFrame{id: id, msg: msg})
	start := !s.writing
	s.writing = true
	s.qmu.Unlock()
	if start {
		go s.writeLoop()
	}
	return true
}

// holdFirst queues the session's first frame with the writer held back:
// frames queue behind it, and nothing is written until startWriter.
func (s *session) holdFirst(msg agentproto.Message) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.dead {
		return // kill's writer only closes
	}
	s.queue = append(s.queue, outFrame{msg: msg})
	s.held = !s.writing
	s.writing = true
}

// startWriter releases what holdFirst held back; kill does not start a
// writer meanwhile (writing is set), so the close waits for this too.
func (s *session) startWriter() {
	s.qmu.Lock()
	start := s.held
	s.held = false
	s.qmu.Unlock()
	if start {
		go s.writeLoop()
	}
}

func (s *session) sendError(id, code, message string) {
	s.enqueue(id, &agentproto.Error{Code: code, Message: message})
}

// writeLoop writes queued frames in order and exits once the queue is
// empty, so an idle session keeps no writer goroutine (and no stack).
// Once the session is killed it sends the final frame and closes the
// connection instead.
func (s *session) writeLoop() {
	for {
		s.qmu.Lock()
		if s.dead {
			s.qmu.Unlock()
			s.finish()
			return
		}
		if len(s.queue) == 0 {
			s.writing = false
			s.queue = nil
			s.qmu.Unlock()
			return
		}
		f := s.queue[0]
		s.queue[0] = outFrame{}
		s.queue = s.queue[1:]
		s.qmu.Unlock()
		if err := s.write(f); err != nil {
			// writeFailed kills the session; the next turn closes.
			s.writeFailed(err)
		}
	}
}

// armLiveness starts the session's liveness timer. A timer rather than a
// goroutine per session: 10,000 idle sessions must not keep 10,000 stacks
// just to look at a clock.
func (s *session) armLiveness() {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.dead {
		return
	}
	s.lastPing = time.Now()
	s.timer = time.AfterFunc(s.hub.checkEvery, s.check)
}

// check closes a silent session, pings the agent when a ping is due, and
// re-arms the timer.
func (s *session) check() {
	h := s.hub
	now := time.Now()
	silent := now.Sub(time.Unix(0, s.lastRead.Load()))
	if silent > silentIntervals*h.opts.HeartbeatInterval {
		if s.kill(agentproto.CloseHeartbeatTimeout, agentproto.CloseHeartbeatTimeoutReason, nil) {
			h.log.Info("closing silent agent session", logKeyAgent, s.id.AgentID, "silent_for", silent)
		}
		return
	}
	s.qmu.Lock()
	if s.dead {
		s.qmu.Unlock()
		return
	}
	ping := now.Sub(s.lastPing) >= h.opts.PingInterval
	if ping {
		s.lastPing = now
	}
	s.qmu.Unlock()
	if ping {
		ctx, cancel := context.WithTimeout(context.Background(), h.opts.WriteTimeout)
		err := s.conn.Ping(ctx)
		cancel()
		if err != nil {
			// A ping cut short by the session's own close is no news.
			if !s.killed() {
				s.writeFailed(fmt.Errorf("pinging: %w", err))
			}
			return
		}
	}
	s.qmu.Lock()
	if !s.dead {
		s.timer.Reset(h.checkEvery)
	}
	s.qmu.Unlock()
}

func (s *session) write(f outFrame) error {
	typ := f.msg.MessageType()
	frame, err := agentproto.Encode(typ, f.id, s.outSeq+1, 0, f.msg)
	if err != nil {
		// Only a bug (or a plan the store accepted beyond the protocol's
		// limits) gets here; the frame is dropped, the session lives on.
		s.hub.log.Error("encoding frame for agent", logKeyAgent, s.id.AgentID, logKeyType, typ, logKeyErr, err)
		return nil
	}
	s.outSeq++
	ctx, cancel := context.WithTimeout(context.Background(), s.hub.opts.WriteTimeout)
	defer cancel()
	if err := s.conn.Write(ctx, websocket.MessageText, frame); err != nil {
		return fmt.Errorf("writing %s frame: %w", typ, err)
	}
	s.hub.metrics.frameOut(typ)
	return nil
}

// writeFailed ends a session whose write or ping failed. A deadline means
// the agent stopped reading: a slow consumer. The library has already torn
// the connection down by then, so no close frame can be sent.
func (s *session) writeFailed(err error) {
	if errors.Is(err, context.DeadlineExceeded) {
		if s.kill(agentproto.CloseSlowConsumer, agentproto.CloseSlowConsumerReason, nil) {
			s.hub.metrics.slowConsumerCloses.Inc()
			s.hub.log.Warn("closing slow agent session: write timed out", logKeyAgent, s.id.AgentID)
		}
	} else {
		s.kill(websocket.StatusAbnormalClosure, "write failed", nil)
	}
	_ = s.conn.CloseNow()
}

// finish sends the final frame, if any, and closes with the kill status.
func (s *session) finish() {
	defer close(s.closed)
	if s.final != nil {
		if err := s.write(outFrame{msg: s.final}); err != nil {
			_ = s.conn.CloseNow()
			return
		}
	}
	_ = s.conn.Close(s.closeCode, s.closeReason)
}

// errTransport marks a read error of the connection itself (closed by the
// peer or by the writer), as opposed to a bad frame.
type errTransport struct{ err error }

func (e errTransport) Error() string { return e.err.Error() }
func (e errTransport) Unwrap() error { return e.err }

// readEnvelope reads and decodes one frame and checks its seq.
func (s *session) readEnvelope() (agentproto.Envelope, error) {
	// No context deadline: the writer closes the connection to stop this
	// read, so the close status is the one the writer chose.
	typ, data, err := s.conn.Read(context.Background())
	if err != nil {
		return agentproto.Envelope{}, errTransport{err}
	}
	s.lastRead.Store(time.Now().UnixNano())
	if typ != websocket.MessageText {
		return agentproto.Envelope{}, fmt.Errorf("reading frame: binary message: %w", agentproto.ErrMalformed)
	}
	env, err := agentproto.Decode(data)
	if err != nil {
		return env, err
	}
	if env.Seq != 0 {
		if env.Seq != s.inSeq+1 {
			return env, fmt.Errorf("reading %s frame: seq %d after %d: %w", env.Type, env.Seq, s.inSeq, errSeq)
		}
		s.inSeq = env.Seq
	}
	s.hub.metrics.frameIn(env.Type)
	return env, nil
}

// errSeq: a frame broke the seq rule. It maps to CloseProtocolError.
var errSeq = errors.New("sequence gap")

// fail closes the session for a bad frame or protocol violation.
func (s *session) fail(err error) {
	code, reason := agentproto.CloseFor(err)
	if s.kill(code, reason, nil) {
		s.hub.log.Info("closing agent session", logKeyAgent, s.id.AgentID, logKeyCode, int(code), logKeyErr, err)
	}
}

// releaseSlot gives back the admission slot once the hello is processed
// (or the session ended before that).
func (s *session) releaseSlot() {
	if s.holdsSlot {
		s.holdsSlot = false
		s.hub.release(s.admission)
	}
}

// serve runs the session until it ends. ServeAgent starts it on a goroutine
// of its own and returns, so the HTTP handler's goroutine (its grown stack)
// and net/http's per-request state are freed while the hijacked connection
// lives on. It owns one sessWG place, taken by ServeAgent.
func (s *session) serve(remote string) {
	h := s.hub
	defer h.sessWG.Done()
	// Covers sessions not registered yet (still waiting for hello), which
	// closeAll cannot see.
	stopOnShutdown := context.AfterFunc(h.stopCtx, func() {
		s.kill(agentproto.CloseGoingAway, agentproto.CloseGoingAwayReason, nil)
	})
	registered := false
	defer func() {
		stopOnShutdown()
		s.releaseSlot()
		s.kill(agentproto.CloseNormal, agentproto.CloseNormalReason, nil)
		<-s.closed
		if registered {
			h.unregister(s)
		}
		h.consoles.endSession(s)
		s.cancel()
	}()
	s.armLiveness()

	helloTimer := time.AfterFunc(h.opts.HelloTimeout, func() {
		if s.kill(agentproto.CloseProtocolError, "no hello in time", nil) {
			h.metrics.refused(refuseNoHello)
			h.log.Info("closing agent session: no hello in time", logKeyAgent, s.id.AgentID, logKeyRemote, remote)
		}
	})
	env, err := s.readEnvelope()
	helloTimer.Stop()
	if err != nil {
		if !errors.As(err, new(errTransport)) {
			s.fail(err)
		}
		return
	}
	if env.Type != agentproto.TypeHello {
		s.fail(fmt.Errorf("first frame is %s, want hello", env.Type))
		return
	}
	// The capability check comes before full validation: an agent too old
	// to be served may well send a hello today's rules reject, and it must
	// hear "upgrade me", not "malformed".
	var capability struct {
		CapabilityVersion int `json:"capability_version"`
	}
	// Only an object can name a capability: a null or array hello is
	// malformed, and DecodeData below says so.
	isObject := bytes.HasPrefix(bytes.TrimSpace(env.Data), []byte("{"))
	if isObject && json.Unmarshal(env.Data, &capability) == nil && capability.CapabilityVersion < agentproto.MinCapabilityVersion {
		h.metrics.refused(refuseCapability)
		h.log.Warn("refusing agent: capability version too old", logKeyAgent, s.id.AgentID,
			"capability_version", capability.CapabilityVersion, "min", agentproto.MinCapabilityVersion)
		s.kill(agentproto.CloseCapabilityTooOld, agentproto.CloseCapabilityTooOldReason, nil)
		return
	}
	hello, err := agentproto.DecodeData[agentproto.Hello](env)
	if err != nil {
		s.fail(err)
		return
	}
	registered = true
	err = s.onHello(hello)
	s.releaseSlot()
	if err != nil {
		h.log.Error("starting agent session", logKeyAgent, s.id.AgentID, logKeyErr, err)
		s.kill(websocket.StatusInternalError, "server error, retry later", nil)
		return
	}
	h.log.Debug("agent session started", logKeyAgent, s.id.AgentID, logKeyRemote, remote)

	for {
		env, err := s.readEnvelope()
		if err != nil {
			if !errors.As(err, new(errTransport)) {
				s.fail(err)
			}
			return
		}
		if err := s.handle(env); err != nil {
			s.fail(err)
			return
		}
	}
}

// onHello accepts the session: hello_ack first, then the recorded state,
// then every plan still pending, in creation order.
func (s *session) onHello(m agentproto.Hello) error {
	h := s.hub
	now := h.now()
	// hello_ack goes out before any store work: in a reconnect storm the
	// store is what queues, and the agent's hello timeout is running.
	// It is queued first and written only once the session is registered
	// (holdFirst, register, startWriter): hello_ack stays the first frame,
	// and the session is reachable (DispatchPlan, Revoke, OpenConsole,
	// Online) by the time the agent holds hello_ack. Until ready,
	// DispatchPlan parks plans in s.early.
	s.holdFirst(&agentproto.HelloAck{
		AgentID:             s.id.AgentID,
		CapabilityVersion:   agentproto.CapabilityVersion,
		HeartbeatIntervalMS: h.opts.HeartbeatInterval.Milliseconds(),
		ServerTime:          now.UTC(),
		Limits:              agentproto.DefaultLimits(),
	})
	if hook := h.beforeRegister.Load(); hook != nil {
		(*hook)(s.id.AgentID)
	}
	registered := h.register(s)
	s.startWriter()
	// A session that lost to a newer connection is being closed: nothing
	// more to do.
	if !registered {
		return nil
	}
	facts, err := json.Marshal(m.Facts)
	if err != nil {
		return fmt.Errorf("encoding facts of agent %s: %w", s.id.AgentID, err)
	}
	nb, err := json.Marshal(m.NetBird)
	if err != nil {
		return fmt.Errorf("encoding netbird state of agent %s: %w", s.id.AgentID, err)
	}
	s.nbHash = hashBytes(nb)
	s.vmHash = hashVMs(m.VMs)
	// The batched write marks the agent and its host online (with
	// last_seen_at) for many hellos at once.
	h.heartbeats.add(hostUpdate{
		hostID: s.hostID, agentID: s.id.AgentID, tenantID: s.id.TenantID, seen: now,
		facts: facts, netbird: nb, vms: vmReports(m.VMs), hasVMs: true,
	})
	// Only a new agent version needs a write of its own; a reconnect storm
	// of unchanged agents then costs no per-hello transaction.
	if m.AgentVersion != "" && m.AgentVersion != s.version {
		if err := h.store.SetAgentOnline(s.ctx, s.id.AgentID, true, m.AgentVersion, now); err != nil {
			return fmt.Errorf("marking agent %s online: %w", s.id.AgentID, err)
		}
	}

	plans, err := h.plans.pending(s.ctx, s.id.AgentID)
	if err != nil {
		return fmt.Errorf("listing pending plans: %w", err)
	}
	var skip map[uuid.UUID]bool
	if len(m.PendingResults) > 0 {
		skip = make(map[uuid.UUID]bool, len(m.PendingResults))
		for _, id := range m.PendingResults {
			skip[id] = true
		}
	}
	sent := make(map[uuid.UUID]bool, len(plans))
	for _, p := range plans {
		s.sendPlan(p, skip)
		sent[p.ID] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.early {
		if !sent[p.ID] {
			s.sendPlan(p, skip)
		}
	}
	s.early = nil
	s.ready = true
	return nil
}

// dispatch sends a freshly created plan, or parks it until the pending
// plans of the hello are out, so plans reach the agent in creation order.
func (s *session) dispatch(p store.Plan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ready {
		if len(s.early) >= s.hub.opts.QueueSize {
			if s.kill(agentproto.CloseSlowConsumer, agentproto.CloseSlowConsumerReason, nil) {
				s.hub.metrics.slowConsumerCloses.Inc()
			}
			return
		}
		s.early = append(s.early, p)
		return
	}
	s.sendPlan(p, nil)
}

// sendPlan queues the plan's unfinished actions, leaving out those whose
// results the agent is about to resend.
func (s *session) sendPlan(p store.Plan, skip map[uuid.UUID]bool) {
	actions := slices.Clone(p.Actions)
	slices.SortFunc(actions, func(a, b store.PlanAction) int { return a.Seq - b.Seq })
	wp := &agentproto.Plan{PlanID: p.ID, Actions: make([]agentproto.Action, 0, len(actions))}
	for _, a := range actions {
		if store.Terminal(a.Status) || skip[a.ID] {
			continue
		}
		wp.Actions = append(wp.Actions, agentproto.Action{
			ActionID: a.ID, ExecutionID: a.ExecutionID, Type: a.Type, VMID: a.VMID,
			Params: emptyObjectAsNil(a.Params),
		})
	}
	if len(wp.Actions) == 0 {
		return
	}
	s.enqueue("", wp)
}

// emptyObjectAsNil leaves out "{}" params, which the wire omits.
func emptyObjectAsNil(p json.RawMessage) json.RawMessage {
	if len(p) == 0 || string(p) == "{}" || string(p) == "null" {
		return nil
	}
	return p
}

// handle processes one frame after hello. A returned error closes the
// session with agentproto.CloseFor(err); problems that leave the channel
// usable are answered with an error frame instead.
func (s *session) handle(env agentproto.Envelope) error {
	switch env.Type {
	case agentproto.TypeHeartbeat:
		m, err := agentproto.DecodeData[agentproto.Heartbeat](env)
		if err != nil {
			return err
		}
		return s.onHeartbeat(m)
	case agentproto.TypeActionResult:
		m, err := agentproto.DecodeData[agentproto.ActionResult](env)
		if err != nil {
			return err
		}
		s.onActionResult(env.ID, m)
	case agentproto.TypeLogBatch:
		m, err := agentproto.DecodeData[agentproto.LogBatch](env)
		if err != nil {
			return err
		}
		s.onLogBatch(env.ID, m)
	case agentproto.TypeCertRenew:
		m, err := agentproto.DecodeData[agentproto.CertRenew](env)
		if err != nil {
			return err
		}
		s.onCertRenew(env.ID, m)
	case agentproto.TypePlanAck:
		m, err := agentproto.DecodeData[agentproto.PlanAck](env)
		if err != nil {
			return err
		}
		s.onPlanAck(env.ID, m)
	case agentproto.TypeConsoleData:
		m, err := agentproto.DecodeData[agentproto.ConsoleData](env)
		if err != nil {
			return err
		}
		s.onConsoleData(m)
	case agentproto.TypeHello:
		return fmt.Errorf("second hello: %w", errSeq)
	default:
		return fmt.Errorf("agent sent server message %s: %w", env.Type, errSeq)
	}
	return nil
}

func (s *session) onHeartbeat(m agentproto.Heartbeat) error {
	upd := hostUpdate{hostID: s.hostID, agentID: s.id.AgentID, tenantID: s.id.TenantID, seen: s.hub.now()}
	// Usage changes with nearly every heartbeat, so it is always written.
	usage, err := json.Marshal(m.Usage)
	if err != nil {
		return fmt.Errorf("encoding usage: %w", err)
	}
	upd.usage = usage
	if m.Facts != nil {
		facts, err := json.Marshal(m.Facts)
		if err != nil {
			return fmt.Errorf("encoding facts: %w", err)
		}
		upd.facts = facts
	}
	nb, err := json.Marshal(m.NetBird)
	if err != nil {
		return fmt.Errorf("encoding netbird state: %w", err)
	}
	if hsh := hashBytes(nb); hsh != s.nbHash {
		upd.netbird, s.nbHash = nb, hsh
	}
	if hsh := hashVMs(m.VMs); hsh != s.vmHash {
		upd.vms, upd.hasVMs, s.vmHash = vmReports(m.VMs), true, hsh
	}
	s.hub.heartbeats.add(upd)
	return nil
}

func (s *session) onActionResult(id string, m agentproto.ActionResult) {
	h := s.hub
	p, err := h.store.ApplyActionResult(s.ctx, s.id.AgentID, store.ActionResult{
		ActionID: m.ActionID, Status: m.Status, Error: m.Error, VMState: m.VMState, At: h.now(),
	})
	if errors.Is(err, store.ErrNotFound) {
		s.sendError(id, agentproto.ErrorCodeUnexpected, "action "+m.ActionID.String()+" is not an action of this agent")
		return
	}
	if err != nil {
		h.log.Error("applying action result", logKeyAgent, s.id.AgentID, "action_id", m.ActionID, logKeyErr, err)
		s.sendError(id, agentproto.ErrorCodeInternal, "could not record the result; resend it later")
		return
	}
	if m.VMState != "" {
		// A heartbeat queued before this result may carry the VM's state
		// from before the action; it must not overwrite the result's.
		for _, a := range p.Actions {
			if a.ID == m.ActionID && a.VMID != uuid.Nil {
				h.heartbeats.forgetVM(s.hostID, a.VMID)
			}
		}
	}
	if m.Terminal() {
		s.enqueue(id, &agentproto.ResultAck{ActionID: m.ActionID})
	}
}

func (s *session) onLogBatch(id string, m agentproto.LogBatch) {
	h := s.hub
	if m.ExecutionID != s.lastExec {
		owner, err := h.store.ExecutionAgent(s.ctx, m.ExecutionID)
		switch {
		case errors.Is(err, store.ErrNotFound) || (err == nil && owner != s.id.AgentID):
			s.sendError(id, agentproto.ErrorCodeUnexpected, "execution "+m.ExecutionID.String()+" is not an execution of this agent")
			return
		case err != nil:
			h.log.Error("checking execution owner", logKeyAgent, s.id.AgentID, "execution_id", m.ExecutionID, logKeyErr, err)
			s.sendError(id, agentproto.ErrorCodeInternal, "could not store the log lines; resend them later")
			return
		}
		s.lastExec = m.ExecutionID
	}
	lines := make([]store.LogLine, len(m.Lines))
	for i, l := range m.Lines {
		lines[i] = store.LogLine{ExecutionID: m.ExecutionID, Seq: l.Seq, At: l.At, Stream: l.Stream, Message: l.Message}
	}
	h.logs.submit(s, logItem{s: s, lines: lines})
}

func (s *session) onCertRenew(id string, m agentproto.CertRenew) {
	h := s.hub
	certPEM, serial, notAfter, err := h.opts.Authority.SignAgentCSR([]byte(m.CSR), s.id, h.opts.AgentCertTTL)
	if err != nil {
		h.log.Warn("refusing certificate renewal", logKeyAgent, s.id.AgentID, logKeyErr, err)
		s.sendError(id, agentproto.ErrorCodeCertRenewal, "the certificate request was refused")
		return
	}
	if err := h.store.RotateAgentCert(s.ctx, s.id.AgentID, serial, notAfter); err != nil {
		h.log.Error("recording renewed certificate", logKeyAgent, s.id.AgentID, logKeyErr, err)
		s.sendError(id, agentproto.ErrorCodeInternal, "could not record the renewed certificate; retry later")
		return
	}
	h.log.Info("renewed agent certificate", logKeyAgent, s.id.AgentID, "serial", serial, "not_after", notAfter)
	s.enqueue(id, &agentproto.CertRenewed{
		Certificate: string(certPEM), CA: string(h.opts.Authority.CACertPEM()), ExpiresAt: notAfter,
	})
}

func (s *session) onPlanAck(id string, m agentproto.PlanAck) {
	h := s.hub
	// The store scopes the change to this agent: another agent's plan is
	// not found, so an agent cannot advance it.
	_, err := h.store.MarkPlanDispatched(s.ctx, s.id.AgentID, m.PlanID, h.now())
	if errors.Is(err, store.ErrNotFound) {
		s.sendError(id, agentproto.ErrorCodeUnexpected, "plan "+m.PlanID.String()+" is not a plan of this agent")
		return
	}
	if err != nil {
		h.log.Error("marking plan dispatched", logKeyAgent, s.id.AgentID, "plan_id", m.PlanID, logKeyErr, err)
		s.sendError(id, agentproto.ErrorCodeInternal, "could not record the plan acknowledgement")
	}
}

func vmReports(vms []agentproto.VMStatus) []store.VMStateReport {
	out := make([]store.VMStateReport, len(vms))
	for i, v := range vms {
		out[i] = store.VMStateReport{VMID: v.VMID, ActualState: v.State, Error: v.Error}
	}
	return out
}

func hashBytes(b []byte) uint64 {
	f := fnv.New64a()
	_, _ = f.Write(b)
	return f.Sum64()
}

// hashVMs fingerprints a VM state list so an unchanged one is not written.
// Zero is reserved for "nothing reported yet".
func hashVMs(vms []agentproto.VMStatus) uint64 {
	f := fnv.New64a()
	for _, v := range vms {
		_, _ = f.Write(v.VMID[:])
		_, _ = f.Write([]byte(v.State))
		_, _ = f.Write([]byte{0})
		_, _ = f.Write([]byte(v.Error))
		_, _ = f.Write([]byte{0})
	}
	return f.Sum64() | 1
}
