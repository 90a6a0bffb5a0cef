package loadtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/backoff"
)

// Session timing of the simulated agents; the same values the real agent
// uses, so reconnect figures describe the product.
const (
	dialTimeout     = 30 * time.Second
	helloTimeout    = 10 * time.Second
	writeTimeout    = 5 * time.Second
	stableAfter     = time.Minute
	overloadedDelay = 5 * time.Second
	agentVersion    = "nkudo-load/1"
)

var errNotConnected = errors.New("agent not connected")

// simAgent is one simulated agent: an enrolled identity and, while
// connected, one session. Its only goroutine is run, which dials, reads
// and reconnects; heartbeats are written by the fleet's pacers.
type simAgent struct {
	idx      int
	id       uuid.UUID
	hostID   uuid.UUID
	hostname string
	cert     tls.Certificate
	local    net.Addr

	mu   sync.Mutex // guards the following
	conn *websocket.Conn
	seq  uint64
	hb   []byte // heartbeat frame buffer, reused

	stopped   atomic.Bool  // the server closed with a permanent code
	hellos    atomic.Int64 // hello_acks received, over all sessions
	lastHello atomic.Int64 // unix nanos of the last hello_ack
	lastDown  atomic.Int64 // unix nanos of the last session end

	// logMode makes the agent hand plans to plans instead of completing
	// them, so the logs scenario can write lines for their executions.
	logMode atomic.Bool
	plans   chan agentproto.Plan
	logAcks chan agentproto.LogAck
}

// send encodes msg with the next seq and writes it.
func (a *simAgent) send(ctx context.Context, id string, msg agentproto.Message) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn == nil {
		return errNotConnected
	}
	frame, err := agentproto.Encode(msg.MessageType(), id, a.seq+1, 0, msg)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", msg.MessageType(), err)
	}
	a.seq++
	return a.writeLocked(ctx, frame)
}

func (a *simAgent) writeLocked(ctx context.Context, frame []byte) error {
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := a.conn.Write(wctx, websocket.MessageText, frame); err != nil {
		return fmt.Errorf("writing frame: %w", err)
	}
	return nil
}

// heartbeat writes one heartbeat. The frame is assembled by hand into a
// reused buffer: at 10,000 heartbeats/s the harness must not spend the
// CPU the server is being measured with (a test checks the frame decodes
// and validates like one built by agentproto.Encode).
func (a *simAgent) heartbeat(ctx context.Context, now time.Time, n uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn == nil {
		return errNotConnected
	}
	a.seq++
	a.hb = appendHeartbeat(a.hb[:0], a.seq, now, n)
	return a.writeLocked(ctx, a.hb)
}

// appendHeartbeat appends a heartbeat envelope with sequence seq; n varies
// the usage figures so consecutive heartbeats differ like real ones.
func appendHeartbeat(b []byte, seq uint64, now time.Time, n uint64) []byte {
	b = append(b, `{"type":"heartbeat","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"data":{"at":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","usage":{"cpu_percent":`...)
	b = strconv.AppendUint(b, n%100, 10)
	b = append(b, `,"memory_used_bytes":`...)
	b = strconv.AppendUint(b, 1<<30+(n%1024)<<20, 10)
	b = append(b, `,"disk_used_bytes":`...)
	b = strconv.AppendUint(b, 10<<30, 10)
	b = append(b, `,"load1":0.5,"uptime_seconds":`...)
	b = strconv.AppendInt(b, now.Unix()%1_000_000, 10)
	b = append(b, `,"vms_running":0},"vms":[],"netbird":{"state":"disabled","peers_connected":0,"peers_total":0,"management_connected":false,"signal_connected":false}}}`...)
	return b
}

