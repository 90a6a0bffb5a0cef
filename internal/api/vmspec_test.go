package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/api"
	"github.com/kubedoio/n-kudo/internal/store"
)

// errMessage returns the message of an error body.
func (r response) errMessage(t testing.TB) string {
	t.Helper()
	var body struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	r.json(t, &body)
	return body.Error.Message
}

// badHostPaths are host paths both VM routes refuse, with the words the
// message must hold.
var badHostPaths = []struct {
	name, path, want string
}{
	{"relative", "images/alpine.raw", "absolute"},
	{"dot-dot", "/var/lib/nkudo-agent/images/../../../etc/shadow", "'..'"},
	{"control character", "/var/lib/nkudo-agent/images/a\x1b[2Jb.raw", "control characters"},
	{"newline", "/var/lib/nkudo-agent/images/a\nb.raw", "control characters"},
	{"comma", "/var/lib/nkudo-agent/images/a.raw,readonly=off", "','"},
	{"unclean", "/var/lib/nkudo-agent//images/a.raw", "clean"},
}

// TestVMSpecOnBothRoutes shows POST /v1/vms and the MicroVMCreate params
// of a raw plan refuse the same bad host paths and MACs with a 400 naming
// the field, and store nothing.
func TestVMSpecOnBothRoutes(t *testing.T) {
	t.Parallel()
	w := newPlanWorld(t)
	e := w.e
	planPath := "/v1/sites/" + w.site.String() + "/plans"
	vmBody := func(field, value string) map[string]any {
		b := map[string]any{
			"name": "web-1", "site_id": w.site.String(), "vcpus": 1, "memory_mib": 256,
			"disk_image": "/var/lib/nkudo-agent/images/alpine.raw",
		}
		if field == "kernel" {
			b["cmdline"] = "console=ttyS0"
		}
		b[field] = value
		return b
	}
	planBody := func(field, value string) map[string]any {
		params := vmBody(field, value)
		delete(params, "site_id")
		return map[string]any{"host_id": w.ag.HostID, "actions": []any{map[string]any{
			"type": store.ActionMicroVMCreate, "vm_id": w.vm.String(), "params": params,
		}}}
	}
	type probe struct{ name, field, value, want string }
	var probes []probe
	for _, p := range badHostPaths {
		probes = append(probes, probe{"disk " + p.name, "disk_image", p.path, p.want}, probe{"kernel " + p.name, "kernel", p.path, p.want})
	}
	probes = append(probes,
		probe{"dashed mac", "mac", "52-54-00-12-34-56", "colon-separated"},
		probe{"dotted mac", "mac", "5254.0012.3456", "colon-separated"},
	)
	before := e.snapshot()
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			if p.field != "mac" { // the VM route chooses the MAC itself
				resp := e.do(req{method: "POST", path: "/v1/vms", key: w.operator, body: vmBody(p.field, p.value)})
				require.Equal(t, http.StatusBadRequest, resp.status, "%s", resp.body)
				require.Equal(t, api.CodeInvalidArgument, resp.errCode(t))
				msg := resp.errMessage(t)
				require.Regexp(t, "^"+p.field+" ", msg)
				require.Contains(t, msg, p.want)
			}
			resp := e.do(req{method: "POST", path: planPath, key: w.operator, body: planBody(p.field, p.value)})
			require.Equal(t, http.StatusBadRequest, resp.status, "%s", resp.body)
			require.Equal(t, api.CodeInvalidArgument, resp.errCode(t))
			msg := resp.errMessage(t)
			require.Regexp(t, `^actions\[0\]\.params\.`+p.field+" ", msg)
			require.Contains(t, msg, p.want)
		})
	}
	require.Equal(t, before, e.snapshot(), "a refused spec changed the store")

	// The same limits too: one function checks both routes.
	for _, tc := range []struct{ field, want string }{{"vcpus", "vcpus must be 1 to 64, not 65"}, {"memory_mib", "memory_mib must be 64 to"}} {
		b := planBody("name", "web-1")
		b["actions"].([]any)[0].(map[string]any)["params"].(map[string]any)[tc.field] = 1 << 21
		if tc.field == "vcpus" {
			b["actions"].([]any)[0].(map[string]any)["params"].(map[string]any)[tc.field] = 65
		}
		resp := e.do(req{method: "POST", path: planPath, key: w.operator, body: b})
		require.Equal(t, http.StatusBadRequest, resp.status, "%s", resp.body)
		require.Contains(t, resp.errMessage(t), "actions[0].params."+tc.want)
	}
	// A misspelt params field is refused, not dropped.
	b := planBody("name", "web-1")
	b["actions"].([]any)[0].(map[string]any)["params"].(map[string]any)["diskimage"] = "/x"
	resp := e.do(req{method: "POST", path: planPath, key: w.operator, body: b})
	require.Equal(t, http.StatusBadRequest, resp.status, "%s", resp.body)
	require.Contains(t, resp.errMessage(t), "diskimage")
}

// TestRawPlanCanonicalMAC: a raw plan's MAC in upper case reaches the
// agent in the one form the VMM prints and accepts.
func TestRawPlanCanonicalMAC(t *testing.T) {
	t.Parallel()
	w := newPlanWorld(t)
	var got planBody
	w.e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites/" + w.site.String() + "/plans", key: w.operator, body: map[string]any{
		"host_id": w.ag.HostID, "actions": []any{map[string]any{"type": store.ActionMicroVMCreate, "vm_id": w.vm.String(), "params": map[string]any{
			"name": "vm-a", "vcpus": 1, "memory_mib": 256, "disk_image": "/var/lib/nkudo-agent/images/a.raw", "mac": "52:54:00:AB:CD:EF",
		}}},
	}}).json(t, &got)
	plan, err := w.e.store.GetPlan(context.Background(), w.tenant, got.ID)
	require.NoError(t, err)
	var params map[string]any
	require.NoError(t, json.Unmarshal(plan.Actions[0].Params, &params))
	require.Equal(t, "52:54:00:ab:cd:ef", params["mac"])
	require.Equal(t, w.vm.String(), params["id"])
}

// TestRawPlanOnDeletedVM: a raw plan acting on a deleted VM answers 409
// vm_deleted, as POST /v1/vms/{vm}/start does.
func TestRawPlanOnDeletedVM(t *testing.T) {
	t.Parallel()
	w := newPlanWorld(t)
	e := w.e
	tenant := w.tenant
	require.NoError(t, e.store.SetVMDesiredState(context.Background(), tenant, w.vm, store.VMDeleted, time.Now()))
	before := e.snapshot()
	for _, typ := range []string{store.ActionMicroVMStart, store.ActionMicroVMCreate, store.ActionMicroVMDelete} {
		resp := e.do(req{method: "POST", path: "/v1/sites/" + w.site.String() + "/plans", key: w.operator,
			body: map[string]any{"host_id": w.ag.HostID, "actions": []any{action(typ, w.vm)}}})
		require.Equal(t, http.StatusConflict, resp.status, "%s: %s", typ, resp.body)
		require.Equal(t, api.CodeVMDeleted, resp.errCode(t))
	}
	resp := e.do(req{method: "POST", path: "/v1/vms/" + w.vm.String() + "/start", key: w.operator})
	require.Equal(t, http.StatusConflict, resp.status, "%s", resp.body)
	require.Equal(t, api.CodeVMDeleted, resp.errCode(t))
	require.Equal(t, before, e.snapshot())
}
