package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/kubedoio/n-kudo/internal/api"
	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// database/sql's connection opener lives until the DB is closed;
		// keep-alive conns of the shared client idle until transport close.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

const testAdminKey = "test-admin-key-0123456789"

// env is one API on a fresh SQLite store behind a real HTTP server.
type env struct {
	t     testing.TB
	store *sqlite.Store
	api   *api.API
	srv   *httptest.Server
	cli   *http.Client
}

// newEnv starts an API with rate limits off unless tune sets them.
func newEnv(t testing.TB, tune func(*api.Options)) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "nkudo.db"))
	require.NoError(t, err)
	opts := api.Options{
		Store:    st,
		AdminKey: testAdminKey,
		RateLimit: api.RateLimitConfig{
			PerKey: rate.Inf, PerIP: rate.Inf, FailedAuthPerIP: rate.Inf, EnrollPerIP: rate.Inf,
		},
	}
	if tune != nil {
		tune(&opts)
	}
	a, err := api.New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(a.Handler())
	cli := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(func() {
		srv.Close()
		cli.CloseIdleConnections()
		require.NoError(t, st.Close())
	})
	return &env{t: t, store: st, api: a, srv: srv, cli: cli}
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, dst any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, dst), "body: %s", r.body)
}

// errCode returns the code of an error body, failing on any other shape.
func (r response) errCode(t testing.TB) string {
	t.Helper()
	var raw map[string]map[string]any
	require.NoError(t, json.Unmarshal(r.body, &raw), "body: %s", r.body)
	require.Len(t, raw, 1, "error body must only hold \"error\": %s", r.body)
	e, ok := raw["error"]
	require.True(t, ok, "body: %s", r.body)
	require.Len(t, e, 2, "error object must hold code and message: %s", r.body)
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	require.NotEmpty(t, code)
	require.NotEmpty(t, msg)
	return code
}

// req describes one request; body is marshalled unless it is a string or
// []byte, which are sent as is.
type req struct {
	method, path, key string
	body              any
	header            map[string]string
}

func (e *env) do(r req) response {
	e.t.Helper()
	var rd io.Reader
	switch b := r.body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(e.t, err)
		rd = bytes.NewReader(raw)
	}
	hr, err := http.NewRequestWithContext(context.Background(), r.method, e.srv.URL+r.path, rd)
	require.NoError(e.t, err)
	if r.key != "" {
		hr.Header.Set("Authorization", "Bearer "+r.key)
	}
	if rd != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := e.cli.Do(hr)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// must sends r and requires status want.
func (e *env) must(want int, r req) response {
	e.t.Helper()
	resp := e.do(r)
	require.Equal(e.t, want, resp.status, "%s %s: %s", r.method, r.path, resp.body)
	return resp
}

func (e *env) createTenant(name string) uuid.UUID {
	e.t.Helper()
	var out struct{ ID uuid.UUID }
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/tenants", key: testAdminKey, body: map[string]string{"name": name}}).json(e.t, &out)
	return out.ID
}

// createKey returns a new key of role in tenant, and its id.
func (e *env) createKey(tenant uuid.UUID, role string) (string, uuid.UUID) {
	e.t.Helper()
	var out struct {
		ID  uuid.UUID
		Key string
	}
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/tenants/" + tenant.String() + "/api-keys", key: testAdminKey,
		body: map[string]string{"name": role + "-key", "role": role}}).json(e.t, &out)
	return out.Key, out.ID
}

func (e *env) createSite(key, name string) uuid.UUID {
	e.t.Helper()
	var out struct{ ID uuid.UUID }
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites", key: key, body: map[string]any{"name": name}}).json(e.t, &out)
	return out.ID
}

// fleet is one tenant with one of everything, for isolation tests.
type fleet struct {
	tenant                  uuid.UUID
	admin, operator, viewer string
	adminKeyID              uuid.UUID
	site, host, agent, vm   uuid.UUID
	plan, execution         uuid.UUID
}

