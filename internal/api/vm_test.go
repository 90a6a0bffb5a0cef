package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/api"
	"github.com/kubedoio/n-kudo/internal/store"
)

// vmWorld is a tenant with one site of two connected hosts and one
// enrolled but never connected (offline) host, a second site whose only
// host is offline, and another tenant with a connected host and a VM.
type vmWorld struct {
	e                     *channelEnv
	tenant                uuid.UUID
	admin, operator, vwr  string
	site, offSite         uuid.UUID
	agA, agB, agOff, agOS enrolled
	wireA, wireB          *wireAgent
	other                 struct {
		key  string
		site uuid.UUID
		ag   enrolled
		vm   uuid.UUID
	}
}

func newVMWorld(t *testing.T) *vmWorld {
	e := newChannelEnv(t, nil)
	w := &vmWorld{e: e}
	w.tenant = e.createTenant("acme")
	w.admin, _ = e.createKey(w.tenant, store.RoleAdmin)
	w.operator, _ = e.createKey(w.tenant, store.RoleOperator)
	w.vwr, _ = e.createKey(w.tenant, store.RoleViewer)
	w.site = e.createSite(w.admin, "edge-a")
	w.offSite = e.createSite(w.admin, "edge-dark")
	w.agA = e.enroll(w.admin, w.site, "host-a")
	w.agB = e.enroll(w.admin, w.site, "host-b")
	w.agOff = e.enroll(w.admin, w.site, "host-off")
	w.agOS = e.enroll(w.admin, w.offSite, "host-dark")
	w.wireA = e.connect(w.agA)
	w.wireB = e.connect(w.agB)

	other := e.createTenant("globex")
	w.other.key, _ = e.createKey(other, store.RoleAdmin)
	w.other.site = e.createSite(w.other.key, "edge-x")
	w.other.ag = e.enroll(w.other.key, w.other.site, "host-x")
	e.connect(w.other.ag)
	w.other.vm = e.createVM(other, w.other.site, w.other.ag.HostID, "vm-x")

	// The hellos' facts are written by the hub's batcher: wait for them,
	// so store snapshots taken by the tests see a settled store.
	for _, h := range []struct {
		tenant uuid.UUID
		host   uuid.UUID
	}{{w.tenant, w.agA.HostID}, {w.tenant, w.agB.HostID}, {other, w.other.ag.HostID}} {
		eventually(t, func() bool {
			got, err := e.store.GetHost(context.Background(), h.tenant, h.host)
			require.NoError(t, err)
			return string(got.Facts) != "{}"
		})
	}
	return w
}

type createdVM struct {
	VM struct {
		ID           uuid.UUID       `json:"id"`
		Name         string          `json:"name"`
		SiteID       uuid.UUID       `json:"site_id"`
		HostID       uuid.UUID       `json:"host_id"`
		DesiredState string          `json:"desired_state"`
		ActualState  string          `json:"actual_state"`
		VCPUs        int             `json:"vcpus"`
		MemoryMiB    int             `json:"memory_mib"`
		Spec         json.RawMessage `json:"spec"`
	} `json:"vm"`
	Plan planBody `json:"plan"`
}

func (w *vmWorld) vmBody(name string, tweak func(map[string]any)) map[string]any {
	b := map[string]any{
		"name": name, "site_id": w.site.String(), "vcpus": 2, "memory_mib": 512,
		"disk_image": "/var/lib/nkudo/images/alpine.raw",
	}
	if tweak != nil {
		tweak(b)
	}
	return b
}

func (w *vmWorld) create(body map[string]any) createdVM {
	w.e.t.Helper()
	var out createdVM
	w.e.must(http.StatusCreated, req{method: "POST", path: "/v1/vms", key: w.operator, body: body}).json(w.e.t, &out)
	return out
}

// nextOf returns the next frame of type typ the wire agent receives,
// skipping others (plans of earlier steps, acks).
func (a *wireAgent) nextOf(typ string) agentproto.Envelope {
	a.t.Helper()
	for {
		env := a.next()
		if env.Type == typ {
			return env
		}
	}
}

