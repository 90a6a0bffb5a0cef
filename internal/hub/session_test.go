package hub_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store"
)

func TestHelloAckRecordsState(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.enroll()
	vm := e.createVM(a, store.VMUnknown)
	_, ack := e.connect(a, agentproto.VMStatus{VMID: vm, State: agentproto.VMRunning})

	require.Equal(t, a.id, ack.AgentID)
	require.Equal(t, agentproto.CapabilityVersion, ack.CapabilityVersion)
	require.Equal(t, int64(agentproto.DefaultHeartbeatIntervalMS), ack.HeartbeatIntervalMS)
	require.Equal(t, agentproto.DefaultLimits(), ack.Limits)
	require.WithinDuration(t, time.Now(), ack.ServerTime, time.Minute)
	require.True(t, e.hub.Online(a.id))
	require.Equal(t, 1, e.hub.Sessions())

	ctx := context.Background()
	eventually(t, "hello state persisted", func() (bool, error) {
		h, err := e.st.GetHost(ctx, e.tenant, a.host)
		if err != nil {
			return false, err
		}
		v, err := e.st.GetVM(ctx, e.tenant, vm)
		if err != nil {
			return false, err
		}
		var facts agentproto.HostFacts
		_ = json.Unmarshal(h.Facts, &facts)
		var nb agentproto.NetBirdStatus
		_ = json.Unmarshal(h.NetBird, &nb)
		return h.Online && facts.Hostname == "edge-1" && nb.State == agentproto.NetBirdConnected &&
			v.ActualState == store.VMRunning, nil
	})
	ag, err := e.st.GetAgent(ctx, a.id)
	require.NoError(t, err)
	require.Equal(t, store.AgentOnline, ag.Status)
	require.Equal(t, "1.2.3", ag.Version)
}

// TestSessionReachableWhenAgentHoldsHelloAck: an agent holding hello_ack
// finds its session registered (Online, DispatchPlan, Revoke,
// OpenConsole): the hub writes hello_ack only once the session is
// registered. The hook holds the registration back until the agent has
// hello_ack, which a hub writing it earlier lets happen; a correct hub
// cannot, so the hold ends after holdFor (it only bounds the wait).
func TestSessionReachableWhenAgentHoldsHelloAck(t *testing.T) {
	t.Parallel()
	const holdFor = 2 * time.Second
	e := newEnv(t, nil)
	a := e.enroll()
	gotAck := make(chan struct{})
	hub.SetBeforeRegister(e.hub, func(id uuid.UUID) {
		if id != a.id {
			return
		}
		select {
		case <-gotAck:
		case <-time.After(holdFor):
		}
	})
	c := e.dial(a)
	c.send(agentproto.TypeHello, "", helloMsg())
	c.expect(agentproto.TypeHelloAck)
	online := e.hub.Online(a.id)
	close(gotAck)
	require.True(t, online, "the agent holds hello_ack but its session is not registered")
	c.roundTrip()
}

func TestPlanDispatchedToLiveSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.enroll()
	vm := e.createVM(a, store.VMStopped)
	c, _ := e.connect(a)

	p := e.createPlan(a, vm, store.ActionMicroVMStart)
	e.hub.DispatchPlan(p)
	got := decodePlan(t, c.expect(agentproto.TypePlan))
	require.Equal(t, p.ID, got.PlanID)
	require.Len(t, got.Actions, 1)
	require.Equal(t, p.Actions[0].ID, got.Actions[0].ActionID)
	require.Equal(t, p.Actions[0].ExecutionID, got.Actions[0].ExecutionID)
	require.Equal(t, vm, got.Actions[0].VMID)
	require.Equal(t, store.StatusPending, e.plan(p.ID).Status)

	c.send(agentproto.TypePlanAck, "", &agentproto.PlanAck{PlanID: p.ID})
	eventually(t, "plan dispatched", func() (bool, error) {
		return e.plan(p.ID).Status == store.StatusDispatched, nil
	})
}

func TestPendingPlansSentAfterHelloAck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.enroll()
	vm := e.createVM(a, store.VMStopped)
	first := e.createPlan(a, vm, store.ActionMicroVMStart)
	second := e.createPlan(a, vm, store.ActionMicroVMStop)
	e.hub.DispatchPlan(first) // offline: nothing to do, must not block

	c, _ := e.connect(a)
	require.Equal(t, first.ID, decodePlan(t, c.expect(agentproto.TypePlan)).PlanID)
	require.Equal(t, second.ID, decodePlan(t, c.expect(agentproto.TypePlan)).PlanID)
}

