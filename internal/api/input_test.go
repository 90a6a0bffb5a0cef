package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/api"
)

// TestBadInput sends malformed, oversized, unauthenticated and invalid
// requests: each gets the right 4xx in the error shape and the store does
// not change.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *api.Options) { o.MaxBodyBytes = 4096 })
	f := e.seedFleet("alpha")
	before := e.snapshot()
	site := "/v1/sites/" + f.site.String()
	huge := `{"name":"` + strings.Repeat("x", 5000) + `"}`
	keys := "/v1/tenants/" + f.tenant.String() + "/api-keys"

	cases := []struct {
		name   string
		r      req
		status int
		code   string
	}{
		{"malformed json", req{method: "POST", path: "/v1/sites", key: f.admin, body: `{"name":`}, 400, "invalid_json"},
		{"not an object", req{method: "POST", path: "/v1/sites", key: f.admin, body: `[1,2]`}, 400, "invalid_json"},
		{"trailing data", req{method: "POST", path: "/v1/sites", key: f.admin, body: `{"name":"a"} {}`}, 400, "invalid_json"},
		{"wrong type", req{method: "POST", path: "/v1/sites", key: f.admin, body: `{"name":5}`}, 400, "invalid_json"},
		{"unknown field", req{method: "POST", path: "/v1/sites", key: f.admin, body: `{"name":"a","colour":"red"}`}, 400, "invalid_json"},
		{"unknown nested field", req{method: "PATCH", path: site, key: f.admin, body: `{"netbird":{"enable":true}}`}, 400, "invalid_json"},
		{"empty body", req{method: "POST", path: "/v1/sites", key: f.admin, body: ``}, 400, "invalid_json"},
		{"oversized body", req{method: "POST", path: "/v1/sites", key: f.admin, body: huge}, 413, "body_too_large"},
		{"oversized with idempotency key", req{method: "POST", path: "/v1/sites", key: f.admin, body: huge, header: map[string]string{"Idempotency-Key": "k1"}}, 413, "body_too_large"},
		{"oversized patch", req{method: "PATCH", path: site, key: f.admin, body: huge}, 413, "body_too_large"},
		{"bad site id", req{method: "GET", path: "/v1/sites/not-a-uuid", key: f.admin}, 400, "invalid_argument"},
		{"bad site id on delete", req{method: "DELETE", path: "/v1/sites/1234", key: f.admin}, 400, "invalid_argument"},
		{"bad host id", req{method: "GET", path: "/v1/hosts/xyz", key: f.admin}, 400, "invalid_argument"},
		{"bad agent id", req{method: "POST", path: "/v1/agents/xyz/revoke", key: f.admin}, 400, "invalid_argument"},
		{"bad tenant id", req{method: "GET", path: "/v1/tenants/xyz/api-keys", key: testAdminKey}, 400, "invalid_argument"},
		{"bad key id", req{method: "DELETE", path: keys + "/xyz", key: f.admin}, 400, "invalid_argument"},
		{"bad site_id filter", req{method: "GET", path: "/v1/hosts?site_id=zz", key: f.admin}, 400, "invalid_argument"},
		{"no auth", req{method: "POST", path: "/v1/sites", body: `{"name":"a"}`}, 401, "unauthenticated"},
		{"unknown key", req{method: "POST", path: "/v1/sites", key: "nk_nope", body: `{"name":"a"}`}, 401, "unauthenticated"},
		{"not a bearer", req{method: "GET", path: "/v1/sites", header: map[string]string{"Authorization": "Basic " + f.admin}}, 401, "unauthenticated"},
		{"wrong admin key", req{method: "GET", path: "/v1/tenants", key: testAdminKey + "x"}, 401, "unauthenticated"},
		{"empty name", req{method: "POST", path: "/v1/sites", key: f.admin, body: `{"name":""}`}, 400, "invalid_argument"},
		{"control chars in name", req{method: "POST", path: "/v1/sites", key: f.admin, body: `{"name":"a\u0007b"}`}, 400, "invalid_argument"},
		{"empty tenant name", req{method: "POST", path: "/v1/tenants", key: testAdminKey, body: `{"name":" "}`}, 400, "invalid_argument"},
		{"bad role", req{method: "POST", path: keys, key: f.admin, body: `{"name":"k","role":"root"}`}, 400, "invalid_argument"},
		{"ttl too short", req{method: "POST", path: site + "/enrollment-tokens", key: f.admin, body: `{"ttl":"30s"}`}, 400, "invalid_argument"},
		{"ttl too long", req{method: "POST", path: site + "/enrollment-tokens", key: f.admin, body: `{"ttl":"25h"}`}, 400, "invalid_argument"},
		{"ttl garbage", req{method: "POST", path: site + "/enrollment-tokens", key: f.admin, body: `{"ttl":"soon"}`}, 400, "invalid_argument"},
		{"max_uses zero", req{method: "POST", path: site + "/enrollment-tokens", key: f.admin, body: `{"max_uses":0}`}, 400, "invalid_argument"},
		{"max_uses too many", req{method: "POST", path: site + "/enrollment-tokens", key: f.admin, body: `{"max_uses":1001}`}, 400, "invalid_argument"},
		{"duplicate groups", req{method: "PATCH", path: site, key: f.admin, body: `{"netbird":{"groups":["a","a"]}}`}, 400, "invalid_argument"},
		{"limit zero", req{method: "GET", path: "/v1/sites?limit=0", key: f.admin}, 400, "invalid_argument"},
		{"limit too big", req{method: "GET", path: "/v1/sites?limit=501", key: f.admin}, 400, "invalid_argument"},
		{"limit not a number", req{method: "GET", path: "/v1/sites?limit=ten", key: f.admin}, 400, "invalid_argument"},
		{"cursor garbage", req{method: "GET", path: "/v1/sites?cursor=!!!", key: f.admin}, 400, "invalid_argument"},
		{"cursor wrong length", req{method: "GET", path: "/v1/sites?cursor=AAAA", key: f.admin}, 400, "invalid_argument"},
		{"bad plan status", req{method: "GET", path: "/v1/plans?status=done", key: f.admin}, 400, "invalid_argument"},
		{"admin key without tenant", req{method: "POST", path: "/v1/sites", key: testAdminKey, body: `{"name":"a"}`}, 400, "invalid_argument"},
		{"admin key with bad tenant", req{method: "GET", path: "/v1/sites", key: testAdminKey, header: map[string]string{"X-Nkudo-Tenant": "x"}}, 400, "invalid_argument"},
		{"admin key with unknown tenant", req{method: "GET", path: "/v1/sites?tenant=0190b5a0-0000-7000-8000-000000000000", key: testAdminKey}, 404, "not_found"},
		{"bad idempotency key", req{method: "POST", path: "/v1/sites", key: f.admin, body: `{"name":"a"}`, header: map[string]string{"Idempotency-Key": "has space"}}, 400, "invalid_argument"},
		{"duplicate site name", req{method: "POST", path: "/v1/sites", key: f.admin, body: `{"name":"alpha-site"}`}, 409, "conflict"},
		{"delete site with hosts", req{method: "DELETE", path: site, key: f.admin}, 409, "conflict"},
		{"unknown route", req{method: "GET", path: "/v1/nothing", key: f.admin}, 404, "not_found"},
		{"wrong method", req{method: "PUT", path: "/v1/sites", key: f.admin, body: `{}`}, 405, "method_not_allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.do(tc.r)
			require.Equal(t, tc.status, resp.status, "body: %s", resp.body)
			require.Equal(t, tc.code, resp.errCode(t))
			require.NotEmpty(t, resp.header.Get("X-Request-ID"))
			require.NotContains(t, string(resp.body), f.admin)
		})
	}
	require.Equal(t, before, e.snapshot(), "bad input changed the store")
}