func TestCreateVMValidation(t *testing.T) {
	t.Parallel()
	w := newVMWorld(t)
	e := w.e
	set := func(k string, v any) func(map[string]any) { return func(b map[string]any) { b[k] = v } }
	del := func(k string) func(map[string]any) { return func(b map[string]any) { delete(b, k) } }
	cases := []struct {
		name   string
		key    string
		tweak  func(map[string]any)
		status int
		code   string
	}{
		{"viewer", w.vwr, nil, 403, api.CodeForbidden},
		{"no name", w.operator, del("name"), 400, api.CodeInvalidArgument},
		{"uppercase name", w.operator, set("name", "Web-1"), 400, api.CodeInvalidArgument},
		{"name with dot", w.operator, set("name", "web.1"), 400, api.CodeInvalidArgument},
		{"name starting with dash", w.operator, set("name", "-web"), 400, api.CodeInvalidArgument},
		{"name ending with dash", w.operator, set("name", "web-"), 400, api.CodeInvalidArgument},
		{"name too long", w.operator, set("name", strings.Repeat("a", 64)), 400, api.CodeInvalidArgument},
		{"no site", w.operator, del("site_id"), 400, api.CodeInvalidArgument},
		{"bad site id", w.operator, set("site_id", "site-1"), 400, api.CodeInvalidArgument},
		{"bad host id", w.operator, set("host_id", "host-1"), 400, api.CodeInvalidArgument},
		{"zero vcpus", w.operator, set("vcpus", 0), 400, api.CodeInvalidArgument},
		{"65 vcpus", w.operator, set("vcpus", 65), 400, api.CodeInvalidArgument},
		{"63 MiB", w.operator, set("memory_mib", 63), 400, api.CodeInvalidArgument},
		{"over 1 TiB", w.operator, set("memory_mib", 1<<20+1), 400, api.CodeInvalidArgument},
		{"no disk image", w.operator, del("disk_image"), 400, api.CodeInvalidArgument},
		{"relative disk image", w.operator, set("disk_image", "images/alpine.raw"), 400, api.CodeInvalidArgument},
		{"disk image with dot-dot", w.operator, set("disk_image", "/var/lib/../../etc/shadow"), 400, api.CodeInvalidArgument},
		{"relative kernel", w.operator, set("kernel", "vmlinux"), 400, api.CodeInvalidArgument},
		{"cmdline without kernel", w.operator, set("cmdline", "console=ttyS0"), 400, api.CodeInvalidArgument},
		{"user data over 64 KiB", w.operator, set("cloud_init", map[string]string{"user_data": strings.Repeat("x", 64<<10+1)}), 400, api.CodeInvalidArgument},
		{"user data filling the plan", w.operator, set("cloud_init", map[string]string{"user_data": strings.Repeat("x", 64<<10)}), 400, api.CodeInvalidArgument},
		{"unknown field", w.operator, set("image", "alpine"), 400, api.CodeInvalidJSON},
		{"vcpus not a number", w.operator, set("vcpus", "two"), 400, api.CodeInvalidJSON},
		{"site of another tenant", w.operator, set("site_id", w.other.site.String()), 404, api.CodeNotFound},
		{"host of another site", w.operator, set("host_id", w.agOS.HostID.String()), 404, api.CodeNotFound},
		{"host of another tenant", w.operator, set("host_id", w.other.ag.HostID.String()), 404, api.CodeNotFound},
		{"offline host", w.operator, set("host_id", w.agOff.HostID.String()), 409, api.CodeHostOffline},
		{"no host online", w.operator, set("site_id", w.offSite.String()), 409, api.CodeNoHostAvailable},
	}
	before := e.snapshot()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.do(req{method: "POST", path: "/v1/vms", key: tc.key, body: w.vmBody("web-1", tc.tweak)})
			require.Equal(t, tc.status, resp.status, "%s", resp.body)
			require.Equal(t, tc.code, resp.errCode(t))
			require.NotContains(t, string(resp.body), "host-x", "a refusal leaks another tenant's host")
		})
	}
	require.Equal(t, before, e.snapshot(), "a refused create changed the store")
}

