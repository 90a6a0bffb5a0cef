package agent

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agent/identity"
	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/pki"
)

// Envelope id prefixes, so an error frame can be matched to what caused it.
const (
	idResult = "result:"
	idLog    = "log:"
	idRenew  = "renew:"
)

// frame is one outbound message; its seq is assigned by the writer.
type frame struct {
	typ, id string
	msg     agentproto.Message
}

// session is one connection (the Direct layer). Its goroutines (writer,
// heartbeat, pump, renewal) are owned by runSession, which waits for them.
type session struct {
	a      *Agent
	ws     *websocket.Conn
	log    *slog.Logger
	out    chan frame
	limits agentproto.Limits
	// recvSeq is the last server seq seen (reader only).
	recvSeq uint64
	// renewal carries cert_renewed / error answers to the renewal loop.
	renewal chan renewAnswer
	// consoles runs the console tails the server asked for.
	consoles *consoleTails

	mu        sync.Mutex // guards the following
	renewID   string
	renewKey  crypto.Signer
	revokedBy string
}

type renewAnswer struct {
	err error
}

func (a *Agent) runSession(ctx context.Context) sessionResult {
	res := sessionResult{code: -1}
	ws, err := a.dial(ctx)
	if err != nil {
		res.err = err
		if errors.Is(err, ErrStopped) {
			res.stop = err
		}
		var later *retryLaterError
		if errors.As(err, &later) {
			res.retryAfter = later.after
		}
		return res
	}
	defer ws.CloseNow()
	ws.SetReadLimit(agentproto.MaxFrameBytes)
	s := &session{
		a: a, ws: ws, out: make(chan frame, a.o.QueueSize), limits: agentproto.DefaultLimits(),
		renewal: make(chan renewAnswer, 1),
		log:     a.o.Logger.With(logKeyAgent, a.o.Identity.Info.AgentID),
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { s.writer(sctx, cancel) })
	s.consoles = newConsoleTails(a.o.RuntimeDir, func(ctx context.Context, m agentproto.ConsoleData) error {
		return s.send(ctx, agentproto.TypeConsoleData, "", m)
	})
	wg.Go(func() {
		<-sctx.Done()
		s.consoles.wait()
	})
	// A graceful shutdown closes with "normal"; the reader then returns.
	wg.Go(func() {
		<-sctx.Done()
		if ctx.Err() != nil {
			_ = ws.Close(agentproto.CloseNormal, agentproto.CloseNormalReason)
		} else {
			ws.CloseNow()
		}
	})

	ack, err := s.hello(sctx)
	if err != nil {
		res.err, res.code = err, websocket.CloseStatus(err)
		res.stop = s.stopFor(res.code, err)
		return res
	}
	res.established = true
	if d := ack.HeartbeatInterval(); d > 0 {
		s.log.Info("agent channel up", logKeyServer, a.connect, "heartbeat_interval", d)
	}
	wg.Go(func() { s.heartbeats(sctx, ack.HeartbeatInterval()) })
	wg.Go(func() { s.pump(sctx) })
	wg.Go(func() { s.renewLoop(sctx) })
	err = s.readLoop(sctx)
	res.err, res.code = err, websocket.CloseStatus(err)
	res.stop = s.stopFor(res.code, err)
	return res
}

// dial opens the WebSocket. A 403 refusal means the server does not accept
// this identity (revoked, unknown): permanent.
func (a *Agent) dial(ctx context.Context) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, a.o.DialTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, a.connect, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: a.transport},
		Subprotocols: []string{agentproto.Subprotocol},
	})
	if err != nil {
		if resp != nil {
			msg := refusalMessage(resp)
			if resp.StatusCode == http.StatusForbidden {
				return nil, fmt.Errorf("%w: handshake refused (HTTP 403): %s", ErrStopped, msg)
			}
			err := fmt.Errorf("dialling %s: HTTP %d: %s", a.connect, resp.StatusCode, msg)
			if d := retryAfter(resp, a.o.Now()); d > 0 {
				return nil, &retryLaterError{after: d, err: err}
			}
			return nil, err
		}
		return nil, fmt.Errorf("dialling %s: %w", a.connect, err)
	}
	if ws.Subprotocol() != agentproto.Subprotocol {
		ws.Close(agentproto.CloseProtocolError, "subprotocol required")
		return nil, fmt.Errorf("dialling %s: server did not accept subprotocol %s", a.connect, agentproto.Subprotocol)
	}
	return ws, nil
}

