package api_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/api"
	"github.com/kubedoio/n-kudo/internal/event"
	"github.com/kubedoio/n-kudo/internal/store"
)

// The hostile-request suite: every route that takes a body, every kind of
// body that is not the object it expects, from every role of the tenant
// and from another tenant, with and without an Idempotency-Key. See
// docs/security.md for what else is defended and where it is tested
// (isolation_test.go, input_test.go, ratelimit_test.go, idempotency_test.go,
// internal/hub/refusal_test.go).

// hostileBodies are bodies no route accepts: JSON values that are not
// objects (null included: it decodes into a struct as "no fields"),
// malformed JSON, unknown fields and trailing data.
var hostileBodies = []struct{ name, body string }{
	{"null", `null`},
	{"array", `[]`},
	{"array of object", `[{"name":"x"}]`},
	{"string", `"x"`},
	{"number", `42`},
	{"bool", `true`},
	{"truncated", `{"name":`},
	{"unknown field", `{"no_such_field":1}`},
	{"trailing object", `{} {}`},
	{"trailing garbage", `{}]`},
}

// caller is who sends a hostile request.
type caller int

const (
	serverAdmin caller = iota
	tenantAdmin
	tenantOperator
	tenantViewer
	otherTenantAdmin
	anonymous
)

func (c caller) String() string {
	return [...]string{"server admin", "tenant admin", "operator", "viewer", "other tenant's admin", "anonymous"}[c]
}

// bodyRoute is a route that takes a body. allowed callers get 400
// invalid_json for a hostile body; refused ones get refusedStatus (the
// role check comes before the body is read); another tenant gets 400 or
// 404, never its data.
type bodyRoute struct {
	method, path string
	allowed      []caller
	idempotent   bool
}

func TestHostileBodies(t *testing.T) {
	t.Parallel()
	e := newChannelEnv(t, nil)
	a := e.seedFleet("alpha")
	b := e.seedFleet("bravo")
	before := e.snapshot()
	audited := auditIDs(t, e.env, a, b)
	site, vm, agent := a.site.String(), a.vm.String(), a.agent.String()
	operatorUp := []caller{tenantAdmin, tenantOperator}

	routes := []bodyRoute{
		{"POST", "/v1/tenants", []caller{serverAdmin}, true},
		{"POST", "/v1/tenants/" + a.tenant.String() + "/api-keys", []caller{serverAdmin, tenantAdmin}, true},
		{"POST", "/v1/sites", operatorUp, true},
		{"PATCH", "/v1/sites/" + site, operatorUp, false},
		{"POST", "/v1/sites/" + site + "/enrollment-tokens", operatorUp, true},
		{"POST", "/v1/sites/" + site + "/plans", operatorUp, true},
		{"POST", "/v1/agents/" + agent + "/revoke", operatorUp, false},
		{"POST", "/v1/vms", operatorUp, true},
		{"POST", "/v1/vms/" + vm + "/start", operatorUp, true},
		{"POST", "/v1/vms/" + vm + "/stop", operatorUp, true},
		{"POST", "/v1/vms/" + vm + "/reboot", operatorUp, true},
		{"DELETE", "/v1/vms/" + vm, operatorUp, false},
		{"POST", "/v1/enroll", []caller{anonymous}, false},
	}
	keyOf := map[caller]string{serverAdmin: testAdminKey, tenantAdmin: a.admin, tenantOperator: a.operator,
		tenantViewer: a.viewer, otherTenantAdmin: b.admin}
	secrets := []string{a.tenant.String(), site, vm, agent, a.host.String(), "alpha"}
	var usedKeys []string

	for _, rt := range routes {
		var callers []caller
		switch rt.path {
		case "/v1/enroll":
			callers = []caller{anonymous}
		case "/v1/tenants":
			callers = []caller{serverAdmin, tenantAdmin}
		default:
			callers = []caller{tenantAdmin, tenantOperator, tenantViewer, otherTenantAdmin}
			if slices.Contains(rt.allowed, serverAdmin) {
				callers = append(callers, serverAdmin)
			}
		}
		for _, who := range callers {
			for _, hb := range hostileBodies {
				for _, withKey := range []bool{false, true} {
					if withKey && !rt.idempotent {
						continue
					}
					name := fmt.Sprintf("%s %s/%s/%s/key=%t", rt.method, rt.path, who, hb.name, withKey)
					r := req{method: rt.method, path: rt.path, key: keyOf[who], body: hb.body}
					if withKey {
						k := fmt.Sprintf("hostile-%d", len(usedKeys))
						usedKeys = append(usedKeys, k)
						r.header = map[string]string{api.HeaderIdempotencyKey: k}
					}
					resp := e.do(r)
					switch {
					case slices.Contains(rt.allowed, who):
						require.Equal(t, http.StatusBadRequest, resp.status, "%s: %s", name, resp.body)
						require.Equal(t, "invalid_json", resp.errCode(t), name)
					case who == otherTenantAdmin:
						require.Contains(t, []int{http.StatusBadRequest, http.StatusNotFound}, resp.status, "%s: %s", name, resp.body)
						for _, s := range secrets {
							require.NotContains(t, string(resp.body), s, name)
						}
					default:
						require.Equal(t, http.StatusForbidden, resp.status, "%s: %s", name, resp.body)
						require.Equal(t, "forbidden", resp.errCode(t), name)
					}
				}
			}
		}
	}

	require.Equal(t, before, e.snapshot(), "a hostile body changed the store")
	// Refused mutations are audited with their error code, never as ok.
	for _, ev := range auditEvents(t, e.env, a, b) {
		if !audited[ev.ID.String()] {
			require.NotEqual(t, "ok", ev.Result, "%s %s by %s", ev.Action, ev.Target, ev.Actor)
		}
	}
	// A refused request releases its Idempotency-Key.
	for _, k := range usedKeys {
		for _, ten := range []store.Tenant{{ID: a.tenant}, {}} {
			for _, route := range []string{"POST /v1/sites", "POST /v1/vms", "POST /v1/tenants"} {
				_, err := e.store.GetIdempotency(context.Background(), ten.ID, route, k)
				require.ErrorIs(t, err, store.ErrNotFound, "key %s left behind on %s", k, route)
			}
		}
	}
}

