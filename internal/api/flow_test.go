package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/api"
	"github.com/kubedoio/n-kudo/internal/store"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	resp := e.must(http.StatusOK, req{method: "GET", path: "/healthz"})
	require.JSONEq(t, `{"status":"ok"}`, string(resp.body))
	resp = e.must(http.StatusOK, req{method: "GET", path: "/readyz"})
	require.JSONEq(t, `{"status":"ok"}`, string(resp.body))

	require.NoError(t, e.store.Close())
	resp = e.do(req{method: "GET", path: "/readyz"})
	require.Equal(t, http.StatusServiceUnavailable, resp.status)
	require.Equal(t, "unavailable", resp.errCode(t))
	e.must(http.StatusOK, req{method: "GET", path: "/healthz"})
}

func TestSiteLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tenant := e.createTenant("alpha")
	op, _ := e.createKey(tenant, store.RoleOperator)

	var site struct {
		ID          uuid.UUID
		Name        string
		Description string
		NetBird     struct {
			Enabled bool
			Groups  []string
		}
		CreatedAt time.Time `json:"created_at"`
		UpdatedAt time.Time `json:"updated_at"`
	}
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites", key: op,
		body: map[string]any{"name": "berlin", "description": "rack 4", "netbird": map[string]any{"enabled": true, "groups": []string{"edge"}}}}).json(t, &site)
	require.Equal(t, "berlin", site.Name)
	require.True(t, site.NetBird.Enabled)
	require.Equal(t, []string{"edge"}, site.NetBird.Groups)
	path := "/v1/sites/" + site.ID.String()

	e.must(http.StatusOK, req{method: "PATCH", path: path, key: op, body: map[string]any{"description": "rack 5", "netbird": map[string]any{"enabled": false}}}).json(t, &site)
	require.Equal(t, "berlin", site.Name, "absent fields are unchanged")
	require.Equal(t, "rack 5", site.Description)
	require.False(t, site.NetBird.Enabled)
	require.Equal(t, []string{"edge"}, site.NetBird.Groups)

	var tok struct {
		ID        uuid.UUID
		SiteID    uuid.UUID `json:"site_id"`
		Token     string
		ExpiresAt time.Time `json:"expires_at"`
		MaxUses   int       `json:"max_uses"`
	}
	before := time.Now()
	e.must(http.StatusCreated, req{method: "POST", path: path + "/enrollment-tokens", key: op, body: map[string]any{"ttl": "30m", "max_uses": 3}}).json(t, &tok)
	require.True(t, strings.HasPrefix(tok.Token, "nket_"))
	require.Len(t, tok.Token, len("nket_")+43)
	require.Equal(t, 3, tok.MaxUses)
	require.Equal(t, site.ID, tok.SiteID)
	require.WithinRange(t, tok.ExpiresAt, before.Add(30*time.Minute-time.Second), time.Now().Add(30*time.Minute+time.Second))

	// The token works for enrollment exactly as issued: its hash is stored.
	now := time.Now().UTC()
	_, _, stored, err := e.store.ConsumeEnrollment(context.Background(), store.Enrollment{
		TokenHash: sha256Sum(tok.Token), AgentID: store.NewID(), HostID: store.NewID(), Hostname: "h1",
		CertSerial: "02", CertExpiresAt: now.Add(time.Hour), Now: now,
	})
	require.NoError(t, err)
	require.Equal(t, tok.ID, stored.ID)

	// Default TTL and one use without a body.
	e.must(http.StatusCreated, req{method: "POST", path: path + "/enrollment-tokens", key: op}).json(t, &tok)
	require.Equal(t, 1, tok.MaxUses)
	require.WithinRange(t, tok.ExpiresAt, before.Add(api.DefaultEnrollmentTTL-time.Second), time.Now().Add(api.DefaultEnrollmentTTL+time.Second))

	other := e.createSite(op, "empty")
	e.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/sites/" + other.String(), key: op})
	e.must(http.StatusNotFound, req{method: "GET", path: "/v1/sites/" + other.String(), key: op})
}

func TestAgentRevokeAndViews(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var revoked []uuid.UUID
	e := newEnv(t, func(o *api.Options) {
		o.OnAgentRevoked = func(a store.Agent) {
			mu.Lock()
			revoked = append(revoked, a.ID)
			mu.Unlock()
		}
	})
	f := e.seedFleet("alpha")

	var host map[string]any
	e.must(http.StatusOK, req{method: "GET", path: "/v1/hosts/" + f.host.String(), key: f.viewer}).json(t, &host)
	for _, k := range []string{"id", "site_id", "hostname", "agent_id", "online", "last_seen_at", "facts", "netbird"} {
		require.Contains(t, host, k)
	}
	require.Equal(t, "alpha-host", host["hostname"])

	var vm map[string]any
	e.must(http.StatusOK, req{method: "GET", path: "/v1/vms/" + f.vm.String(), key: f.viewer}).json(t, &vm)
	for _, k := range []string{"id", "name", "site_id", "host_id", "desired_state", "actual_state", "vcpus", "memory_mib", "drift"} {
		require.Contains(t, vm, k)
	}
	require.Equal(t, true, vm["drift"], "desired running, actual stopped")

	var plan struct {
		ID      uuid.UUID
		SiteID  uuid.UUID `json:"site_id"`
		Status  string
		Actions []struct {
			ID          uuid.UUID
			Type        string
			VMID        *uuid.UUID `json:"vm_id"`
			Status      string
			ExecutionID uuid.UUID `json:"execution_id"`
		}
	}
	e.must(http.StatusOK, req{method: "GET", path: "/v1/plans/" + f.plan.String(), key: f.viewer}).json(t, &plan)
	require.Equal(t, f.site, plan.SiteID)
	require.Len(t, plan.Actions, 1)
	require.Equal(t, store.ActionMicroVMStart, plan.Actions[0].Type)
	require.Equal(t, f.vm, *plan.Actions[0].VMID)
	require.Equal(t, f.execution, plan.Actions[0].ExecutionID)

	var exec map[string]any
	e.must(http.StatusOK, req{method: "GET", path: "/v1/executions/" + f.execution.String(), key: f.viewer}).json(t, &exec)
	require.Equal(t, f.plan.String(), exec["plan_id"])

	var agent struct {
		ID      uuid.UUID
		Status  string
		Revoked bool
	}
	e.must(http.StatusOK, req{method: "POST", path: "/v1/agents/" + f.agent.String() + "/revoke", key: f.operator}).json(t, &agent)
	require.True(t, agent.Revoked)
	require.Equal(t, store.AgentRevoked, agent.Status)
	mu.Lock()
	require.Equal(t, []uuid.UUID{f.agent}, revoked)
	mu.Unlock()
	stored, err := e.store.GetAgent(context.Background(), f.agent)
	require.NoError(t, err)
	require.True(t, stored.Revoked)
}

