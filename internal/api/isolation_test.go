package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTenantIsolation tries every tenant-scoped route on tenant A's objects
// with tenant B's admin key: each answers 404 and leaks nothing, and the
// store is unchanged.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.seedFleet("alpha")
	b := e.seedFleet("bravo")
	before := e.snapshot()

	cases := []struct {
		name         string
		method, path string
		body         any
	}{
		{"get site", "GET", "/v1/sites/" + a.site.String(), nil},
		{"patch site", "PATCH", "/v1/sites/" + a.site.String(), map[string]string{"name": "stolen"}},
		{"delete site", "DELETE", "/v1/sites/" + a.site.String(), nil},
		{"enrollment token", "POST", "/v1/sites/" + a.site.String() + "/enrollment-tokens", map[string]string{"ttl": "30m"}},
		{"get host", "GET", "/v1/hosts/" + a.host.String(), nil},
		{"revoke agent", "POST", "/v1/agents/" + a.agent.String() + "/revoke", nil},
		{"get vm", "GET", "/v1/vms/" + a.vm.String(), nil},
		{"get plan", "GET", "/v1/plans/" + a.plan.String(), nil},
		{"get execution", "GET", "/v1/executions/" + a.execution.String(), nil},
		{"list api keys", "GET", "/v1/tenants/" + a.tenant.String() + "/api-keys", nil},
		{"create api key", "POST", "/v1/tenants/" + a.tenant.String() + "/api-keys", map[string]string{"name": "x", "role": "admin"}},
		{"delete api key", "DELETE", "/v1/tenants/" + a.tenant.String() + "/api-keys/" + a.adminKeyID.String(), nil},
	}
	secrets := []string{a.tenant.String(), a.site.String(), a.host.String(), a.agent.String(), a.vm.String(),
		a.plan.String(), a.execution.String(), a.adminKeyID.String(), "alpha"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.do(req{method: tc.method, path: tc.path, key: b.admin, body: tc.body})
			require.Equal(t, http.StatusNotFound, resp.status, "body: %s", resp.body)
			require.Equal(t, "not_found", resp.errCode(t))
			for _, s := range secrets {
				require.NotContains(t, string(resp.body), s)
			}
		})
	}
	require.Equal(t, before, e.snapshot(), "a cross-tenant request changed the store")

	lists := []string{"/v1/sites", "/v1/hosts", "/v1/agents", "/v1/vms", "/v1/plans"}
	for _, path := range lists {
		t.Run("list "+path, func(t *testing.T) {
			resp := e.must(http.StatusOK, req{method: "GET", path: path, key: b.admin})
			for _, s := range secrets {
				require.NotContains(t, string(resp.body), s)
			}
			var out struct{ Items []map[string]any }
			resp.json(t, &out)
			require.NotEmpty(t, out.Items, "tenant B sees its own %s", path)
		})
	}

	// B's audit log records B's own failed attempts on A's ids (B sent
	// them), but never A's own events.
	var audit struct {
		Items []struct{ Actor, Action, Target, Result string }
	}
	e.must(http.StatusOK, req{method: "GET", path: "/v1/audit-events", key: b.admin}).json(t, &audit)
	require.NotEmpty(t, audit.Items)
	for _, ev := range audit.Items {
		require.NotEqual(t, "key:"+a.adminKeyID.String(), ev.Actor)
		if ev.Target == a.site.String() || ev.Target == a.agent.String() {
			require.Equal(t, "not_found", ev.Result)
		}
	}

	// The admin key naming tenant B sees B's objects, not A's.
	resp := e.do(req{method: "GET", path: "/v1/sites/" + a.site.String(), key: testAdminKey,
		header: map[string]string{"X-Nkudo-Tenant": b.tenant.String()}})
	require.Equal(t, http.StatusNotFound, resp.status)
	resp = e.must(http.StatusOK, req{method: "GET", path: "/v1/sites/" + a.site.String() + "?tenant=" + a.tenant.String(), key: testAdminKey})
	require.True(t, strings.Contains(string(resp.body), a.site.String()))
}

// TestRoles checks that a key below the role a route needs gets 403 and
// changes nothing.
func TestRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	f := e.seedFleet("alpha")
	before := e.snapshot()
	site := "/v1/sites/" + f.site.String()
	keys := "/v1/tenants/" + f.tenant.String() + "/api-keys"
	cases := []struct {
		name         string
		key          string
		method, path string
		body         any
	}{
		{"viewer creates site", f.viewer, "POST", "/v1/sites", map[string]string{"name": "s2"}},
		{"viewer patches site", f.viewer, "PATCH", site, map[string]string{"name": "s2"}},
		{"viewer deletes site", f.viewer, "DELETE", site, nil},
		{"viewer creates token", f.viewer, "POST", site + "/enrollment-tokens", nil},
		{"viewer revokes agent", f.viewer, "POST", "/v1/agents/" + f.agent.String() + "/revoke", nil},
		{"viewer creates key", f.viewer, "POST", keys, map[string]string{"name": "k", "role": "admin"}},
		{"operator creates key", f.operator, "POST", keys, map[string]string{"name": "k", "role": "admin"}},
		{"operator lists keys", f.operator, "GET", keys, nil},
		{"operator deletes key", f.operator, "DELETE", keys + "/" + f.adminKeyID.String(), nil},
		{"operator reads audit", f.operator, "GET", "/v1/audit-events", nil},
		{"viewer reads audit", f.viewer, "GET", "/v1/audit-events", nil},
		{"tenant admin creates tenant", f.admin, "POST", "/v1/tenants", map[string]string{"name": "t2"}},
		{"tenant admin lists tenants", f.admin, "GET", "/v1/tenants", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.do(req{method: tc.method, path: tc.path, key: tc.key, body: tc.body})
			require.Equal(t, http.StatusForbidden, resp.status, "body: %s", resp.body)
			require.Equal(t, "forbidden", resp.errCode(t))
		})
	}
	require.Equal(t, before, e.snapshot())

	// Reads are open to viewers.
	for _, path := range []string{"/v1/sites", site, "/v1/hosts", "/v1/hosts/" + f.host.String(), "/v1/agents",
		"/v1/vms", "/v1/vms/" + f.vm.String(), "/v1/plans", "/v1/plans/" + f.plan.String(), "/v1/executions/" + f.execution.String()} {
		e.must(http.StatusOK, req{method: "GET", path: path, key: f.viewer})
	}
}