func TestCreateVM(t *testing.T) {
	t.Parallel()
	w := newVMWorld(t)
	e := w.e

	// Explicit placement, booted by default; the agent holds the plan at
	// once, with the spec and a stable MAC in its params.
	ud := "#cloud-config\nhostname: web-1\n"
	got := w.create(w.vmBody("web-1", func(b map[string]any) {
		b["host_id"] = w.agA.HostID.String()
		b["kernel"] = "/var/lib/nkudo/kernels/vmlinux"
		b["cmdline"] = "console=ttyS0 root=/dev/vda1"
		b["cloud_init"] = map[string]string{"user_data": ud}
	}))
	require.Equal(t, "web-1", got.VM.Name)
	require.Equal(t, w.agA.HostID, got.VM.HostID)
	require.Equal(t, w.site, got.VM.SiteID)
	require.Equal(t, store.VMRunning, got.VM.DesiredState)
	require.Equal(t, store.VMCreating, got.VM.ActualState)
	require.Equal(t, 2, got.VM.VCPUs)
	require.Equal(t, 512, got.VM.MemoryMiB)
	var spec struct {
		DiskImage string `json:"disk_image"`
		MAC       string `json:"mac"`
		CloudInit struct {
			UserData string `json:"user_data"`
		} `json:"cloud_init"`
	}
	require.NoError(t, json.Unmarshal(got.VM.Spec, &spec))
	require.Equal(t, "/var/lib/nkudo/images/alpine.raw", spec.DiskImage)
	require.Equal(t, ud, spec.CloudInit.UserData)
	require.Regexp(t, `^02(:[0-9a-f]{2}){5}$`, spec.MAC)
	require.Len(t, got.Plan.Actions, 1)
	require.Equal(t, store.ActionMicroVMCreate, got.Plan.Actions[0].Type)
	require.Equal(t, got.VM.ID, got.Plan.Actions[0].VMID)

	env := w.wireA.nextOf(agentproto.TypePlan)
	wp, err := agentproto.DecodeData[agentproto.Plan](env)
	require.NoError(t, err)
	require.Equal(t, got.Plan.ID, wp.PlanID)
	var params map[string]any
	require.NoError(t, json.Unmarshal(wp.Actions[0].Params, &params))
	require.Equal(t, "web-1", params["name"])
	require.EqualValues(t, 2, params["vcpus"])
	require.EqualValues(t, 512, params["memory_mib"])
	require.Equal(t, "/var/lib/nkudo/kernels/vmlinux", params["kernel"])
	require.Equal(t, spec.MAC, params["mac"])
	require.NotContains(t, params, "start", "a booting create leaves start to the agent's default")

	// start=false: desired stopped, and the agent is told not to boot.
	stopped := w.create(w.vmBody("web-2", func(b map[string]any) { b["host_id"] = w.agA.HostID.String(); b["start"] = false }))
	require.Equal(t, store.VMStopped, stopped.VM.DesiredState)
	wp, err = agentproto.DecodeData[agentproto.Plan](w.wireA.nextOf(agentproto.TypePlan))
	require.NoError(t, err)
	require.JSONEq(t, `false`, string(mustField(t, wp.Actions[0].Params, "start")))

	// Least loaded: host A holds two VMs, B none, the offline host is
	// never chosen.
	auto := w.create(w.vmBody("web-3", nil))
	require.Equal(t, w.agB.HostID, auto.VM.HostID)
	auto2 := w.create(w.vmBody("web-4", nil))
	require.Equal(t, w.agB.HostID, auto2.VM.HostID, "B (1 vm) is still less loaded than A (2)")
	auto3 := w.create(w.vmBody("web-5", nil))
	require.Equal(t, w.agA.HostID, auto3.VM.HostID, "a tie goes to the oldest host")

	// Duplicate names are refused, in any site.
	resp := e.do(req{method: "POST", path: "/v1/vms", key: w.operator, body: w.vmBody("web-1", nil)})
	require.Equal(t, http.StatusConflict, resp.status, "%s", resp.body)
	require.Equal(t, api.CodeNameTaken, resp.errCode(t))

	// Idempotency-Key: a retry answers the first result and creates
	// nothing.
	hdr := map[string]string{api.HeaderIdempotencyKey: "create-web-9"}
	first := e.must(http.StatusCreated, req{method: "POST", path: "/v1/vms", key: w.operator, header: hdr, body: w.vmBody("web-9", nil)})
	again := e.must(http.StatusCreated, req{method: "POST", path: "/v1/vms", key: w.operator, header: hdr, body: w.vmBody("web-9", nil)})
	require.JSONEq(t, string(first.body), string(again.body))
	var list struct{ Items []json.RawMessage }
	e.must(http.StatusOK, req{method: "GET", path: "/v1/vms", key: w.vwr}).json(t, &list)
	require.Len(t, list.Items, 6)
}