// maxRetryAfter caps a server's Retry-After, so a wrong header cannot park
// the agent for hours.
const maxRetryAfter = 5 * time.Minute

// retryLaterError is a refusal that said when to come back (503 or 429
// with Retry-After: the server's admission control at work).
type retryLaterError struct {
	after time.Duration
	err   error
}

func (e *retryLaterError) Error() string { return e.err.Error() }
func (e *retryLaterError) Unwrap() error { return e.err }

// retryAfter reads the Retry-After of a 503 or 429 answer (delay-seconds
// or an HTTP date), capped at maxRetryAfter; 0 when there is none.
func retryAfter(resp *http.Response, now time.Time) time.Duration {
	if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
		return 0
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		d = time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// refusalMessage reads the server's JSON error from a refused handshake.
func refusalMessage(resp *http.Response) string {
	if resp.Body == nil {
		return http.StatusText(resp.StatusCode)
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error.Code != "" {
		return body.Error.Code + ": " + body.Error.Message
	}
	if s := strings.TrimSpace(string(raw)); s != "" {
		return s
	}
	return http.StatusText(resp.StatusCode)
}

// stopFor decides whether a close ends the agent for good. Replaced is
// permanent for the session but not for the agent process: a newer session
// of this agent exists, so this loop must not fight it; it backs off and
// tries again like after any other close, since the newer copy may be gone
// by then.
func (s *session) stopFor(code websocket.StatusCode, err error) error {
	if code == agentproto.CloseReplaced || !agentproto.Permanent(code) {
		return nil
	}
	s.mu.Lock()
	reason := s.revokedBy
	s.mu.Unlock()
	if reason == "" {
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			reason = ce.Reason
		}
	}
	return fmt.Errorf("%w: close %d: %s", ErrStopped, code, reason)
}

func (s *session) send(ctx context.Context, typ, id string, msg agentproto.Message) error {
	select {
	case s.out <- frame{typ: typ, id: id, msg: msg}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writer is the only goroutine writing frames, so seq is strictly +1.
func (s *session) writer(ctx context.Context, fail context.CancelFunc) {
	var seq uint64
	for {
		var f frame
		select {
		case <-ctx.Done():
			return
		case f = <-s.out:
		}
		data, err := agentproto.Encode(f.typ, f.id, seq+1, 0, f.msg)
		if err != nil {
			// A bug on this side: drop the frame, never the seq order.
			s.log.Error("encoding frame", logKeyType, f.typ, logKeyErr, err)
			continue
		}
		seq++
		wctx, cancel := context.WithTimeout(ctx, s.a.o.WriteTimeout)
		err = s.ws.Write(wctx, websocket.MessageText, data)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("writing frame", logKeyType, f.typ, logKeyErr, err)
			}
			fail()
			return
		}
	}
}

func (s *session) hello(ctx context.Context) (agentproto.HelloAck, error) {
	facts, err := s.a.o.Facts.Facts(ctx)
	if err != nil {
		return agentproto.HelloAck{}, fmt.Errorf("collecting host facts: %w", err)
	}
	facts.AgentVersion = s.a.o.AgentVersion
	h := agentproto.Hello{
		AgentVersion: s.a.o.AgentVersion, CapabilityVersion: agentproto.CapabilityVersion,
		Facts: facts, VMs: s.a.vms(ctx), NetBird: s.a.netbird(ctx),
	}
	for _, e := range s.a.cache.Unacked() {
		if len(h.PendingResults) == agentproto.MaxPendingResults {
			break
		}
		h.PendingResults = append(h.PendingResults, e.ActionID)
	}
	if err := s.send(ctx, agentproto.TypeHello, "", h); err != nil {
		return agentproto.HelloAck{}, err
	}
	s.a.factsSent(facts)
	hctx, cancel := context.WithTimeout(ctx, s.a.o.HelloTimeout)
	defer cancel()
	env, err := s.read(hctx)
	if err != nil {
		if hctx.Err() != nil && ctx.Err() == nil {
			s.ws.Close(agentproto.CloseProtocolError, "no hello_ack in time")
			return agentproto.HelloAck{}, fmt.Errorf("waiting for hello_ack: %w", err)
		}
		return agentproto.HelloAck{}, fmt.Errorf("waiting for hello_ack: %w", err)
	}
	if env.Type != agentproto.TypeHelloAck {
		s.ws.Close(agentproto.CloseProtocolError, agentproto.CloseProtocolErrorReason)
		return agentproto.HelloAck{}, fmt.Errorf("waiting for hello_ack: got %s", env.Type)
	}
	ack, err := agentproto.DecodeData[agentproto.HelloAck](env)
	if err != nil {
		s.ws.Close(agentproto.CloseFor(err))
		return agentproto.HelloAck{}, err
	}
	if ack.AgentID != s.a.o.Identity.Info.AgentID {
		s.ws.Close(agentproto.CloseProtocolError, "hello_ack for another agent")
		return agentproto.HelloAck{}, fmt.Errorf("hello_ack names agent %s", ack.AgentID)
	}
	s.limits = ack.Limits
	s.consoles.serverCapability(ack.CapabilityVersion)
	return ack, nil
}

// read reads and decodes one frame, enforcing the server's seq order.
func (s *session) read(ctx context.Context) (agentproto.Envelope, error) {
	typ, data, err := s.ws.Read(ctx)
	if err != nil {
		return agentproto.Envelope{}, err
	}
	if typ != websocket.MessageText {
		s.ws.Close(agentproto.CloseMalformed, "binary frame")
		return agentproto.Envelope{}, fmt.Errorf("reading frame: binary message: %w", agentproto.ErrMalformed)
	}
	env, err := agentproto.Decode(data)
	if err != nil {
		s.ws.Close(agentproto.CloseFor(err))
		return agentproto.Envelope{}, err
	}
	if env.Seq != 0 {
		if env.Seq != s.recvSeq+1 {
			s.ws.Close(agentproto.CloseProtocolError, "seq out of order")
			return agentproto.Envelope{}, fmt.Errorf("reading frame: seq %d after %d", env.Seq, s.recvSeq)
		}
		s.recvSeq = env.Seq
	}
	return env, nil
}

func (s *session) readLoop(ctx context.Context) error {
	for {
		env, err := s.read(ctx)
		if err != nil {
			return err
		}
		if err := s.handle(ctx, env); err != nil {
			return err
		}
	}
}

func (s *session) handle(ctx context.Context, env agentproto.Envelope) error {
	msg, err := agentproto.DecodeMessage(env)
	if err != nil {
		s.ws.Close(agentproto.CloseFor(err))
		return err
	}
	switch m := msg.(type) {
	case agentproto.Plan:
		added, err := s.a.queue.Add(m)
		if err != nil {
			// Not acked: the plan stays pending on the server and comes
			// back with the next session.
			s.log.Error("holding plan", logKeyPlan, m.PlanID, logKeyErr, err)
			return nil
		}
		s.log.Info("plan received", logKeyPlan, m.PlanID, "actions", len(m.Actions), "new", added)
		return s.send(ctx, agentproto.TypePlanAck, "", agentproto.PlanAck{PlanID: m.PlanID})
	case agentproto.ResultAck:
		if err := s.a.cache.Ack(m.ActionID); err != nil {
			s.log.Warn("recording result ack", logKeyAction, m.ActionID, logKeyErr, err)
		}
	case agentproto.LogAck:
		s.a.logs.Ack(m.ExecutionID, m.Seq)
	case agentproto.CertRenewed:
		s.renewed(env.ID, m)
	case agentproto.Revoked:
		s.mu.Lock()
		s.revokedBy = m.Reason
		s.mu.Unlock()
		s.log.Error("agent revoked by the server", logKeyReason, m.Reason)
	case agentproto.Error:
		s.serverError(env.ID, m)
	case agentproto.ConsoleStart:
		if err := s.consoles.start(ctx, m); err != nil {
			s.log.Warn("refusing console tail", "vm_id", m.VMID, logKeyErr, err)
		}
	case agentproto.ConsoleStop:
		s.consoles.stop(m.StreamID)
	default:
		s.ws.Close(agentproto.CloseProtocolError, "unexpected "+env.Type)
		return fmt.Errorf("handling frame: unexpected %s", env.Type)
	}
	return nil
}

// serverError handles an error frame. A result or log batch the server
// can never accept (not this agent's) is dropped, or it would be resent
// forever; other errors are retried by the next session.
func (s *session) serverError(id string, m agentproto.Error) {
	s.log.Warn("server reported an error", "code", m.Code, "message", m.Message, "id", id)
	permanent := m.Code != agentproto.ErrorCodeInternal
	switch {
	case strings.HasPrefix(id, idRenew):
		s.renewAnswered(id, renewAnswer{err: fmt.Errorf("certificate renewal refused: %s: %s", m.Code, m.Message)})
	case strings.HasPrefix(id, idResult) && permanent:
		if aid, err := uuid.Parse(strings.TrimPrefix(id, idResult)); err == nil {
			if err := s.a.cache.Ack(aid); err != nil {
				s.log.Warn("dropping refused result", logKeyAction, aid, logKeyErr, err)
			}
		}
	case strings.HasPrefix(id, idLog) && permanent:
		if eid, err := uuid.Parse(strings.TrimPrefix(id, idLog)); err == nil {
			s.a.logs.Ack(eid, math.MaxInt64)
		}
	}
}

// pump sends what the durable state holds and the server has not
// acknowledged: running notices, then log lines, then terminal results.
// Results are listed before the log lines are, so every listed result's
// lines (flushed before the result was recorded) go out before it.
func (s *session) pump(ctx context.Context) {
	sentLogs := map[uuid.UUID]int64{}
	sentResults := map[uuid.UUID]bool{}
	for {
		running := s.a.takeRunning()
		results := s.a.cache.Unacked()
		batches := s.a.logs.Batches(sentLogs, s.limits.MaxLogBatchLines, s.limits.MaxFrameBytes)
		for _, r := range running {
			if e, ok := s.a.cache.Get(r.ActionID); ok && e.Result.Terminal() {
				continue
			}
			if s.send(ctx, agentproto.TypeActionResult, "", r) != nil {
				return
			}
		}
		for _, b := range batches {
			if s.send(ctx, agentproto.TypeLogBatch, idLog+b.ExecutionID.String(), b) != nil {
				return
			}
		}
		for _, e := range results {
			if sentResults[e.ActionID] {
				continue
			}
			sentResults[e.ActionID] = true
			if s.send(ctx, agentproto.TypeActionResult, idResult+e.ActionID.String(), e.Result) != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.a.wake:
		case <-s.a.logs.Ready():
		}
	}
}

func (s *session) heartbeats(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hb := agentproto.Heartbeat{At: s.a.o.Now().UTC(), VMs: s.a.vms(ctx), NetBird: s.a.netbird(ctx)}
		if u, err := s.a.o.Facts.Usage(ctx); err == nil {
			hb.Usage = u
		} else {
			s.log.Warn("reading host usage", logKeyErr, err)
		}
		hb.Usage.VMsRunning = 0
		for _, vm := range hb.VMs {
			if vm.State == agentproto.VMRunning {
				hb.Usage.VMsRunning++
			}
		}
		if f, err := s.a.o.Facts.Facts(ctx); err == nil {
			f.AgentVersion = s.a.o.AgentVersion
			if s.a.factsChanged(f) {
				hb.Facts = &f
			}
		}
		if err := hb.Validate(); err != nil {
			s.log.Error("skipping invalid heartbeat", logKeyErr, err)
			continue
		}
		if s.send(ctx, agentproto.TypeHeartbeat, "", hb) != nil {
			return
		}
		if hb.Facts != nil {
			s.a.factsSent(*hb.Facts)
		}
	}
}

