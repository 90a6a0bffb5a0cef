package hub_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/notify"
	"github.com/kubedoio/n-kudo/internal/store"
)

// clusterEnv is a hub on an in-process bus; the test plays the other
// replicas by publishing their notices and listening to the hub's.
type clusterEnv struct {
	*env
	bus   *notify.Local
	heard map[string]chan []byte
}

func newClusterEnv(t *testing.T) *clusterEnv {
	t.Helper()
	bus := notify.NewLocal(notify.LocalOptions{})
	ce := &clusterEnv{bus: bus, heard: make(map[string]chan []byte)}
	for _, topic := range []string{hub.TopicPlanDispatch, hub.TopicAgentRevoke, hub.TopicLogLines} {
		ch := make(chan []byte, 64)
		ce.heard[topic] = ch
		require.NoError(t, bus.Subscribe(topic, func(p []byte) { ch <- p }))
	}
	ce.env = newEnv(t, func(o *hub.Options) { o.Bus = bus })
	runBus(t, bus)
	return ce
}

// runBus delivers the bus's notifications until the test ends.
func runBus(t *testing.T, bus *notify.Local) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bus.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

// announce publishes a notice as another replica would.
func (ce *clusterEnv) announce(topic string, notice map[string]any) {
	ce.t.Helper()
	notice["origin"] = store.NewID()
	b, err := json.Marshal(notice)
	require.NoError(ce.t, err)
	require.NoError(ce.t, ce.bus.Publish(context.Background(), topic, b))
}

// hear returns the next notice the hub published on topic.
func (ce *clusterEnv) hear(topic string, into any) {
	ce.t.Helper()
	select {
	case p := <-ce.heard[topic]:
		require.NoError(ce.t, json.Unmarshal(p, into))
	case <-time.After(waitTimeout):
		ce.t.Fatalf("no notice on %s", topic)
	}
}

func (ce *clusterEnv) storeLines(exec uuid.UUID, from, to int64) {
	ce.t.Helper()
	var lines []store.LogLine
	for s := from; s <= to; s++ {
		lines = append(lines, store.LogLine{ExecutionID: exec, Seq: s, At: time.Now(), Stream: "stdout", Message: "line"})
	}
	require.NoError(ce.t, ce.st.AppendLogLines(context.Background(), lines))
}

func nextLines(t *testing.T, sub *hub.LogSubscription, want ...int64) {
	t.Helper()
	for _, w := range want {
		select {
		case l, ok := <-sub.C():
			require.True(t, ok, "subscription ended: %v", sub.Err())
			require.Equal(t, w, l.Seq)
		case <-time.After(waitTimeout):
			t.Fatalf("no line %d", w)
		}
	}
	select {
	case l := <-sub.C():
		t.Fatalf("unexpected line %d", l.Seq)
	default:
	}
}

// Notices from other replicas act on the session and followers here.
func TestClusterNoticesReachLocalSession(t *testing.T) {
	t.Parallel()
	ce := newClusterEnv(t)
	a := ce.enroll()
	vm := ce.createVM(a, store.VMStopped)
	c, _ := ce.connect(a)

	// A plan created on another replica is loaded and sent.
	p := ce.createPlan(a, vm, store.ActionMicroVMStart)
	ce.announce(hub.TopicPlanDispatch, map[string]any{"tenant_id": ce.tenant, "agent_id": a.id, "plan_id": p.ID})
	require.Equal(t, p.ID, decodePlan(t, c.expect(agentproto.TypePlan)).PlanID)

	// Lines stored on another replica reach a follower here; a follower
	// that subscribes later gets only the lines stored after it.
	exec := p.Actions[0].ExecutionID
	early := ce.hub.SubscribeLogs(exec, 16)
	defer early.Close()
	ce.storeLines(exec, 1, 3)
	ce.announce(hub.TopicLogLines, map[string]any{"execs": []map[string]any{
		{"execution_id": exec, "tenant_id": ce.tenant, "first_seq": 1, "max_seq": 3},
	}})
	nextLines(t, early, 1, 2, 3)
	late := ce.hub.SubscribeLogs(exec, 16)
	defer late.Close()
	ce.storeLines(exec, 4, 5)
	ce.announce(hub.TopicLogLines, map[string]any{"execs": []map[string]any{
		{"execution_id": exec, "tenant_id": ce.tenant, "first_seq": 4, "max_seq": 5},
	}})
	nextLines(t, early, 4, 5)
	nextLines(t, late, 4, 5)

	// A revocation made on another replica closes the session here.
	ce.announce(hub.TopicAgentRevoke, map[string]any{"agent_id": a.id})
	require.Equal(t, agentproto.CloseRevoked, c.closed())
}