func (a *simAgent) hello() agentproto.Hello {
	return agentproto.Hello{
		AgentVersion:      agentVersion,
		CapabilityVersion: agentproto.CapabilityVersion,
		Facts: agentproto.HostFacts{
			Hostname: a.hostname, OS: "linux", Kernel: "6.1.0-load", Arch: "amd64",
			CPUModel: "simulated", CPUCores: 4, MemoryTotalBytes: 8 << 30,
			Disks:        []agentproto.Disk{{Mount: "/", Device: "/dev/sim0", FSType: "ext4", TotalBytes: 100 << 30, FreeBytes: 90 << 30}},
			Hypervisor:   agentproto.Hypervisor{Kind: agentproto.HypervisorSim, Simulated: true},
			AgentVersion: agentVersion,
		},
		VMs:     []agentproto.VMStatus{},
		NetBird: agentproto.NetBirdStatus{State: agentproto.NetBirdDisabled},
	}
}

// fleetStats are the fleet's counters, read by the scenarios.
type fleetStats struct {
	connected     atomic.Int64 // live sessions
	dialErrors    atomic.Int64
	helloFailures atomic.Int64
	permanent     atomic.Int64 // agents that stopped for good
	closes        atomic.Int64 // sessions ended by the server or network
	heartbeats    atomic.Int64
	hbErrors      atomic.Int64
	plansHeld     atomic.Int64
	resultAcks    atomic.Int64
	errorFrames   atomic.Int64
	sendErrors    atomic.Int64
}

// fleet owns the simulated agents and their goroutines.
type fleet struct {
	cfg     *Config
	log     *slog.Logger
	wsURL   string
	pool    *x509.CertPool
	agents  []*simAgent
	dialSem chan struct{}
	tracker *planTracker
	stats   fleetStats

	// hbInterval is each agent's heartbeat interval in nanoseconds; the
	// heartbeats scenario lowers it for its duration.
	hbInterval atomic.Int64
	hbEpoch    atomic.Int64 // bumped when hbInterval changes

	wg sync.WaitGroup
}

func newFleet(cfg *Config, log *slog.Logger, pool *x509.CertPool) *fleet {
	f := &fleet{
		cfg: cfg, log: log, pool: pool,
		wsURL:   "wss" + cfg.ServerURL[len("https"):] + "/v1/agent/connect",
		dialSem: make(chan struct{}, cfg.DialConcurrency),
		tracker: newPlanTracker(),
	}
	f.hbInterval.Store(int64(cfg.Heartbeat))
	return f
}

// start runs every agent and the heartbeat pacers until ctx ends; wait
// blocks until they all returned.
func (f *fleet) start(ctx context.Context) {
	for _, a := range f.agents {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.runAgent(ctx, a)
		}()
	}
	const pacers = 4
	for p := range pacers {
		var mine []*simAgent
		for i := p; i < len(f.agents); i += pacers {
			mine = append(mine, f.agents[i])
		}
		if len(mine) == 0 {
			continue
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.pace(ctx, mine)
		}()
	}
}

func (f *fleet) wait() { f.wg.Wait() }

// setHeartbeatInterval changes every agent's heartbeat interval.
func (f *fleet) setHeartbeatInterval(d time.Duration) {
	f.hbInterval.Store(int64(max(d, time.Microsecond)))
	f.hbEpoch.Add(1)
}

// pace sends the heartbeats of agents, spread evenly over the interval:
// each 10 ms tick sends as many as are due since the pace started.
func (f *fleet) pace(ctx context.Context, agents []*simAgent) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	n := len(agents)
	epoch := int64(-1)
	var start time.Time
	var sent, cursor uint64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if e := f.hbEpoch.Load(); e != epoch {
				epoch, start, sent = e, now, 0
			}
			iv := time.Duration(f.hbInterval.Load())
			due := uint64(float64(now.Sub(start)) / float64(iv) * float64(n))
			// Never catch up by more than a few rounds at once: a stall
			// of the harness must not turn into a burst.
			if due > sent+uint64(4*n) {
				sent = due - uint64(4*n)
			}
			for ; sent < due && ctx.Err() == nil; sent++ {
				a := agents[cursor%uint64(n)]
				cursor++
				err := a.heartbeat(ctx, now, cursor)
				switch {
				case err == nil:
					f.stats.heartbeats.Add(1)
				case !errors.Is(err, errNotConnected):
					f.stats.hbErrors.Add(1)
				}
			}
		}
	}
}