// renewLoop renews the client certificate at RenewAt of its lifetime.
func (s *session) renewLoop(ctx context.Context) {
	for {
		leaf := s.a.certs.Current().Leaf
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		at := leaf.NotBefore.Add(time.Duration(float64(life) * s.a.o.RenewAt))
		if !sleep(ctx, at.Sub(s.a.o.Now())) {
			return
		}
		err := s.renew(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.log.Warn("renewing client certificate; will retry", logKeyErr, err, logKeyDelay, s.a.o.RenewRetry)
			if !sleep(ctx, s.a.o.RenewRetry) {
				return
			}
		}
	}
}

func (s *session) renew(ctx context.Context) error {
	key, err := pki.GenerateKey()
	if err != nil {
		return err
	}
	csr, err := pki.CreateCSR(key, s.a.o.Identity.Info.Hostname)
	if err != nil {
		return err
	}
	id := idRenew + uuid.NewString()
	s.mu.Lock()
	s.renewID, s.renewKey = id, key
	s.mu.Unlock()
	select {
	case <-s.renewal: // a stale answer from an earlier attempt
	default:
	}
	if err := s.send(ctx, agentproto.TypeCertRenew, id, agentproto.CertRenew{CSR: string(csr)}); err != nil {
		return err
	}
	s.log.Info("asked the server to renew the client certificate")
	wait := time.NewTimer(s.a.o.RenewRetry)
	defer wait.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-wait.C:
		return errors.New("no answer to cert_renew")
	case ans := <-s.renewal:
		return ans.err
	}
}