func mustField(t *testing.T, raw json.RawMessage, key string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &m))
	v, ok := m[key]
	require.True(t, ok, "%s has no %q", raw, key)
	return v
}

type vmState struct {
	DesiredState string `json:"desired_state"`
	ActualState  string `json:"actual_state"`
	Drift        bool   `json:"drift"`
}

func (w *vmWorld) state(id uuid.UUID) vmState {
	w.e.t.Helper()
	var v vmState
	w.e.must(http.StatusOK, req{method: "GET", path: "/v1/vms/" + id.String(), key: w.vwr}).json(w.e.t, &v)
	return v
}

func TestVMActions(t *testing.T) {
	t.Parallel()
	w := newVMWorld(t)
	e := w.e
	vm := w.create(w.vmBody("db-1", func(b map[string]any) { b["host_id"] = w.agA.HostID.String(); b["start"] = false })).VM.ID
	path := "/v1/vms/" + vm.String()

	steps := []struct {
		name, method, path string
		status             int
		code               string
		action             string
		desired            string
	}{
		{"reboot a stopped vm", "POST", path + "/reboot", 409, api.CodeVMNotRunning, "", store.VMStopped},
		{"start", "POST", path + "/start", 202, "", store.ActionMicroVMStart, store.VMRunning},
		{"start again", "POST", path + "/start", 202, "", store.ActionMicroVMStart, store.VMRunning},
		{"reboot", "POST", path + "/reboot", 202, "", store.ActionMicroVMReboot, store.VMRunning},
		{"stop", "POST", path + "/stop", 202, "", store.ActionMicroVMStop, store.VMStopped},
		{"delete", "DELETE", path, 202, "", store.ActionMicroVMDelete, store.VMDeleted},
		{"start a deleted vm", "POST", path + "/start", 409, api.CodeVMDeleted, "", store.VMDeleted},
		{"delete twice", "DELETE", path, 409, api.CodeVMDeleted, "", store.VMDeleted},
	}
	w.wireA.nextOf(agentproto.TypePlan) // the create
	for _, st := range steps {
		resp := e.do(req{method: st.method, path: st.path, key: w.operator})
		require.Equal(t, st.status, resp.status, "%s: %s", st.name, resp.body)
		if st.code != "" {
			require.Equal(t, st.code, resp.errCode(t), st.name)
		} else {
			var p planBody
			resp.json(t, &p)
			require.Len(t, p.Actions, 1, st.name)
			require.Equal(t, st.action, p.Actions[0].Type, st.name)
			require.Equal(t, vm, p.Actions[0].VMID, st.name)
			require.Equal(t, store.StatusPending, p.Status, st.name)
			wp, err := agentproto.DecodeData[agentproto.Plan](w.wireA.nextOf(agentproto.TypePlan))
			require.NoError(t, err)
			require.Equal(t, p.ID, wp.PlanID, "%s: the plan reached the agent", st.name)
		}
		require.Equal(t, st.desired, w.state(vm).DesiredState, st.name)
	}

	// Viewers cannot act; an offline host takes no action.
	vm2 := e.createVM(w.tenant, w.site, w.agB.HostID, "db-2")
	resp := e.do(req{method: "POST", path: "/v1/vms/" + vm2.String() + "/stop", key: w.vwr})
	require.Equal(t, http.StatusForbidden, resp.status)
	off := e.createVM(w.tenant, w.site, w.agOff.HostID, "db-off")
	for _, p := range []string{"/start", "/stop", "/reboot"} {
		resp := e.do(req{method: "POST", path: "/v1/vms/" + off.String() + p, key: w.operator})
		require.Equal(t, http.StatusConflict, resp.status, "%s: %s", p, resp.body)
		require.Equal(t, api.CodeHostOffline, resp.errCode(t))
	}
	resp = e.do(req{method: "DELETE", path: "/v1/vms/" + off.String(), key: w.operator})
	require.Equal(t, http.StatusConflict, resp.status)
	require.Equal(t, store.VMRunning, w.state(off).DesiredState, "a refused action changed the desired state")
}