func TestActionResultAppliedOnceAndAcked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.enroll()
	vm := e.createVM(a, store.VMStopped)
	p := e.createPlan(a, vm, store.ActionMicroVMStart)
	c, _ := e.connect(a)
	c.expect(agentproto.TypePlan)
	act := p.Actions[0]
	ctx := context.Background()

	result := func(id, status, errText, vmState string) {
		c.send(agentproto.TypeActionResult, id, &agentproto.ActionResult{
			PlanID: p.ID, ActionID: act.ID, ExecutionID: act.ExecutionID,
			Status: status, Error: errText, VMState: vmState, At: time.Now(),
		})
	}
	result("r1", agentproto.ResultSucceeded, "", agentproto.VMRunning)
	ack := c.expect(agentproto.TypeResultAck)
	require.Equal(t, "r1", ack.ID)
	ra, err := agentproto.DecodeData[agentproto.ResultAck](ack)
	require.NoError(t, err)
	require.Equal(t, act.ID, ra.ActionID)

	got := e.plan(p.ID)
	require.Equal(t, store.StatusSucceeded, got.Status)
	require.Equal(t, store.StatusSucceeded, got.Actions[0].Status)
	ex, err := e.st.GetExecution(ctx, e.tenant, act.ExecutionID)
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, ex.Status)
	v, err := e.st.GetVM(ctx, e.tenant, vm)
	require.NoError(t, err)
	require.Equal(t, store.VMRunning, v.ActualState)

	// A repeat (say, after a lost ack) is acked again and changes nothing.
	result("r2", agentproto.ResultFailed, "boom", agentproto.VMFailed)
	require.Equal(t, "r2", c.expect(agentproto.TypeResultAck).ID)
	got = e.plan(p.ID)
	require.Equal(t, store.StatusSucceeded, got.Status)
	require.Empty(t, got.Actions[0].Error)
	v, err = e.st.GetVM(ctx, e.tenant, vm)
	require.NoError(t, err)
	require.Equal(t, store.VMRunning, v.ActualState)
}

func TestForeignActionAndExecutionRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	owner, other := e.enroll(), e.enroll()
	vm := e.createVM(owner, store.VMStopped)
	p := e.createPlan(owner, vm, store.ActionMicroVMStart)
	act := p.Actions[0]
	c, _ := e.connect(other)

	c.send(agentproto.TypeActionResult, "steal", &agentproto.ActionResult{
		PlanID: p.ID, ActionID: act.ID, ExecutionID: act.ExecutionID,
		Status: agentproto.ResultSucceeded, VMState: agentproto.VMRunning, At: time.Now(),
	})
	env := c.expect(agentproto.TypeError)
	require.Equal(t, "steal", env.ID)
	msg, err := agentproto.DecodeData[agentproto.Error](env)
	require.NoError(t, err)
	require.Equal(t, agentproto.ErrorCodeUnexpected, msg.Code)

	c.send(agentproto.TypeLogBatch, "logs", &agentproto.LogBatch{ExecutionID: act.ExecutionID,
		Lines: []agentproto.LogLine{{Seq: 1, At: time.Now(), Stream: agentproto.StreamStdout, Message: "x"}}})
	require.Equal(t, "logs", c.expect(agentproto.TypeError).ID)

	c.send(agentproto.TypePlanAck, "ack", &agentproto.PlanAck{PlanID: p.ID})
	env = c.expect(agentproto.TypeError)
	require.Equal(t, "ack", env.ID)
	msg, err = agentproto.DecodeData[agentproto.Error](env)
	require.NoError(t, err)
	require.Equal(t, agentproto.ErrorCodeUnexpected, msg.Code, "another agent's plan is refused, not an internal error")
	c.send(agentproto.TypePlanAck, "unknown", &agentproto.PlanAck{PlanID: store.NewID()})
	env = c.expect(agentproto.TypeError)
	require.Equal(t, "unknown", env.ID)
	msg, err = agentproto.DecodeData[agentproto.Error](env)
	require.NoError(t, err)
	require.Equal(t, agentproto.ErrorCodeUnexpected, msg.Code)

	got := e.plan(p.ID)
	require.Equal(t, store.StatusPending, got.Status)
	require.Equal(t, store.StatusPending, got.Actions[0].Status)
	v, err := e.st.GetVM(context.Background(), e.tenant, vm)
	require.NoError(t, err)
	require.Equal(t, store.VMStopped, v.ActualState)
	lines, err := e.st.ListLogLines(context.Background(), e.tenant, act.ExecutionID, 0, 100)
	require.NoError(t, err)
	require.Empty(t, lines)
}