// auditEvents lists the audit events of the fleets' tenants and of the
// admin scope.
func auditEvents(t *testing.T, e *env, fleets ...fleet) []store.AuditEvent {
	t.Helper()
	var out []store.AuditEvent
	tenants := []uuid.UUID{uuid.Nil}
	for _, f := range fleets {
		tenants = append(tenants, f.tenant)
	}
	for _, ten := range tenants {
		events, _, err := e.store.ListAudit(context.Background(), ten, store.Page{Limit: 10000})
		require.NoError(t, err)
		out = append(out, events...)
	}
	return out
}

func auditIDs(t *testing.T, e *env, fleets ...fleet) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, ev := range auditEvents(t, e, fleets...) {
		ids[ev.ID.String()] = true
	}
	return ids
}

// TestRevokeBody: the optional body of a revocation is held to the rules
// of every body. Malformed ones answer 400 and revoke nothing; an empty
// body, {} and {"reason"} revoke.
func TestRevokeBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	f := e.seedFleet("alpha")
	path := "/v1/agents/" + f.agent.String() + "/revoke"
	revoked := func() bool {
		g, err := e.store.GetAgent(context.Background(), f.agent)
		require.NoError(t, err)
		return g.Revoked
	}

	refused := []struct{ name, body string }{
		{"invalid json", `{"reason":`},
		{"array", `["now"]`},
		{"null", `null`},
		{"unknown field", `{"reason":"x","force":true}`},
		{"reason of the wrong type", `{"reason":5}`},
		{"control character in reason", `{"reason":"a\u001b[2Jb"}`},
		{"reason too long", `{"reason":"` + strings.Repeat("r", 1001) + `"}`},
	}
	for _, tc := range refused {
		resp := e.do(req{method: "POST", path: path, key: f.operator, body: tc.body})
		require.Equal(t, http.StatusBadRequest, resp.status, "%s: %s", tc.name, resp.body)
		require.False(t, revoked(), "%s revoked the agent", tc.name)
	}

	for _, body := range []string{``, `{}`, `{"reason":"decommissioned rack 4"}`} {
		var out struct{ Revoked bool }
		e.must(http.StatusOK, req{method: "POST", path: path, key: f.operator, body: body}).json(t, &out)
		require.True(t, out.Revoked, "body %q", body)
		require.True(t, revoked())
	}
}

// TestSitePatchNeedsObject: PATCH with a body that is JSON but no object
// answers 400 and records no successful update.
func TestSitePatchNeedsObject(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	f := e.seedFleet("alpha")
	before := e.snapshot()
	for _, body := range []string{`null`, `[]`, `"name"`} {
		resp := e.do(req{method: "PATCH", path: "/v1/sites/" + f.site.String(), key: f.admin, body: body})
		require.Equal(t, http.StatusBadRequest, resp.status, "body %s: %s", body, resp.body)
		require.Equal(t, "invalid_json", resp.errCode(t))
	}
	require.Equal(t, before, e.snapshot())
	events, _, err := e.store.ListAudit(context.Background(), f.tenant, store.Page{Limit: 1000})
	require.NoError(t, err)
	for _, ev := range events {
		if ev.Action == "site.update" {
			require.Equal(t, "invalid_json", ev.Result)
		}
	}
}

