package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/api"
	"github.com/kubedoio/n-kudo/internal/store"
)

// planWorld is a tenant with two sites, one enrolled agent per site and a
// VM per host, plus a second tenant with the same.
type planWorld struct {
	e                    *channelEnv
	tenant               uuid.UUID
	admin, operator, vwr string
	site, site2          uuid.UUID
	ag, ag2              enrolled
	vm, vm2              uuid.UUID
	other                struct {
		key  string
		site uuid.UUID
		ag   enrolled
		vm   uuid.UUID
	}
}

func (e *channelEnv) createVM(tenant, site, host uuid.UUID, name string) uuid.UUID {
	e.t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	vm := store.VM{
		ID: store.NewID(), TenantID: tenant, SiteID: site, HostID: host, Name: name,
		DesiredState: store.VMRunning, ActualState: store.VMCreating, VCPUs: 1, MemoryMiB: 256,
		Spec: json.RawMessage(`{"disk_image":"/var/lib/images/alpine.raw"}`), CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(e.t, e.store.CreateVM(context.Background(), vm))
	return vm.ID
}

func newPlanWorld(t *testing.T) *planWorld {
	e := newChannelEnv(t, nil)
	w := &planWorld{e: e}
	tenant := e.createTenant("acme")
	w.tenant = tenant
	w.admin, _ = e.createKey(tenant, store.RoleAdmin)
	w.operator, _ = e.createKey(tenant, store.RoleOperator)
	w.vwr, _ = e.createKey(tenant, store.RoleViewer)
	w.site = e.createSite(w.admin, "edge-a")
	w.site2 = e.createSite(w.admin, "edge-b")
	w.ag = e.enroll(w.admin, w.site, "host-a")
	w.ag2 = e.enroll(w.admin, w.site2, "host-b")
	w.vm = e.createVM(tenant, w.site, w.ag.HostID, "vm-a")
	w.vm2 = e.createVM(tenant, w.site2, w.ag2.HostID, "vm-b")

	other := e.createTenant("globex")
	w.other.key, _ = e.createKey(other, store.RoleAdmin)
	w.other.site = e.createSite(w.other.key, "edge-x")
	w.other.ag = e.enroll(w.other.key, w.other.site, "host-x")
	w.other.vm = e.createVM(other, w.other.site, w.other.ag.HostID, "vm-x")
	return w
}

type planBody struct {
	ID      uuid.UUID `json:"id"`
	SiteID  uuid.UUID `json:"site_id"`
	Status  string    `json:"status"`
	Actions []struct {
		ID          uuid.UUID       `json:"id"`
		Type        string          `json:"type"`
		VMID        uuid.UUID       `json:"vm_id"`
		Status      string          `json:"status"`
		ExecutionID uuid.UUID       `json:"execution_id"`
		Params      json.RawMessage `json:"params"`
	} `json:"actions"`
}

func action(typ string, vm uuid.UUID) map[string]any {
	return map[string]any{"type": typ, "vm_id": vm.String()}
}

func TestCreatePlanValidation(t *testing.T) {
	t.Parallel()
	w := newPlanWorld(t)
	e := w.e
	tooMany := make([]map[string]any, agentproto.MaxActionsPerPlan+1)
	for i := range tooMany {
		tooMany[i] = action(store.ActionMicroVMStart, w.vm)
	}
	path := "/v1/sites/" + w.site.String() + "/plans"
	cases := []struct {
		name   string
		key    string
		path   string
		body   any
		status int
		code   string
	}{
		{"viewer", w.vwr, path, map[string]any{"host_id": w.ag.HostID, "actions": []any{action("MicroVMStart", w.vm)}}, 403, api.CodeForbidden},
		{"no host", w.operator, path, map[string]any{"actions": []any{action("MicroVMStart", w.vm)}}, 400, api.CodeInvalidArgument},
		{"bad host id", w.operator, path, map[string]any{"host_id": "nope", "actions": []any{action("MicroVMStart", w.vm)}}, 400, api.CodeInvalidArgument},
		{"no actions", w.operator, path, map[string]any{"host_id": w.ag.HostID, "actions": []any{}}, 400, api.CodeInvalidArgument},
		{"too many actions", w.operator, path, map[string]any{"host_id": w.ag.HostID, "actions": tooMany}, 400, api.CodeInvalidArgument},
		{"unknown type", w.operator, path, map[string]any{"host_id": w.ag.HostID, "actions": []any{action("MicroVMExplode", w.vm)}}, 400, api.CodeInvalidArgument},
		{"bad vm id", w.operator, path, map[string]any{"host_id": w.ag.HostID, "actions": []any{map[string]any{"type": "MicroVMStart", "vm_id": "x"}}}, 400, api.CodeInvalidArgument},
		{"params not object", w.operator, path, map[string]any{"host_id": w.ag.HostID, "actions": []any{map[string]any{"type": "MicroVMStart", "vm_id": w.vm, "params": []int{1}}}}, 400, api.CodeInvalidArgument},
		{"unknown field", w.operator, path, map[string]any{"host_id": w.ag.HostID, "agent_id": w.ag.AgentID, "actions": []any{action("MicroVMStart", w.vm)}}, 400, api.CodeInvalidJSON},
		{"host of another site", w.operator, path, map[string]any{"host_id": w.ag2.HostID, "actions": []any{action("MicroVMStart", w.vm2)}}, 400, api.CodeInvalidArgument},
		{"vm of another host", w.operator, path, map[string]any{"host_id": w.ag.HostID, "actions": []any{action("MicroVMStart", w.vm2)}}, 400, api.CodeInvalidArgument},
		{"unknown vm", w.operator, path, map[string]any{"host_id": w.ag.HostID, "actions": []any{action("MicroVMStart", uuid.New())}}, 400, api.CodeInvalidArgument},
		{"host of another tenant", w.operator, path, map[string]any{"host_id": w.other.ag.HostID, "actions": []any{action("MicroVMStart", w.other.vm)}}, 400, api.CodeInvalidArgument},
		{"vm of another tenant", w.operator, path, map[string]any{"host_id": w.ag.HostID, "actions": []any{action("MicroVMStart", w.other.vm)}}, 400, api.CodeInvalidArgument},
		{"site of another tenant", w.operator, "/v1/sites/" + w.other.site.String() + "/plans", map[string]any{"host_id": w.other.ag.HostID, "actions": []any{action("MicroVMStart", w.other.vm)}}, 404, api.CodeNotFound},
		{"other tenant's key on our site", w.other.key, path, map[string]any{"host_id": w.ag.HostID, "actions": []any{action("MicroVMStart", w.vm)}}, 404, api.CodeNotFound},
	}
	before := e.snapshot()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.do(req{method: "POST", path: tc.path, key: tc.key, body: tc.body})
			require.Equal(t, tc.status, resp.status, "%s", resp.body)
			require.Equal(t, tc.code, resp.errCode(t))
			for _, leak := range []string{w.other.vm.String(), w.other.ag.HostID.String()} {
				if !strings.Contains(fmt.Sprint(tc.body), leak) {
					require.NotContains(t, string(resp.body), leak)
				}
			}
		})
	}
	require.Equal(t, before, e.snapshot(), "a refused plan changed the store")

	// A revoked agent can run no plan.
	e.must(http.StatusOK, req{method: "POST", path: "/v1/agents/" + w.ag2.AgentID.String() + "/revoke", key: w.admin})
	resp := e.do(req{method: "POST", path: "/v1/sites/" + w.site2.String() + "/plans", key: w.operator,
		body: map[string]any{"host_id": w.ag2.HostID, "actions": []any{action("MicroVMStart", w.vm2)}}})
	require.Equal(t, http.StatusConflict, resp.status, "%s", resp.body)
}