func logLines(from, to int64) []agentproto.LogLine {
	var out []agentproto.LogLine
	for s := from; s <= to; s++ {
		out = append(out, agentproto.LogLine{Seq: s, At: time.Now(), Stream: agentproto.StreamStdout, Message: "line"})
	}
	return out
}

func TestLogBatchesPersistedAckedAndFannedOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.enroll()
	vm := e.createVM(a, store.VMStopped)
	p := e.createPlan(a, vm, store.ActionMicroVMStart)
	exec := p.Actions[0].ExecutionID
	c, _ := e.connect(a)
	c.expect(agentproto.TypePlan)

	follower := e.hub.SubscribeLogs(exec, 100)
	defer follower.Close()
	laggard := e.hub.SubscribeLogs(exec, 1)
	defer laggard.Close()

	logAck := func() int64 {
		t.Helper()
		ack, err := agentproto.DecodeData[agentproto.LogAck](c.expect(agentproto.TypeLogAck))
		require.NoError(t, err)
		require.Equal(t, exec, ack.ExecutionID)
		return ack.Seq
	}
	c.send(agentproto.TypeLogBatch, "", &agentproto.LogBatch{ExecutionID: exec, Lines: logLines(1, 3)})
	require.Equal(t, int64(3), logAck())
	// A resend after a lost ack overlaps what is stored.
	c.send(agentproto.TypeLogBatch, "", &agentproto.LogBatch{ExecutionID: exec, Lines: logLines(1, 5)})
	require.Equal(t, int64(5), logAck())

	stored, err := e.st.ListLogLines(context.Background(), e.tenant, exec, 0, 100)
	require.NoError(t, err)
	require.Len(t, stored, 5)
	for i, l := range stored {
		require.Equal(t, int64(i+1), l.Seq)
	}

	for want := int64(1); want <= 5; want++ {
		select {
		case l, ok := <-follower.C():
			require.True(t, ok, "follower dropped: %v", follower.Err())
			require.Equal(t, want, l.Seq)
		case <-time.After(waitTimeout):
			t.Fatalf("follower did not get line %d", want)
		}
	}
	select {
	case l := <-follower.C():
		t.Fatalf("follower got an extra line %d", l.Seq)
	default:
	}
	require.NoError(t, follower.Err())

	// The laggard never read: it was dropped, and ingestion went on.
	for range laggard.C() {
	}
	require.ErrorIs(t, laggard.Err(), hub.ErrLagged)
}

func TestHeartbeatsPersistedThroughBatcher(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	agents := make([]*agent, 3)
	clients := make([]*client, 3)
	vms := make([]uuid.UUID, 3)
	for i := range agents {
		agents[i] = e.enroll()
		vms[i] = e.createVM(agents[i], store.VMUnknown)
		clients[i], _ = e.connect(agents[i])
	}
	for round := range 5 {
		for i, c := range clients {
			hb := &agentproto.Heartbeat{
				At:      time.Now(),
				Usage:   agentproto.Usage{CPUPercent: float64(round)},
				VMs:     []agentproto.VMStatus{{VMID: vms[i], State: agentproto.VMRunning}},
				NetBird: agentproto.NetBirdStatus{State: agentproto.NetBirdDegraded, PeersTotal: round},
			}
			if round == 4 {
				f := testFacts("renamed")
				hb.Facts = &f
			}
			c.send(agentproto.TypeHeartbeat, "", hb)
		}
	}
	for i, a := range agents {
		eventually(t, "heartbeat state of host "+a.host.String(), func() (bool, error) {
			h, err := e.st.GetHost(ctx, e.tenant, a.host)
			if err != nil {
				return false, err
			}
			var facts agentproto.HostFacts
			_ = json.Unmarshal(h.Facts, &facts)
			var nb agentproto.NetBirdStatus
			_ = json.Unmarshal(h.NetBird, &nb)
			v, err := e.st.GetVM(ctx, e.tenant, vms[i])
			if err != nil {
				return false, err
			}
			return facts.Hostname == "renamed" && nb.PeersTotal == 4 && v.ActualState == store.VMRunning, nil
		})
	}
}