// TestSecurityHeaders: every /v1 answer, success or error, carries
// Cache-Control: no-store (some carry a secret shown once), and every
// answer over HTTPS carries Strict-Transport-Security.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := newChannelEnv(t, func(o *api.Options) { o.Events = event.NewBroker(event.Options{}) })
	f := e.seedFleet("alpha")
	keys := "/v1/tenants/" + f.tenant.String() + "/api-keys"
	cases := []struct {
		name   string
		r      req
		status int
	}{
		{"new API key (secret)", req{method: "POST", path: keys, key: f.admin, body: `{"name":"ci","role":"viewer"}`}, http.StatusCreated},
		{"new enrollment token (secret)", req{method: "POST", path: "/v1/sites/" + f.site.String() + "/enrollment-tokens", key: f.admin}, http.StatusCreated},
		{"list", req{method: "GET", path: "/v1/sites", key: f.viewer}, http.StatusOK},
		{"openapi", req{method: "GET", path: "/v1/openapi.json"}, http.StatusOK},
		{"unauthenticated", req{method: "GET", path: "/v1/sites"}, http.StatusUnauthorized},
		{"forbidden", req{method: "POST", path: "/v1/sites", key: f.viewer, body: `{"name":"x"}`}, http.StatusForbidden},
		{"bad body", req{method: "POST", path: "/v1/sites", key: f.admin, body: `null`}, http.StatusBadRequest},
		{"no route", req{method: "GET", path: "/v1/nothing", key: f.admin}, http.StatusNotFound},
		{"wrong method", req{method: "PUT", path: "/v1/sites", key: f.admin}, http.StatusMethodNotAllowed},
		{"bad enrollment", req{method: "POST", path: "/v1/enroll", body: `{}`}, http.StatusBadRequest},
		{"agent channel without certificate", req{method: "GET", path: "/v1/agent/connect"}, http.StatusUnauthorized},
		{"liveness", req{method: "GET", path: "/healthz"}, http.StatusOK},
	}
	for _, tc := range cases {
		resp := e.do(tc.r)
		require.Equal(t, tc.status, resp.status, "%s: %s", tc.name, resp.body)
		require.Equal(t, "max-age=31536000", resp.header.Get("Strict-Transport-Security"), tc.name)
		if strings.HasPrefix(tc.r.path, "/v1/") {
			require.Equal(t, "no-store", resp.header.Get("Cache-Control"), tc.name)
		}
	}

	// A live stream's answer too.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/v1/events", nil)
	require.NoError(t, err)
	r.Header.Set("Authorization", "Bearer "+f.viewer)
	resp, err := e.cli.Do(r)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	require.Equal(t, "max-age=31536000", resp.Header.Get("Strict-Transport-Security"))
}

// TestSlowBodyCut trickles a request body over real TLS, one byte every
// 20 ms, without credentials (enrollment) and with them: the server cuts
// each at the body read timeout with 408 and counts it, instead of keeping
// the connection and its goroutine for as long as the client likes.
func TestSlowBodyCut(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	e := newChannelEnv(t, func(o *api.Options) {
		o.BodyReadTimeout = 300 * time.Millisecond
		o.Registerer = reg
	})
	f := e.seedFleet("alpha")
	cases := []struct {
		name, path string
		header     map[string]string
	}{
		{"enrollment, no credentials", "/v1/enroll", nil},
		{"site creation", "/v1/sites", map[string]string{"Authorization": "Bearer " + f.admin}},
		{"site creation with Idempotency-Key", "/v1/sites", map[string]string{"Authorization": "Bearer " + f.admin, api.HeaderIdempotencyKey: "slow"}},
	}
	for i, tc := range cases {
		status, body := trickle(t, e, tc.path, tc.header)
		require.Equal(t, http.StatusRequestTimeout, status, "%s: %s", tc.name, body)
		var out struct{ Error struct{ Code string } }
		require.NoError(t, json.Unmarshal(body, &out), tc.name)
		require.Equal(t, "request_timeout", out.Error.Code, tc.name)
		require.Equal(t, float64(i+1), counterValue(t, reg, "nkudo_http_body_read_timeouts_total"), tc.name)
	}
}

// trickle sends a POST whose declared body never fully arrives, one byte
// every 20 ms for at most a minute, and returns the answer.
func trickle(t *testing.T, e *channelEnv, path string, header map[string]string) (int, []byte) {
	t.Helper()
	addr := strings.TrimPrefix(e.srv.URL, "https://")
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: e.authority.CAPool(), MinVersion: tls.VersionTLS13, ServerName: "127.0.0.1"})
	require.NoError(t, err)
	defer conn.Close()
	var hdr strings.Builder
	fmt.Fprintf(&hdr, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n", path, addr)
	for k, v := range header {
		fmt.Fprintf(&hdr, "%s: %s\r\n", k, v)
	}
	hdr.WriteString("\r\n{")
	_, err = io.WriteString(conn, hdr.String())
	require.NoError(t, err)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		giveUp := time.After(time.Minute)
		for {
			select {
			case <-stop:
				return
			case <-giveUp:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	defer func() {
		close(stop)
		<-done
	}()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(2*time.Minute)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "the server never answered the trickled body")
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range families {
		if mf.GetName() == name {
			require.Len(t, mf.GetMetric(), 1)
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