// runAgent keeps one agent connected until ctx ends, reconnecting with
// capped exponential backoff and full jitter, like nkudo-agent.
func (f *fleet) runAgent(ctx context.Context, a *simAgent) {
	var bo backoff.Backoff
	for ctx.Err() == nil {
		began := time.Now()
		code, err := f.session(ctx, a)
		if ctx.Err() != nil {
			return
		}
		if code != -1 && agentproto.Permanent(code) {
			// Like nkudo-agent: a permanent close ends the agent. The
			// scenarios count it and go on with the rest of the fleet.
			a.stopped.Store(true)
			f.stats.permanent.Add(1)
			f.log.Warn("agent stopped for good", "agent", a.id, "code", code, "err", err)
			return
		}
		if time.Since(began) > stableAfter {
			bo.Reset()
		}
		if code == agentproto.CloseOverloaded {
			if sleepCtx(ctx, overloadedDelay) != nil {
				return
			}
		}
		if bo.Wait(ctx) != nil {
			return
		}
	}
}

// session runs one session: dial, hello, then read until it ends. It
// returns the close code the server sent (-1 when there was none).
func (f *fleet) session(ctx context.Context, a *simAgent) (websocket.StatusCode, error) {
	select {
	case f.dialSem <- struct{}{}:
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	conn, err := f.dial(ctx, a)
	<-f.dialSem
	if err != nil {
		f.stats.dialErrors.Add(1)
		return -1, err
	}
	conn.SetReadLimit(agentproto.MaxFrameBytes)
	a.mu.Lock()
	a.conn, a.seq = conn, 0
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.conn = nil
		a.mu.Unlock()
		a.lastDown.Store(time.Now().UnixNano())
		_ = conn.CloseNow()
	}()

	if err := a.send(ctx, "", a.hello()); err != nil {
		f.stats.helloFailures.Add(1)
		return websocket.CloseStatus(err), fmt.Errorf("sending hello: %w", err)
	}
	hctx, cancel := context.WithTimeout(ctx, helloTimeout)
	_, data, err := conn.Read(hctx)
	cancel()
	if err != nil {
		f.stats.helloFailures.Add(1)
		return websocket.CloseStatus(err), fmt.Errorf("reading hello_ack: %w", err)
	}
	env, err := agentproto.Decode(data)
	if err == nil && env.Type != agentproto.TypeHelloAck {
		err = fmt.Errorf("first frame is %s, want hello_ack", env.Type)
	}
	if err == nil {
		_, err = agentproto.DecodeData[agentproto.HelloAck](env)
	}
	if err != nil {
		f.stats.helloFailures.Add(1)
		_ = conn.Close(agentproto.CloseProtocolError, agentproto.CloseProtocolErrorReason)
		return -1, fmt.Errorf("reading hello_ack: %w", err)
	}
	a.lastHello.Store(time.Now().UnixNano())
	a.hellos.Add(1)
	f.stats.connected.Add(1)
	defer f.stats.connected.Add(-1)

	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				f.stats.closes.Add(1)
			}
			return websocket.CloseStatus(err), err
		}
		if err := f.handle(ctx, a, data, time.Now()); err != nil {
			code, reason := agentproto.CloseFor(err)
			_ = conn.Close(code, reason)
			return -1, err
		}
	}
}