// TestVMDrift checks the drift flag against agent reports, including a
// VM reported running while it is meant to be stopped.
func TestVMDrift(t *testing.T) {
	t.Parallel()
	w := newVMWorld(t)
	e := w.e
	vm := w.create(w.vmBody("drifty", func(b map[string]any) { b["host_id"] = w.agA.HostID.String(); b["start"] = false })).VM.ID
	cases := []struct {
		actual string
		drift  bool
	}{
		{store.VMCreating, false},
		{store.VMStopped, false},
		{store.VMRunning, true},
		{store.VMFailed, true},
		{store.VMUnknown, false},
	}
	for _, tc := range cases {
		_, err := e.store.ReportVMStates(context.Background(), w.agA.HostID,
			[]store.VMStateReport{{VMID: vm, ActualState: tc.actual}}, time.Now())
		require.NoError(t, err)
		got := w.state(vm)
		require.Equal(t, store.VMStopped, got.DesiredState)
		require.Equal(t, tc.actual, got.ActualState)
		require.Equal(t, tc.drift, got.Drift, "desired stopped, actual %s", tc.actual)
	}
}

// TestVMTenantIsolation: another tenant's VM is 404 on every VM route,
// and nothing about it changes.
func TestVMTenantIsolation(t *testing.T) {
	t.Parallel()
	w := newVMWorld(t)
	e := w.e
	p := "/v1/vms/" + w.other.vm.String()
	routes := []struct{ method, path string }{
		{"GET", p}, {"POST", p + "/start"}, {"POST", p + "/stop"}, {"POST", p + "/reboot"},
		{"DELETE", p}, {"GET", p + "/console"}, {"GET", p + "/console?follow=true"},
	}
	before := e.snapshot()
	for _, r := range routes {
		resp := e.do(req{method: r.method, path: r.path, key: w.admin})
		require.Equal(t, http.StatusNotFound, resp.status, "%s %s: %s", r.method, r.path, resp.body)
		require.Equal(t, api.CodeNotFound, resp.errCode(t))
		require.NotContains(t, string(resp.body), w.other.ag.HostID.String())
	}
	require.Equal(t, before, e.snapshot())
}