// TestPlanDispatchAndLogs drives one plan through a hand-written agent:
// the plan reaches the live session at once, logs stream to a follower
// over SSE, and the stream ends when the action's result arrives.
func TestPlanDispatchAndLogs(t *testing.T) {
	t.Parallel()
	w := newPlanWorld(t)
	e := w.e
	agent := e.connect(w.ag)

	var plan planBody
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites/" + w.site.String() + "/plans", key: w.operator,
		header: map[string]string{api.HeaderIdempotencyKey: "plan-1"},
		body:   map[string]any{"host_id": w.ag.HostID, "actions": []any{action(store.ActionMicroVMCreate, w.vm)}}}).json(t, &plan)
	require.Equal(t, w.site, plan.SiteID)
	require.Equal(t, store.StatusPending, plan.Status)
	require.Len(t, plan.Actions, 1)
	act := plan.Actions[0]
	require.Equal(t, w.vm, act.VMID)
	// A create without params carries the VM's stored spec.
	var params map[string]any
	require.NoError(t, json.Unmarshal(act.Params, &params))
	require.Equal(t, "vm-a", params["name"])
	require.Equal(t, "/var/lib/images/alpine.raw", params["disk_image"])

	// The live agent got it without asking.
	env := agent.next()
	require.Equal(t, agentproto.TypePlan, env.Type)
	wire, err := agentproto.DecodeData[agentproto.Plan](env)
	require.NoError(t, err)
	require.Equal(t, plan.ID, wire.PlanID)
	require.Equal(t, act.ExecutionID, wire.Actions[0].ExecutionID)
	agent.send(&agentproto.PlanAck{PlanID: plan.ID})
	eventually(t, func() bool {
		p, err := e.store.GetPlan(context.Background(), w.ag.TenantID, plan.ID)
		return err == nil && p.Status == store.StatusDispatched
	})

	// Follow the execution's log before any line exists.
	logsPath := "/v1/executions/" + act.ExecutionID.String() + "/logs"
	stream := e.follow(w.operator, logsPath+"?follow=true", "")
	lines := func(from, to int64) []agentproto.LogLine {
		var out []agentproto.LogLine
		for s := from; s <= to; s++ {
			out = append(out, agentproto.LogLine{Seq: s, At: time.Now().UTC(), Stream: agentproto.StreamSystem, Message: fmt.Sprintf("line %d", s)})
		}
		return out
	}
	agent.send(&agentproto.LogBatch{ExecutionID: act.ExecutionID, Lines: lines(1, 3)})
	for s := int64(1); s <= 3; s++ {
		ev := stream.next(t)
		require.Equal(t, "", ev.event)
		require.Equal(t, fmt.Sprint(s), ev.id)
		var l struct {
			Seq     int64
			Message string
			Stream  string
		}
		require.NoError(t, json.Unmarshal([]byte(ev.data), &l))
		require.Equal(t, s, l.Seq)
		require.Equal(t, fmt.Sprintf("line %d", s), l.Message)
	}
	// A resent batch is not repeated to the follower.
	agent.send(&agentproto.LogBatch{ExecutionID: act.ExecutionID, Lines: lines(2, 4)})
	require.Equal(t, "4", stream.next(t).id)

	agent.send(&agentproto.ActionResult{PlanID: plan.ID, ActionID: act.ID, ExecutionID: act.ExecutionID,
		Status: agentproto.ResultSucceeded, VMState: "running", At: time.Now().UTC()})
	end := stream.next(t)
	require.Equal(t, "end", end.event, "data %s", end.data)
	require.Contains(t, end.data, `"succeeded"`)

	// Paginated listing by seq.
	var page struct {
		Items []struct {
			Seq int64 `json:"seq"`
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	e.must(http.StatusOK, req{method: "GET", path: logsPath + "?limit=3", key: w.vwr}).json(t, &page)
	require.Len(t, page.Items, 3)
	require.Equal(t, "3", page.NextCursor)
	e.must(http.StatusOK, req{method: "GET", path: logsPath + "?limit=3&cursor=" + page.NextCursor, key: w.vwr}).json(t, &page)
	require.Len(t, page.Items, 1)
	require.Equal(t, int64(4), page.Items[0].Seq)
	require.Empty(t, page.NextCursor)
	e.must(http.StatusOK, req{method: "GET", path: logsPath + "?after=4", key: w.vwr}).json(t, &page)
	require.Empty(t, page.Items)

	// Resuming a finished stream sends what follows Last-Event-ID, then end.
	resumed := e.follow(w.operator, logsPath+"?follow=true", "2")
	require.Equal(t, "3", resumed.next(t).id)
	require.Equal(t, "4", resumed.next(t).id)
	require.Equal(t, "end", resumed.next(t).event)

	// Another tenant cannot see the execution or its log.
	for _, p := range []string{logsPath, logsPath + "?follow=true"} {
		resp := e.do(req{method: "GET", path: p, key: w.other.key})
		require.Equal(t, http.StatusNotFound, resp.status, "%s", resp.body)
		require.NotContains(t, string(resp.body), "line")
	}
	resp := e.do(req{method: "GET", path: logsPath + "?after=-1", key: w.vwr})
	require.Equal(t, http.StatusBadRequest, resp.status)
}

// TestAgentCannotReportForeignAction: an agent reporting on another
// agent's action gets an error frame and changes nothing.
func TestAgentCannotReportForeignAction(t *testing.T) {
	t.Parallel()
	w := newPlanWorld(t)
	e := w.e
	var plan planBody
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites/" + w.site.String() + "/plans", key: w.operator,
		body: map[string]any{"host_id": w.ag.HostID, "actions": []any{action(store.ActionMicroVMStart, w.vm)}}}).json(t, &plan)
	intruder := e.connect(w.ag2)
	act := plan.Actions[0]
	intruder.send(&agentproto.ActionResult{PlanID: plan.ID, ActionID: act.ID, ExecutionID: act.ExecutionID,
		Status: agentproto.ResultFailed, Error: "forged", At: time.Now().UTC()})
	require.Equal(t, agentproto.TypeError, intruder.next().Type)
	intruder.send(&agentproto.LogBatch{ExecutionID: act.ExecutionID, Lines: []agentproto.LogLine{{Seq: 1, At: time.Now().UTC(), Stream: "stdout", Message: "forged"}}})
	require.Equal(t, agentproto.TypeError, intruder.next().Type)

	p, err := e.store.GetPlan(context.Background(), w.ag.TenantID, plan.ID)
	require.NoError(t, err)
	require.Equal(t, store.StatusPending, p.Actions[0].Status)
	logs, err := e.store.ListLogLines(context.Background(), w.ag.TenantID, act.ExecutionID, 0, 10)
	require.NoError(t, err)
	require.Empty(t, logs)
}