func TestDrift(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	f := e.seedFleet("alpha")
	ctx := context.Background()
	cases := []struct {
		desired, actual string
		drift           bool
	}{
		{store.VMRunning, store.VMRunning, false},
		{store.VMRunning, store.VMStopped, true},
		{store.VMRunning, store.VMFailed, true},
		{store.VMRunning, store.VMCreating, false},
		{store.VMRunning, store.VMUnknown, false},
		{store.VMStopped, store.VMRunning, true},
		{store.VMStopped, store.VMStopped, false},
	}
	for i, tc := range cases {
		t.Run(tc.desired+"/"+tc.actual, func(t *testing.T) {
			now := time.Now().UTC()
			vm := store.VM{ID: store.NewID(), TenantID: f.tenant, SiteID: f.site, HostID: f.host, Name: fmt.Sprintf("d%d", i),
				DesiredState: tc.desired, ActualState: tc.actual, VCPUs: 1, MemoryMiB: 128, Spec: json.RawMessage(`{}`), CreatedAt: now, UpdatedAt: now}
			require.NoError(t, e.store.CreateVM(ctx, vm))
			var out struct{ Drift bool }
			e.must(http.StatusOK, req{method: "GET", path: "/v1/vms/" + vm.ID.String(), key: f.viewer}).json(t, &out)
			require.Equal(t, tc.drift, out.Drift)
		})
	}
}

// TestPagination walks 120 sites 50 at a time: every site once, in order.
func TestPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tenant := e.createTenant("alpha")
	key, _ := e.createKey(tenant, store.RoleOperator)
	want := make([]uuid.UUID, 0, 120)
	for i := range 120 {
		want = append(want, e.createSite(key, fmt.Sprintf("site-%03d", i)))
	}
	var got []uuid.UUID
	seen := map[uuid.UUID]bool{}
	cursor, pages := "", 0
	for {
		path := "/v1/sites?limit=50"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var page struct {
			Items      []struct{ ID uuid.UUID }
			NextCursor *string `json:"next_cursor"`
		}
		e.must(http.StatusOK, req{method: "GET", path: path, key: key}).json(t, &page)
		require.NotNil(t, page.NextCursor, "next_cursor is always present")
		pages++
		require.LessOrEqual(t, len(page.Items), 50)
		for _, it := range page.Items {
			require.False(t, seen[it.ID], "duplicate %s", it.ID)
			seen[it.ID] = true
			got = append(got, it.ID)
		}
		if *page.NextCursor == "" {
			break
		}
		cursor = *page.NextCursor
		require.Less(t, pages, 10, "pagination does not end")
	}
	require.Equal(t, 3, pages)
	require.Equal(t, want, got)

	// The default page is 50.
	var page struct{ Items []json.RawMessage }
	e.must(http.StatusOK, req{method: "GET", path: "/v1/sites", key: key}).json(t, &page)
	require.Len(t, page.Items, api.DefaultPageLimit)
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	cases := []struct {
		name, in string
		echoed   bool
	}{
		{"sane", "req-123_abc.def:1", true},
		{"none", "", false},
		{"injection", "bad id;<script>", false},
		{"too long", strings.Repeat("a", 200), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.in != "" {
				h["X-Request-ID"] = tc.in
			}
			resp := e.must(http.StatusOK, req{method: "GET", path: "/healthz", header: h})
			got := resp.header.Get("X-Request-ID")
			require.NotEmpty(t, got)
			if tc.echoed {
				require.Equal(t, tc.in, got)
			} else {
				require.NotEqual(t, tc.in, got)
			}
		})
	}
}

func TestPanicRecovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.api.Engine().GET("/v1/boom", func(*gin.Context) { panic("boom") })
	resp := e.do(req{method: "GET", path: "/v1/boom"})
	require.Equal(t, http.StatusInternalServerError, resp.status)
	require.Equal(t, "internal", resp.errCode(t))
	require.NotContains(t, string(resp.body), "boom")
	// The server still serves.
	e.must(http.StatusOK, req{method: "GET", path: "/healthz"})
}