func TestOfflineSweeperMarksAgentsOffline(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.enroll()
	vm := e.createVM(a, store.VMStopped)
	c, _ := e.connect(a, agentproto.VMStatus{VMID: vm, State: agentproto.VMRunning})
	ctx := context.Background()
	eventually(t, "vm running", func() (bool, error) {
		v, err := e.st.GetVM(ctx, e.tenant, vm)
		return err == nil && v.ActualState == store.VMRunning, err
	})

	e.clock.Advance(time.Hour)
	require.Equal(t, agentproto.CloseHeartbeatTimeout, c.closed())
	ag, err := e.st.GetAgent(ctx, a.id)
	require.NoError(t, err)
	require.Equal(t, store.AgentOffline, ag.Status)
	h, err := e.st.GetHost(ctx, e.tenant, a.host)
	require.NoError(t, err)
	require.False(t, h.Online)
	v, err := e.st.GetVM(ctx, e.tenant, vm)
	require.NoError(t, err)
	require.Equal(t, store.VMUnknown, v.ActualState)
	eventually(t, "session gone", func() (bool, error) { return !e.hub.Online(a.id), nil })
}

func TestSecondSessionReplacesFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.enroll()
	first, _ := e.connect(a)
	second, _ := e.connect(a)
	require.Equal(t, agentproto.CloseReplaced, first.closed())
	second.roundTrip()
	require.Equal(t, 1, e.hub.Sessions())
	require.True(t, e.hub.Online(a.id))
}

func TestRevokeClosesSessionAndRefusesHandshake(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.enroll()
	c, _ := e.connect(a)
	_, err := e.st.RevokeAgent(context.Background(), e.tenant, a.id, time.Now())
	require.NoError(t, err)
	e.hub.Revoke(a.id)

	env := c.expect(agentproto.TypeRevoked)
	_, err = agentproto.DecodeData[agentproto.Revoked](env)
	require.NoError(t, err)
	require.Equal(t, agentproto.CloseRevoked, c.closed())

	r := e.dialWith(e.tlsConfig(a.certPEM, a.key), []string{agentproto.Subprotocol})
	require.Error(t, r.err)
	require.Equal(t, 403, r.status)
	require.Contains(t, r.body, `"code":"agent_revoked"`)
}

// TestRevokeRacingHandshakeClosesSession covers a revocation that lands
// after a handshake passed the store's revocation check but before its
// session registered: the hub must still close that session. The store
// is left unrevoked here, which is exactly what the racing handshake saw.
func TestRevokeRacingHandshakeClosesSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.enroll()
	e.hub.Revoke(a.id) // no session yet: only remembered
	c := e.dial(a)
	c.send(agentproto.TypeHello, "", helloMsg())
	for {
		env, err := c.recv()
		if err != nil {
			break
		}
		if env.Type == agentproto.TypeRevoked {
			break
		}
		require.Equal(t, agentproto.TypeHelloAck, env.Type, "only hello_ack may precede revoked: %s", env.Data)
	}
	require.Equal(t, agentproto.CloseRevoked, c.closed())
	require.False(t, e.hub.Online(a.id))
	require.Equal(t, 0, e.hub.Sessions())
}

func TestCertRenewalKeepsSessionAndSupersedesOldSerial(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.enroll()
	c, _ := e.connect(a)

	newKey, err := pki.GenerateKey()
	require.NoError(t, err)
	csr, err := pki.CreateCSR(newKey, a.id.String())
	require.NoError(t, err)
	c.send(agentproto.TypeCertRenew, "renew-1", &agentproto.CertRenew{CSR: string(csr)})
	env := c.expect(agentproto.TypeCertRenewed)
	require.Equal(t, "renew-1", env.ID)
	renewed, err := agentproto.DecodeData[agentproto.CertRenewed](env)
	require.NoError(t, err)
	cert, err := pki.KeyPair([]byte(renewed.Certificate), newKey)
	require.NoError(t, err)
	id, err := pki.IdentityFromCert(cert.Leaf)
	require.NoError(t, err)
	require.Equal(t, a.id, id.AgentID)
	require.NotEqual(t, a.serial, cert.Leaf.SerialNumber.Text(16))
	require.Equal(t, string(e.auth.CACertPEM()), renewed.CA)

	c.roundTrip() // the live session was not dropped

	old := e.dialWith(e.tlsConfig(a.certPEM, a.key), []string{agentproto.Subprotocol})
	require.Error(t, old.err)
	require.Equal(t, 401, old.status)
	require.Contains(t, old.body, "certificate_superseded")

	next := e.dialWith(e.tlsConfig([]byte(renewed.Certificate), newKey), []string{agentproto.Subprotocol})
	require.NoError(t, next.err)
	next.c.send(agentproto.TypeHello, "", helloMsg())
	next.c.expect(agentproto.TypeHelloAck)
}

