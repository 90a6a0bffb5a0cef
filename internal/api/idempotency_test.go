package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/api"
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

// TestIdempotencyRace sends one creating request many times at once, with
// one Idempotency-Key, over several API keys of one tenant, round after
// round: the request runs once per key (one object), and every answer is
// that object or a 409 "in progress", never a second object.
func TestIdempotencyRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	f := e.seedFleet("alpha")
	admins := []string{f.admin}
	for range 3 {
		k, _ := e.createKey(f.tenant, store.RoleAdmin)
		admins = append(admins, k)
	}
	const rounds, racers = 30, 32
	path := e.srv.URL + "/v1/tenants/" + f.tenant.String() + "/api-keys"
	for round := range rounds {
		name := fmt.Sprintf("race-%d", round)
		ids := raceCreate(t, racers, func(i int) (*http.Request, error) {
			r, err := http.NewRequest(http.MethodPost, path, strings.NewReader(`{"name":"`+name+`","role":"viewer"}`))
			if err != nil {
				return nil, err
			}
			r.Header.Set("Authorization", "Bearer "+admins[i%len(admins)])
			r.Header.Set(api.HeaderIdempotencyKey, name)
			return r, nil
		}, e.cli)
		require.Len(t, ids, 1, "round %d: every 201 names one object", round)
		keys, _, err := e.store.ListAPIKeys(context.Background(), f.tenant, store.Page{Limit: 500})
		require.NoError(t, err)
		n := 0
		for _, k := range keys {
			if k.Name == name {
				n++
			}
		}
		require.Equal(t, 1, n, "round %d: one API key created", round)
	}
}

// raceCreate sends racers requests built by build at once, and returns the
// distinct ids of their 201 answers. Any answer but 201 or 409 "conflict"
// (still in progress) fails the test.
func raceCreate(t *testing.T, racers int, build func(i int) (*http.Request, error), cli *http.Client) map[string]int {
	t.Helper()
	var mu sync.Mutex
	ids := map[string]int{}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			<-start
			r, err := build(i)
			if err != nil {
				t.Error(err)
				return
			}
			resp, err := cli.Do(r)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var out struct {
				ID    string `json:"id"`
				Error struct{ Code string }
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Errorf("decoding answer %d: %v", resp.StatusCode, err)
				return
			}
			switch {
			case resp.StatusCode == http.StatusCreated && out.ID != "":
				mu.Lock()
				ids[out.ID]++
				mu.Unlock()
			case resp.StatusCode == http.StatusConflict && out.Error.Code == "conflict":
			default:
				t.Errorf("unexpected answer %d %+v", resp.StatusCode, out)
			}
		})
	}
	close(start)
	wg.Wait()
	return ids
}

// TestIdempotencyReservation: a key reserved by a request still running
// (here, one whose reservation is written straight to the store) makes a
// duplicate wait and then answer 409 with Retry-After, another body 422 at
// once; a reservation that lapsed (its replica died) is taken over.
func TestIdempotencyReservation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *api.Options) { o.IdempotencyWait = 50 * time.Millisecond })
	f := e.seedFleet("alpha")
	const route = "POST /v1/sites"
	body := `{"name":"lisbon"}`
	fp := func(b string) []byte {
		h := sha256.New()
		for _, part := range []string{"POST", "/v1/sites", b} {
			fmt.Fprintf(h, "%d:", len(part))
			h.Write([]byte(part))
		}
		return h.Sum(nil)
	}
	now := time.Now()
	reserve := func(key string, until time.Time) {
		_, won, err := e.store.ReserveIdempotency(context.Background(), store.IdempotencyRecord{
			TenantID: f.tenant, Route: route, Key: key, Fingerprint: fp(body),
			Holder: store.NewID(), CreatedAt: now.Add(-time.Hour), ReservedUntil: until,
		})
		require.NoError(t, err)
		require.True(t, won)
	}
	reserve("running", now.Add(time.Hour))
	reserve("lapsed", now.Add(-time.Minute))

	cases := []struct {
		name, key, body string
		status          int
		code            string
	}{
		{"duplicate of a running request", "running", body, http.StatusConflict, "conflict"},
		{"another body than the running request's", "running", `{"name":"porto"}`, http.StatusUnprocessableEntity, "idempotency_mismatch"},
		{"lapsed reservation", "lapsed", body, http.StatusCreated, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.do(req{method: "POST", path: "/v1/sites", key: f.operator, body: tc.body,
				header: map[string]string{api.HeaderIdempotencyKey: tc.key}})
			require.Equal(t, tc.status, resp.status, "body: %s", resp.body)
			if tc.code != "" {
				require.Equal(t, tc.code, resp.errCode(t))
			}
			if tc.status == http.StatusConflict {
				require.Equal(t, "1", resp.header.Get("Retry-After"))
			}
		})
	}
	rec, err := e.store.GetIdempotency(context.Background(), f.tenant, route, "lapsed")
	require.NoError(t, err)
	require.False(t, rec.Pending(), "the request that took the key over stored its answer")
	require.Equal(t, http.StatusCreated, rec.Status)
}