// The hub announces what other replicas must act on, and only that.
func TestClusterAnnouncesToOtherReplicas(t *testing.T) {
	t.Parallel()
	ce := newClusterEnv(t)
	away, here := ce.enroll(), ce.enroll()

	// A plan for an agent connected elsewhere is announced.
	p := ce.createPlan(away, ce.createVM(away, store.VMStopped), store.ActionMicroVMStart)
	ce.hub.DispatchPlan(p)
	var pn struct {
		TenantID uuid.UUID `json:"tenant_id"`
		AgentID  uuid.UUID `json:"agent_id"`
		PlanID   uuid.UUID `json:"plan_id"`
	}
	ce.hear(hub.TopicPlanDispatch, &pn)
	require.Equal(t, p.ID, pn.PlanID)
	require.Equal(t, away.id, pn.AgentID)
	require.Equal(t, ce.tenant, pn.TenantID)

	// A plan for a session here goes straight to it, and is announced
	// too: the agent may have moved to another replica while the session
	// here is half-open (TestPlanReachesAgentThatMovedReplica).
	c, _ := ce.connect(here)
	q := ce.createPlan(here, ce.createVM(here, store.VMStopped), store.ActionMicroVMStart)
	ce.hub.DispatchPlan(q)
	require.Equal(t, q.ID, decodePlan(t, c.expect(agentproto.TypePlan)).PlanID)
	ce.hear(hub.TopicPlanDispatch, &pn)
	require.Equal(t, q.ID, pn.PlanID)
	require.Equal(t, here.id, pn.AgentID)

	// Persisted log lines are announced with their range.
	exec := q.Actions[0].ExecutionID
	c.send(agentproto.TypeLogBatch, "", &agentproto.LogBatch{ExecutionID: exec, Lines: logLines(1, 4)})
	var ln struct {
		Execs []struct {
			ExecutionID uuid.UUID `json:"execution_id"`
			TenantID    uuid.UUID `json:"tenant_id"`
			First       int64     `json:"first_seq"`
			Max         int64     `json:"max_seq"`
		}
	}
	ce.hear(hub.TopicLogLines, &ln)
	require.Len(t, ln.Execs, 1)
	require.Equal(t, exec, ln.Execs[0].ExecutionID)
	require.Equal(t, ce.tenant, ln.Execs[0].TenantID)
	require.Equal(t, int64(1), ln.Execs[0].First)
	require.Equal(t, int64(4), ln.Execs[0].Max)

	// A revocation is announced even when the session is here.
	ce.hub.Revoke(here.id)
	require.Equal(t, agentproto.CloseRevoked, c.closed())
	var rn struct {
		AgentID uuid.UUID `json:"agent_id"`
	}
	ce.hear(hub.TopicAgentRevoke, &rn)
	require.Equal(t, here.id, rn.AgentID)
}

// TestPlanReachesAgentThatMovedReplica: an agent's connection to replica
// A went half-open (A has not noticed yet) and the agent reconnected to
// replica B, whose hello read the pending plans before the next plan was
// stored on A. That plan must reach the agent on B now, not at its next
// reconnect: A announces it although it still holds a session.
func TestPlanReachesAgentThatMovedReplica(t *testing.T) {
	t.Parallel()
	bus := notify.NewLocal(notify.LocalOptions{})
	ra := newEnv(t, func(o *hub.Options) { o.Bus = bus })
	rb := ra.replica(func(o *hub.Options) { o.Bus = bus })
	runBus(t, bus)
	ag := ra.enroll()
	vm := ra.createVM(ag, store.VMStopped)
	// The old connection, which the agent no longer reads.
	_, _ = ra.connect(ag)
	live, _ := rb.connect(ag)
	require.True(t, ra.hub.Online(ag.id), "replica A still holds the half-open session")

	p := ra.createPlan(ag, vm, store.ActionMicroVMStart)
	ra.hub.DispatchPlan(p)
	require.Equal(t, p.ID, decodePlan(t, live.expect(agentproto.TypePlan)).PlanID)
	live.roundTrip() // and only once
}

// A notification gap (the bus dropped notices) re-sends every local
// session's pending plans, read in batches; each session gets its own.
func TestClusterGapResendsPendingPlans(t *testing.T) {
	t.Parallel()
	// A queue of one, not yet delivering: the second notice overflows it
	// and becomes a gap for the hub.
	bus := notify.NewLocal(notify.LocalOptions{QueueSize: 1})
	e := newEnv(t, func(o *hub.Options) { o.Bus = bus })
	type conn struct {
		c    *client
		plan uuid.UUID
	}
	var conns []conn
	for range 5 {
		a := e.enroll()
		vm := e.createVM(a, store.VMStopped)
		c, _ := e.connect(a)
		// Created behind the hub's back, as on another replica whose
		// notice is lost.
		conns = append(conns, conn{c: c, plan: e.createPlan(a, vm, store.ActionMicroVMStart).ID})
	}
	for range 2 {
		b, err := json.Marshal(map[string]any{"origin": store.NewID(), "tenant_id": e.tenant, "agent_id": store.NewID(), "plan_id": store.NewID()})
		require.NoError(t, err)
		require.NoError(t, bus.Publish(context.Background(), hub.TopicPlanDispatch, b))
	}
	runBus(t, bus)
	for i, cn := range conns {
		require.Equal(t, cn.plan, decodePlan(t, cn.c.expect(agentproto.TypePlan)).PlanID, "session %d", i)
		// Nothing but its own plan again (a gap may be reported more
		// than once; the agent ignores a plan it holds) before a probe's
		// answer.
		id := "rt-" + uuid.NewString()[:8]
		cn.c.send(agentproto.TypeActionResult, id, &agentproto.ActionResult{
			PlanID: uuid.New(), ActionID: uuid.New(), ExecutionID: uuid.New(),
			Status: agentproto.ResultSucceeded, At: time.Now(),
		})
		for {
			env, err := cn.c.recv()
			require.NoError(t, err)
			if env.Type == agentproto.TypeError {
				require.Equal(t, id, env.ID)
				break
			}
			require.Equal(t, agentproto.TypePlan, env.Type, "session %d: frame %s", i, env.Data)
			require.Equal(t, cn.plan, decodePlan(t, env).PlanID, "session %d", i)
		}
	}
}
