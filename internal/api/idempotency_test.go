package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
)

func TestIdempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	f := e.seedFleet("alpha")
	g := e.seedFleet("bravo")
	ctx := context.Background()
	idem := func(k string) map[string]string { return map[string]string{"Idempotency-Key": k} }

	first := e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites", key: f.operator, body: `{"name":"berlin"}`, header: idem("k1")})
	replay := e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites", key: f.operator, body: `{"name":"berlin"}`, header: idem("k1")})
	require.JSONEq(t, string(first.body), string(replay.body))
	require.Equal(t, "true", replay.header.Get("Idempotent-Replayed"))
	require.Empty(t, first.header.Get("Idempotent-Replayed"))
	sites, _, err := e.store.ListSites(ctx, f.tenant, store.Page{Limit: 100})
	require.NoError(t, err)
	require.Len(t, sites, 2, "seeded site + berlin, created once")

	// Another key of the same tenant shares the scope: replayed too.
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites", key: f.admin, body: `{"name":"berlin"}`, header: idem("k1")})

	// Same key, different body: 422, nothing created.
	resp := e.do(req{method: "POST", path: "/v1/sites", key: f.operator, body: `{"name":"paris"}`, header: idem("k1")})
	require.Equal(t, http.StatusUnprocessableEntity, resp.status)
	require.Equal(t, "idempotency_mismatch", resp.errCode(t))

	// Another tenant has its own scope: the same key creates there.
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites", key: g.operator, body: `{"name":"berlin"}`, header: idem("k1")})

	// Same key, same body, different target: 422.
	other := e.createSite(f.operator, "other")
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites/" + f.site.String() + "/enrollment-tokens", key: f.operator, body: `{}`, header: idem("t1")})
	resp = e.do(req{method: "POST", path: "/v1/sites/" + other.String() + "/enrollment-tokens", key: f.operator, body: `{}`, header: idem("t1")})
	require.Equal(t, http.StatusUnprocessableEntity, resp.status)
	require.Equal(t, "idempotency_mismatch", resp.errCode(t))

	// A failed request stores nothing: the same key can then succeed.
	resp = e.do(req{method: "POST", path: "/v1/sites", key: f.operator, body: `{"name":""}`, header: idem("k2")})
	require.Equal(t, http.StatusBadRequest, resp.status)
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites", key: f.operator, body: `{"name":"rome"}`, header: idem("k2")})

	// Secrets are never stored: a replayed key creation omits the key.
	path := "/v1/tenants/" + f.tenant.String() + "/api-keys"
	var created, replayed map[string]any
	e.must(http.StatusCreated, req{method: "POST", path: path, key: f.admin, body: `{"name":"ci","role":"viewer"}`, header: idem("a1")}).json(t, &created)
	e.must(http.StatusCreated, req{method: "POST", path: path, key: f.admin, body: `{"name":"ci","role":"viewer"}`, header: idem("a1")}).json(t, &replayed)
	require.NotEmpty(t, created["key"])
	require.NotContains(t, replayed, "key")
	require.Equal(t, created["id"], replayed["id"])
	rec, err := e.store.GetIdempotency(ctx, f.tenant, "POST /v1/tenants/:tenant/api-keys", "a1")
	require.NoError(t, err)
	require.NotContains(t, string(rec.Response), created["key"].(string))
	keys, _, err := e.store.ListAPIKeys(ctx, f.tenant, store.Page{Limit: 100})
	require.NoError(t, err)
	n := 0
	for _, k := range keys {
		if k.Name == "ci" {
			n++
		}
	}
	require.Equal(t, 1, n)

	// Admin-scope creates (tenants) replay too.
	var t1, t2 struct{ ID uuid.UUID }
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/tenants", key: testAdminKey, body: `{"name":"charlie"}`, header: idem("x")}).json(t, &t1)
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/tenants", key: testAdminKey, body: `{"name":"charlie"}`, header: idem("x")}).json(t, &t2)
	require.Equal(t, t1.ID, t2.ID)
}