// seedFleet creates a tenant with keys through the API, and a host, agent,
// VM and plan through the store (their API routes belong to other parts).
func (e *env) seedFleet(name string) fleet {
	e.t.Helper()
	ctx := context.Background()
	f := fleet{tenant: e.createTenant(name)}
	f.admin, f.adminKeyID = e.createKey(f.tenant, store.RoleAdmin)
	f.operator, _ = e.createKey(f.tenant, store.RoleOperator)
	f.viewer, _ = e.createKey(f.tenant, store.RoleViewer)
	f.site = e.createSite(f.admin, name+"-site")

	var tok struct{ Token string }
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites/" + f.site.String() + "/enrollment-tokens", key: f.admin}).json(e.t, &tok)
	sum := sha256Sum(tok.Token)
	now := time.Now().UTC()
	agent, host, _, err := e.store.ConsumeEnrollment(ctx, store.Enrollment{
		TokenHash: sum, AgentID: store.NewID(), HostID: store.NewID(), Hostname: name + "-host",
		CertSerial: "01", CertExpiresAt: now.Add(24 * time.Hour), Now: now,
	})
	require.NoError(e.t, err)
	f.agent, f.host = agent.ID, host.ID

	vm := store.VM{
		ID: store.NewID(), TenantID: f.tenant, SiteID: f.site, HostID: f.host, Name: name + "-vm",
		DesiredState: store.VMRunning, ActualState: store.VMStopped, VCPUs: 2, MemoryMiB: 512,
		Spec: json.RawMessage(`{"disk_image":"img"}`), CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(e.t, e.store.CreateVM(ctx, vm))
	f.vm = vm.ID

	plan := store.Plan{
		ID: store.NewID(), TenantID: f.tenant, SiteID: f.site, HostID: f.host, AgentID: f.agent,
		Status: store.StatusPending, CreatedAt: now, UpdatedAt: now,
	}
	plan.Actions = []store.PlanAction{{
		ID: store.NewID(), PlanID: plan.ID, Seq: 0, Type: store.ActionMicroVMStart, VMID: vm.ID,
		Params: json.RawMessage(`{}`), Status: store.StatusPending, ExecutionID: store.NewID(), UpdatedAt: now,
	}}
	require.NoError(e.t, e.store.CreatePlan(ctx, plan))
	f.plan, f.execution = plan.ID, plan.Actions[0].ExecutionID
	return f
}

// snapshot captures the domain contents of the store (not the audit log,
// which records refused attempts by design).
func (e *env) snapshot() string {
	e.t.Helper()
	ctx := context.Background()
	all := store.Page{Limit: 10000}
	var b strings.Builder
	tenants, _, err := e.store.ListTenants(ctx, all)
	require.NoError(e.t, err)
	dump := func(v any) {
		raw, err := json.Marshal(v)
		require.NoError(e.t, err)
		b.Write(raw)
		b.WriteByte('\n')
	}
	dump(tenants)
	for _, t := range tenants {
		keys, _, err := e.store.ListAPIKeys(ctx, t.ID, all)
		require.NoError(e.t, err)
		for i := range keys {
			keys[i].LastUsedAt = nil // touched by every authenticated call
		}
		dump(keys)
		sites, _, err := e.store.ListSites(ctx, t.ID, all)
		require.NoError(e.t, err)
		dump(sites)
		agents, _, err := e.store.ListAgents(ctx, t.ID, all)
		require.NoError(e.t, err)
		dump(agents)
		hosts, _, err := e.store.ListHosts(ctx, t.ID, uuid.Nil, all)
		require.NoError(e.t, err)
		dump(hosts)
		vms, _, err := e.store.ListVMs(ctx, t.ID, store.VMFilter{IncludeDeleted: true}, all)
		require.NoError(e.t, err)
		dump(vms)
		plans, _, err := e.store.ListPlans(ctx, t.ID, store.PlanFilter{}, all)
		require.NoError(e.t, err)
		dump(plans)
	}
	return b.String()
}