// renewed installs a renewed certificate: verified against the pinned CA,
// written to disk, then swapped into the CertStore the next dial uses.
// The live session is unaffected.
func (s *session) renewed(id string, m agentproto.CertRenewed) {
	s.mu.Lock()
	key := s.renewKey
	match := id != "" && id == s.renewID
	if match {
		s.renewID, s.renewKey = "", nil
	}
	s.mu.Unlock()
	if !match {
		s.log.Warn("ignoring cert_renewed that answers no pending renewal", "id", id)
		return
	}
	ans := renewAnswer{err: s.a.installCert(key, []byte(m.Certificate))}
	if ans.err == nil {
		leaf := s.a.certs.Current().Leaf
		s.log.Info("client certificate renewed", logKeySerial, fmt.Sprintf("%x", leaf.SerialNumber), logKeyExpires, leaf.NotAfter)
	}
	s.renewAnswered(id, ans)
}

func (s *session) renewAnswered(id string, ans renewAnswer) {
	s.mu.Lock()
	if s.renewID == id {
		s.renewID, s.renewKey = "", nil
	}
	s.mu.Unlock()
	select {
	case s.renewal <- ans:
	default:
	}
}

func (a *Agent) installCert(key crypto.Signer, certPEM []byte) error {
	cert, err := pki.KeyPair(certPEM, key)
	if err != nil {
		return fmt.Errorf("installing renewed certificate: %w", err)
	}
	a.mu.Lock()
	caPEM := a.caPEM
	a.mu.Unlock()
	if err := identity.VerifyClientCert(cert, caPEM); err != nil {
		return fmt.Errorf("installing renewed certificate: %w", err)
	}
	id, err := pki.IdentityFromCert(cert.Leaf)
	if err != nil {
		return fmt.Errorf("installing renewed certificate: %w", err)
	}
	if id.AgentID != a.o.Identity.Info.AgentID {
		return fmt.Errorf("installing renewed certificate: it names agent %s", id.AgentID)
	}
	cert, err = identity.SaveRenewed(a.o.StateDir, key, certPEM)
	if err != nil {
		return err
	}
	a.certs.Set(cert)
	return nil
}