// TestRevokeClosesLiveSession: revoking through the API closes the live
// session with CloseRevoked and the next handshake is refused.
func TestRevokeClosesLiveSession(t *testing.T) {
	t.Parallel()
	w := newPlanWorld(t)
	e := w.e
	agent := e.connect(w.ag)
	e.must(http.StatusOK, req{method: "POST", path: "/v1/agents/" + w.ag.AgentID.String() + "/revoke", key: w.operator})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var closeErr error
	for closeErr == nil {
		_, _, closeErr = agent.conn.Read(ctx)
	}
	require.Equal(t, agentproto.CloseRevoked, websocket.CloseStatus(closeErr), "%v", closeErr)
	eventually(t, func() bool { return !e.hub.Online(w.ag.AgentID) })
}

func eventually(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		require.True(t, time.Now().Before(deadline), "condition not met within 10s")
		<-tick.C
	}
}

// sseStream reads Server-Sent Events from a response.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent
}

type sseEvent struct {
	id, event, data string
	err             error
}

func (e *channelEnv) follow(key, path, lastEventID string) *sseStream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
	require.NoError(e.t, err)
	r.Header.Set("Authorization", "Bearer "+key)
	if lastEventID != "" {
		r.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := e.cli.Do(r)
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusOK, resp.StatusCode)
	require.Equal(e.t, "text/event-stream", resp.Header.Get("Content-Type"))
	s := &sseStream{resp: resp, events: make(chan sseEvent, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(s.events)
		readSSE(resp.Body, s.events)
	}()
	e.t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return s
}

// readSSE parses events until the body ends; comments are skipped.
func readSSE(body io.Reader, out chan<- sseEvent) {
	sc := bufio.NewScanner(body)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.data != "" || ev.event != "" {
				out <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		}
	}
	if err := sc.Err(); err != nil {
		out <- sseEvent{err: err}
	}
}

func (s *sseStream) next(t testing.TB) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		require.True(t, ok, "stream ended")
		require.NoError(t, ev.err)
		return ev
	case <-time.After(10 * time.Second):
		require.FailNow(t, "no event within 10s")
		return sseEvent{}
	}
}