func TestVMConsole(t *testing.T) {
	t.Parallel()
	w := newVMWorld(t)
	e := w.e
	vm := w.create(w.vmBody("tty", func(b map[string]any) { b["host_id"] = w.agA.HostID.String() })).VM.ID
	path := "/v1/vms/" + vm.String() + "/console"
	w.wireA.nextOf(agentproto.TypePlan)

	// One-shot: the chunks the agent sends before its end-of-snapshot
	// marker are the answer.
	type answer struct{ resp response }
	done := make(chan answer, 1)
	go func() {
		// e.do's require calls must not run off the test goroutine.
		hr, err := http.NewRequest("GET", e.srv.URL+path, nil)
		if err != nil {
			done <- answer{}
			return
		}
		hr.Header.Set("Authorization", "Bearer "+w.vwr)
		r, err := e.cli.Do(hr)
		if err != nil {
			done <- answer{}
			return
		}
		defer r.Body.Close()
		body, _ := io.ReadAll(r.Body)
		done <- answer{response{status: r.StatusCode, header: r.Header, body: body}}
	}()
	start, err := agentproto.DecodeData[agentproto.ConsoleStart](w.wireA.nextOf(agentproto.TypeConsoleStart))
	require.NoError(t, err)
	require.Equal(t, vm, start.VMID)
	snapshot := []byte("booting\r\nlogin: \xff")
	w.wireA.send(&agentproto.ConsoleData{VMID: vm, StreamID: start.StreamID, Data: snapshot[:9]})
	w.wireA.send(&agentproto.ConsoleData{VMID: vm, StreamID: start.StreamID, Data: snapshot[9:]})
	w.wireA.send(&agentproto.ConsoleData{VMID: vm, StreamID: start.StreamID, SnapshotDone: true})
	got := <-done
	require.Equal(t, http.StatusOK, got.resp.status, "%s", got.resp.body)
	require.Equal(t, snapshot, got.resp.body)
	require.Equal(t, "text/plain; charset=utf-8", got.resp.header.Get("Content-Type"))
	stop, err := agentproto.DecodeData[agentproto.ConsoleStop](w.wireA.nextOf(agentproto.TypeConsoleStop))
	require.NoError(t, err)
	require.Equal(t, start.StreamID, stop.StreamID, "the agent is told to stop once the answer is out")

	// Follow: chunks become base64 SSE events in order; a chunk for
	// another VM on the stream is dropped; leaving stops the agent's tail.
	s := e.follow(w.vwr, path+"?follow=true", "")
	start, err = agentproto.DecodeData[agentproto.ConsoleStart](w.wireA.nextOf(agentproto.TypeConsoleStart))
	require.NoError(t, err)
	chunks := [][]byte{[]byte("line one\n"), []byte("line two\n")}
	w.wireA.send(&agentproto.ConsoleData{VMID: vm, StreamID: start.StreamID, Data: chunks[0]})
	w.wireA.send(&agentproto.ConsoleData{VMID: w.other.vm, StreamID: start.StreamID, Data: []byte("not yours")})
	w.wireA.send(&agentproto.ConsoleData{VMID: vm, StreamID: start.StreamID, Data: chunks[1]})
	for _, want := range chunks {
		ev := s.next(t)
		require.Equal(t, "console", ev.event)
		data, err := base64.StdEncoding.DecodeString(ev.data)
		require.NoError(t, err)
		require.Equal(t, want, data)
	}
	s.resp.Body.Close()
	stop, err = agentproto.DecodeData[agentproto.ConsoleStop](w.wireA.nextOf(agentproto.TypeConsoleStop))
	require.NoError(t, err)
	require.Equal(t, start.StreamID, stop.StreamID)

	// The agent disconnects mid-stream: the stream ends with a reason.
	s = e.follow(w.vwr, path+"?follow=true", "")
	w.wireA.nextOf(agentproto.TypeConsoleStart)
	require.NoError(t, w.wireA.conn.CloseNow())
	ev := s.next(t)
	require.Equal(t, "end", ev.event)
	require.Contains(t, ev.data, "disconnected")

	// A VM whose host is offline has no console.
	off := e.createVM(w.tenant, w.site, w.agOff.HostID, "tty-off")
	resp := e.do(req{method: "GET", path: "/v1/vms/" + off.String() + "/console", key: w.vwr})
	require.Equal(t, http.StatusConflict, resp.status, "%s", resp.body)
	require.Equal(t, api.CodeHostOffline, resp.errCode(t))
	resp = e.do(req{method: "GET", path: path + "?follow=yes", key: w.vwr})
	require.Equal(t, http.StatusBadRequest, resp.status)
}