// vms lists the provider's VMs for hello and heartbeats, live VMs first
// when there are more than the protocol allows.
func (a *Agent) vms(ctx context.Context) []agentproto.VMStatus {
	list, err := a.o.Provider.List(ctx)
	if err != nil {
		a.o.Logger.Warn("listing vms", logKeyErr, err)
		return []agentproto.VMStatus{}
	}
	out := make([]agentproto.VMStatus, 0, len(list))
	var deleted []agentproto.VMStatus
	for _, v := range list {
		st := agentproto.VMStatus{VMID: v.ID, State: string(v.State), Error: v.Error}
		if len(st.Error) > agentproto.MaxErrorBytes {
			st.Error = st.Error[:agentproto.MaxErrorBytes]
		}
		if v.State == "deleted" {
			deleted = append(deleted, st)
			continue
		}
		out = append(out, st)
	}
	out = append(out, deleted...)
	if len(out) > agentproto.MaxVMsPerHost {
		out = out[:agentproto.MaxVMsPerHost]
	}
	return out
}

func (a *Agent) netbird(ctx context.Context) agentproto.NetBirdStatus {
	if a.o.NetBird == nil {
		return agentproto.NetBirdStatus{State: agentproto.NetBirdDisabled}
	}
	return a.o.NetBird.Status(ctx)
}