func (f *fleet) dial(ctx context.Context, a *simAgent) (*websocket.Conn, error) {
	d := &net.Dialer{Timeout: dialTimeout, LocalAddr: a.local}
	// One transport per dial: each agent presents its own certificate,
	// and the hijacked connection outlives the transport.
	tr := &http.Transport{
		DialContext: d.DialContext,
		TLSClientConfig: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			RootCAs:      f.pool,
			Certificates: []tls.Certificate{a.cert},
			NextProtos:   []string{"http/1.1"},
		},
		DisableKeepAlives: true,
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, f.wsURL, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		Subprotocols: []string{agentproto.Subprotocol},
	})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("dialling agent channel for agent %s: %w", a.id, err)
	}
	if conn.Subprotocol() != agentproto.Subprotocol {
		_ = conn.Close(agentproto.CloseProtocolError, "subprotocol")
		return nil, fmt.Errorf("dialling agent channel for agent %s: server chose subprotocol %q", a.id, conn.Subprotocol())
	}
	return conn, nil
}

// handle processes one frame from the server. A returned error closes
// the session.
func (f *fleet) handle(ctx context.Context, a *simAgent, data []byte, at time.Time) error {
	env, err := agentproto.Decode(data)
	if err != nil {
		return err
	}
	switch env.Type {
	case agentproto.TypePlan:
		p, err := agentproto.DecodeData[agentproto.Plan](env)
		if err != nil {
			return err
		}
		f.onPlan(ctx, a, p, at)
	case agentproto.TypeResultAck:
		if _, err := agentproto.DecodeData[agentproto.ResultAck](env); err != nil {
			return err
		}
		f.stats.resultAcks.Add(1)
	case agentproto.TypeLogAck:
		ack, err := agentproto.DecodeData[agentproto.LogAck](env)
		if err != nil {
			return err
		}
		if a.logAcks != nil {
			select {
			case a.logAcks <- ack:
			default: // the sender only needs the latest; it re-reads on timeout
			}
		}
	case agentproto.TypeError:
		m, err := agentproto.DecodeData[agentproto.Error](env)
		if err != nil {
			return err
		}
		f.stats.errorFrames.Add(1)
		f.log.Debug("error frame", "agent", a.id, "code", m.Code, "message", m.Message)
	case agentproto.TypeRevoked, agentproto.TypeConsoleStart, agentproto.TypeConsoleStop, agentproto.TypeCertRenewed:
		// Noted by the close that follows (revoked) or not part of a
		// load run (console tails, renewals).
		if _, err := agentproto.DecodeMessage(env); err != nil {
			return err
		}
	default:
		return fmt.Errorf("server sent %s after hello_ack: %w", env.Type, agentproto.ErrInvalid)
	}
	return nil
}

// onPlan holds the plan (records it), acks it, and either completes its
// actions at once or hands it to the logs scenario.
func (f *fleet) onPlan(ctx context.Context, a *simAgent, p agentproto.Plan, at time.Time) {
	f.tracker.received(p.PlanID, at)
	f.stats.plansHeld.Add(1)
	if err := a.send(ctx, "", agentproto.PlanAck{PlanID: p.PlanID}); err != nil {
		f.stats.sendErrors.Add(1)
		return
	}
	if a.logMode.Load() && a.plans != nil {
		select {
		case a.plans <- p:
			return
		default:
		}
	}
	f.complete(ctx, a, p)
}

// complete reports every action of p as succeeded.
func (f *fleet) complete(ctx context.Context, a *simAgent, p agentproto.Plan) {
	for _, act := range p.Actions {
		err := a.send(ctx, "", agentproto.ActionResult{
			PlanID: p.PlanID, ActionID: act.ActionID, ExecutionID: act.ExecutionID,
			Status: agentproto.ResultSucceeded, VMState: vmStateAfter(act.Type), At: time.Now().UTC(),
		})
		if err != nil {
			f.stats.sendErrors.Add(1)
			return
		}
	}
}

func vmStateAfter(action string) string {
	switch action {
	case agentproto.ActionMicroVMStop:
		return agentproto.VMStopped
	case agentproto.ActionMicroVMDelete:
		return agentproto.VMDeleted
	case agentproto.ActionMicroVMPause:
		return agentproto.VMPaused
	default:
		return agentproto.VMRunning
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