func TestSlowConsumerClosedOthersUnaffected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *hub.Options) { o.QueueSize = 1 })
	slow := e.enroll()
	c, _ := e.connect(slow)
	bystander, _ := e.connect(e.enroll())

	params := json.RawMessage(`{"blob":"` + strings.Repeat("x", 60<<10) + `"}`)
	for range 1000 {
		e.hub.DispatchPlan(store.Plan{ID: store.NewID(), AgentID: slow.id, Actions: []store.PlanAction{{
			ID: store.NewID(), Type: store.ActionMicroVMCreate, VMID: store.NewID(), ExecutionID: store.NewID(),
			Params: params, Status: store.StatusPending,
		}}})
	}
	bystander.roundTrip()
	require.Equal(t, agentproto.CloseSlowConsumer, c.closed())
	bystander.roundTrip()
}

func TestShutdownClosesSessionsGoingAway(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c, _ := e.connect(e.enroll())
	e.stop()
	require.Equal(t, agentproto.CloseGoingAway, c.closed())
}

// TestOlderConnectionNeverReplacesNewer reproduces the reconnect-storm bug:
// an agent gives up on a connection whose hello is slow, reconnects, and
// is served on the new one; the old connection's hello completes later.
// The older connection must lose, whatever order the hellos complete in.
func TestOlderConnectionNeverReplacesNewer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.enroll()
	older := e.dial(a)
	newer := e.dial(a)

	newer.send(agentproto.TypeHello, "", helloMsg())
	newer.expect(agentproto.TypeHelloAck)
	older.send(agentproto.TypeHello, "", helloMsg())

	require.Equal(t, agentproto.CloseReplaced, older.closed())
	newer.roundTrip()
	require.Equal(t, 1, e.hub.Sessions())
	require.True(t, e.hub.Online(a.id))
}

// TestLivenessTimerPingsAndClosesSilentSessions: the per-session timer
// (no goroutine) pings a reading agent and closes one that sends nothing
// for three heartbeat intervals, while one that heartbeats stays.
func TestLivenessTimerPingsAndClosesSilentSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *hub.Options) {
		o.HeartbeatInterval = time.Second
		o.PingInterval = 100 * time.Millisecond
		o.OfflineAfter = time.Hour // the sweeper must not be what closes it
	})
	silent, _ := e.connect(e.enroll())
	alive, _ := e.connect(e.enroll())

	// The silent client reads (so it answers pings) but never writes.
	closedWith := make(chan websocket.StatusCode, 1)
	go func() {
		for {
			if _, _, err := silent.conn.Read(context.Background()); err != nil {
				closedWith <- websocket.CloseStatus(err)
				return
			}
		}
	}()
	deadline := time.After(waitTimeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case code := <-closedWith:
			require.Equal(t, agentproto.CloseHeartbeatTimeout, code)
			alive.roundTrip()
			// The client can see the close frame before the server has
			// unregistered the session: wait for it.
			eventually(t, "silent session unregistered", func() (bool, error) { return e.hub.Sessions() == 1, nil })
			return
		case <-tick.C:
			alive.send(agentproto.TypeHeartbeat, "", &agentproto.Heartbeat{
				At: time.Now(), VMs: []agentproto.VMStatus{}, NetBird: agentproto.NetBirdStatus{State: agentproto.NetBirdDisabled},
			})
		case <-deadline:
			t.Fatal("silent session was not closed")
		}
	}
}

// TestPendingPlansOfManyHellos: hellos close together share pending-plan
// queries; each session still gets exactly its agent's plans, in order.
func TestPendingPlansOfManyHellos(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	type agentPlans struct {
		a     *agent
		plans []uuid.UUID
	}
	var all []agentPlans
	for i := range 12 {
		a := e.enroll()
		ap := agentPlans{a: a}
		vm := e.createVM(a, store.VMStopped)
		for range i % 3 { // 0, 1 or 2 plans
			ap.plans = append(ap.plans, e.createPlan(a, vm, store.ActionMicroVMStart).ID)
		}
		all = append(all, ap)
	}
	// Every hello first, so their lookups overlap; then the frames.
	clients := make([]*client, len(all))
	for i, ap := range all {
		clients[i], _ = e.connect(ap.a)
	}
	for i, ap := range all {
		for _, want := range ap.plans {
			require.Equal(t, want, decodePlan(t, clients[i].expect(agentproto.TypePlan)).PlanID, "agent %d", i)
		}
		clients[i].roundTrip() // and nothing else queued before it
	}
}