func TestDeletedKeyStopsWorking(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	f := e.seedFleet("alpha")
	key, id := e.createKey(f.tenant, "operator")
	e.must(http.StatusOK, req{method: "GET", path: "/v1/sites", key: key})

	// Deleted by the tenant's own admin key, not the admin key.
	e.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/tenants/" + f.tenant.String() + "/api-keys/" + id.String(), key: f.admin})
	resp := e.do(req{method: "GET", path: "/v1/sites", key: key})
	require.Equal(t, http.StatusUnauthorized, resp.status)
	require.Equal(t, "unauthenticated", resp.errCode(t))

	resp = e.do(req{method: "DELETE", path: "/v1/tenants/" + f.tenant.String() + "/api-keys/" + id.String(), key: f.admin})
	require.Equal(t, http.StatusNotFound, resp.status)

	var list struct {
		Items []map[string]any
	}
	e.must(http.StatusOK, req{method: "GET", path: "/v1/tenants/" + f.tenant.String() + "/api-keys", key: f.admin}).json(t, &list)
	require.Len(t, list.Items, 3, "admin, operator and viewer keys remain")
	for _, k := range list.Items {
		require.NotContains(t, k, "key", "listing never shows a secret")
		require.NotContains(t, k, "hash")
		require.Len(t, k["prefix"], 8)
		require.True(t, strings.HasPrefix(k["prefix"].(string), "nk_"))
	}
}
