package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // the "sqlite" driver, to inspect the database file

	"github.com/kubedoio/n-kudo/internal/api"
	"github.com/kubedoio/n-kudo/internal/mesh"
	"github.com/kubedoio/n-kudo/internal/netbirdapi"
	"github.com/kubedoio/n-kudo/internal/netbirdapi/nbtest"
	"github.com/kubedoio/n-kudo/internal/store"
)

const testManagementURL = "https://netbird.example.test:443"

// netbirdEnv is a channel env whose API has the NetBird integration on,
// talking to a spec-validating stand-in.
type netbirdEnv struct {
	*channelEnv
	nb     *nbtest.Server
	client *netbirdapi.Client
	mesh   *mesh.Mesh
	dbPath string
	tenant uuid.UUID
	admin  string
	reg    *prometheus.Registry
}

func newNetBirdEnv(t *testing.T) *netbirdEnv {
	t.Helper()
	ne := &netbirdEnv{nb: nbtest.New(t)}
	var err error
	// No retries: a 5xx must surface at once, not after backoff sleeps.
	ne.client, err = netbirdapi.New(netbirdapi.Options{BaseURL: ne.nb.URL(), Token: nbtest.Token, MaxRetries: -1})
	require.NoError(t, err)
	ne.reg = prometheus.NewRegistry()
	ne.channelEnv = newChannelEnv(t, func(o *api.Options) {
		ne.mesh, err = mesh.New(mesh.Options{Client: ne.client, Store: o.Store, ManagementURL: testManagementURL, Registerer: ne.reg})
		require.NoError(t, err)
		o.NetBird = ne.mesh
	})
	ne.dbPath = ne.store.Path()
	ne.tenant = ne.createTenant("acme")
	ne.admin, _ = ne.createKey(ne.tenant, store.RoleAdmin)
	return ne
}

func (e *netbirdEnv) netbirdSite(name string, enabled bool, groups ...string) uuid.UUID {
	e.t.Helper()
	var out struct{ ID uuid.UUID }
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites", key: e.admin, body: map[string]any{
		"name": name, "netbird": map[string]any{"enabled": enabled, "groups": groups},
	}}).json(e.t, &out)
	return out.ID
}

// tokenRows counts the enrollment tokens in the database file.
func (e *netbirdEnv) tokenRows() int {
	e.t.Helper()
	db, err := sql.Open("sqlite", "file:"+e.dbPath+"?mode=ro")
	require.NoError(e.t, err)
	defer db.Close()
	var n int
	require.NoError(e.t, db.QueryRow(`SELECT count(*) FROM enrollment_tokens`).Scan(&n))
	return n
}

// auditResults maps audit actions to their results, for the tenant.
func (e *netbirdEnv) auditResults() map[string][]string {
	e.t.Helper()
	evs, _, err := e.store.ListAudit(context.Background(), e.tenant, store.Page{Limit: 500})
	require.NoError(e.t, err)
	out := map[string][]string{}
	for _, ev := range evs {
		out[ev.Action] = append(out[ev.Action], ev.Result)
	}
	return out
}

func TestNetBirdTokenMintsSealedKeyAndEnrollDeliversIt(t *testing.T) {
	t.Parallel()
	e := newNetBirdEnv(t)
	site := e.netbirdSite("edge-site", true, "edge", "site-a")

	tok := e.token(e.admin, site, 1)
	keys := e.nb.SetupKeys()
	require.Len(t, keys, 1)
	var minted nbtest.SetupKey
	for _, k := range keys {
		minted = k
	}
	require.Equal(t, []string{"grp-edge", "grp-site-a"}, minted.AutoGroups, "group names resolved to ids")
	require.Equal(t, 1, minted.UsageLimit)
	require.Contains(t, e.nb.Calls(), "POST /api/setup-keys")
	body := e.nb.Bodies("POST /api/setup-keys")[0]
	require.Equal(t, "one-off", body["type"])
	// The key expires with the token (15m by default) plus the join
	// grace, not after the day the document claims as a minimum.
	require.InDelta(t, (15*time.Minute + mesh.JoinGrace).Seconds(), body["expires_in"], 2)

	// The database holds the key id and sealed bytes, never the key.
	require.Equal(t, 1, e.tokenRows())
	requireNotInDB(t, e.dbPath, minted.Key)

	csr, _ := newCSR(t)
	var out struct {
		AgentID uuid.UUID `json:"agent_id"`
		NetBird *struct {
			SetupKey      string `json:"setup_key"`
			ManagementURL string `json:"management_url"`
		} `json:"netbird"`
	}
	enrolled := e.must(http.StatusCreated, req{method: "POST", path: "/v1/enroll",
		body: map[string]string{"token": tok, "csr": string(csr), "hostname": "edge-9"}})
	requireDocumented(t, "Enrollment", enrolled.body)
	enrolled.json(t, &out)
	require.NotNil(t, out.NetBird, "the answer carries the setup key")
	require.Equal(t, minted.Key, out.NetBird.SetupKey)
	require.Equal(t, testManagementURL, out.NetBird.ManagementURL)
	requireNotInDB(t, e.dbPath, minted.Key)
	require.Equal(t, []string{"ok"}, e.auditResults()["netbird.setup_key.mint"])
}

func TestNetBirdMultiUseTokenKeyServesEveryHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		uses     int
		wantType string
	}{
		{name: "one use", uses: 1, wantType: "one-off"},
		{name: "three uses", uses: 3, wantType: "reusable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newNetBirdEnv(t)
			site := e.netbirdSite("edge site", true, "edge")
			var tok struct {
				ID    uuid.UUID `json:"id"`
				Token string    `json:"token"`
			}
			e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites/" + site.String() + "/enrollment-tokens",
				key: e.admin, body: map[string]any{"max_uses": tc.uses}}).json(t, &tok)

			// The stand-in validated the request against the spec; this
			// is what it received.
			bodies := e.nb.Bodies("POST /api/setup-keys")
			require.Len(t, bodies, 1)
			require.InDelta(t, (15*time.Minute + mesh.JoinGrace).Seconds(), bodies[0]["expires_in"], 2)
			delete(bodies[0], "expires_in")
			require.Equal(t, map[string]any{
				"name": "nkudo-edge-site-" + tok.ID.String(), "type": tc.wantType,
				"auto_groups": []any{"grp-edge"}, "usage_limit": float64(tc.uses), "ephemeral": false,
				"allow_extra_dns_labels": false,
			}, bodies[0])
			keys := e.nb.SetupKeys()
			require.Len(t, keys, 1)
			var minted nbtest.SetupKey
			for _, k := range keys {
				minted = k
			}
			require.Equal(t, tc.uses, minted.UsageLimit)

			// Every host the token enrolls receives the key.
			for i := range tc.uses {
				csr, _ := newCSR(t)
				var out struct {
					NetBird *struct {
						SetupKey string `json:"setup_key"`
					} `json:"netbird"`
				}
				e.must(http.StatusCreated, req{method: "POST", path: "/v1/enroll", body: map[string]string{
					"token": tok.Token, "csr": string(csr), "hostname": "edge-" + strconv.Itoa(i)}}).json(t, &out)
				require.NotNil(t, out.NetBird, "host %d", i)
				require.Equal(t, minted.Key, out.NetBird.SetupKey, "host %d", i)
			}
			requireNotInDB(t, e.dbPath, minted.Key)
		})
	}
}

func TestNetBirdTokenWithoutNetBird(t *testing.T) {
	t.Parallel()
	e := newNetBirdEnv(t)
	site := e.netbirdSite("plain", false)
	tok := e.token(e.admin, site, 1)
	require.NotContains(t, e.nb.Calls(), "POST /api/setup-keys", "a site without NetBird mints nothing")
	csr, _ := newCSR(t)
	resp := e.must(http.StatusCreated, req{method: "POST", path: "/v1/enroll",
		body: map[string]string{"token": tok, "csr": string(csr), "hostname": "edge-1"}})
	require.NotContains(t, string(resp.body), `"netbird"`)
}

func TestNetBirdMintFailureCreatesNoToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		route string
		reply nbtest.Reply
	}{
		{"setup key 500", "POST /api/setup-keys", nbtest.Reply{Status: 500, Body: `{"message":"boom","code":500}`}},
		{"groups 503", "GET /api/groups", nbtest.Reply{Status: 503, Body: `{"message":"down","code":503}`}},
		{"token refused", "POST /api/setup-keys", nbtest.Reply{Status: 401, Body: `{"message":"token invalid","code":401}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newNetBirdEnv(t)
			site := e.netbirdSite("edge-site", true, "edge")
			e.nb.Queue(tc.route, tc.reply)
			resp := e.must(http.StatusBadGateway, req{method: "POST", path: "/v1/sites/" + site.String() + "/enrollment-tokens",
				key: e.admin, body: map[string]any{}})
			require.Equal(t, api.CodeNetBirdUnavailable, resp.errCode(t))
			requireDocumentedResponse(t, "/v1/sites/{site}/enrollment-tokens", http.MethodPost, http.StatusBadGateway, resp.body)
			require.Equal(t, 0, e.tokenRows(), "nothing half-created")
			audit := e.auditResults()
			require.Equal(t, []string{api.CodeNetBirdUnavailable}, audit["netbird.setup_key.mint"])
			require.Equal(t, []string{api.CodeNetBirdUnavailable}, audit["enrollment_token.create"])
		})
	}
}

// TestNetBirdSweepDeletesDoneKeys: once their tokens are done with (one
// expired unused, one used up and past the join grace) both keys are
// deleted from NetBird, not merely revoked, so they do not pile up and
// the site's group can be deleted: NetBird refuses to delete a group any
// setup key names (group.go).
func TestNetBirdSweepDeletesDoneKeys(t *testing.T) {
	t.Parallel()
	e := newNetBirdEnv(t)
	site := e.netbirdSite("edge-site", true, "edge")
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites/" + site.String() + "/enrollment-tokens",
		key: e.admin, body: map[string]any{"ttl": "1m"}})
	used := e.token(e.admin, site, 1)
	csr, _ := newCSR(t)
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/enroll",
		body: map[string]string{"token": used, "csr": string(csr), "hostname": "edge-2"}})
	require.Len(t, e.nb.SetupKeys(), 2)
	require.Equal(t, http.StatusBadRequest, e.deleteNetBirdGroup("grp-edge"), "the keys name the group")

	// A sweeper whose clock is past the tokens' expiry and grace, run by
	// its owner loop as the server runs it.
	sweeper, err := mesh.New(mesh.Options{Client: e.client, Store: e.store, SweepInterval: 10 * time.Millisecond,
		Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sweeper.Run(ctx) }()
	defer func() {
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	}()
	// The sweep deletes the keys on NetBird, then forgets them in the
	// store: wait for both, or the store is read between the two.
	require.Eventually(t, func() bool {
		// Eventually polls on its own goroutine: no require in here.
		left, err := e.store.TokensWithStaleSetupKeys(context.Background(), time.Now().Add(2*time.Hour), time.Now().Add(2*time.Hour), 10)
		return err == nil && len(e.nb.SetupKeys()) == 0 && len(left) == 0
	}, 10*time.Second, 10*time.Millisecond, "both keys are deleted and forgotten")
	require.Equal(t, http.StatusOK, e.deleteNetBirdGroup("grp-edge"), "no key names the group any more")
}

// deleteNetBirdGroup deletes a group in the stand-in as an operator
// would, returning NetBird's status.
func (e *netbirdEnv) deleteNetBirdGroup(id string) int {
	e.t.Helper()
	r, err := http.NewRequest(http.MethodDelete, e.nb.URL()+"/api/groups/"+id, nil)
	require.NoError(e.t, err)
	r.Close = true
	r.Header.Set("Authorization", "Token "+nbtest.Token)
	resp, err := http.DefaultClient.Do(r)
	require.NoError(e.t, err)
	require.NoError(e.t, resp.Body.Close())
	return resp.StatusCode
}

// TestNetBirdPartlyUsedTokenKeyKeptForJoin: a host enrolled with a
// multi-use token just before it expired still needs the token's setup key
// to join the mesh; the key admits more peers, so it is deleted, but only
// mesh.JoinGrace after the expiry.
func TestNetBirdPartlyUsedTokenKeyKeptForJoin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		afterExpiry time.Duration
		deleted     bool
	}{
		{"just expired", time.Minute, false},
		{"within the grace", mesh.JoinGrace - time.Minute, false},
		{"past the grace", mesh.JoinGrace + time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newNetBirdEnv(t)
			site := e.netbirdSite("edge-site", true, "edge")
			var tok struct {
				Token     string
				ExpiresAt time.Time `json:"expires_at"`
			}
			e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites/" + site.String() + "/enrollment-tokens",
				key: e.admin, body: map[string]any{"max_uses": 3, "ttl": "10m"}}).json(t, &tok)
			require.False(t, tok.ExpiresAt.IsZero())
			csr, _ := newCSR(t)
			e.must(http.StatusCreated, req{method: "POST", path: "/v1/enroll",
				body: map[string]string{"token": tok.Token, "csr": string(csr), "hostname": "edge-1"}})

			sweeper, err := mesh.New(mesh.Options{Client: e.client, Store: e.store,
				Now: func() time.Time { return tok.ExpiresAt.Add(tc.afterExpiry) }})
			require.NoError(t, err)
			n, err := sweeper.Sweep(context.Background())
			require.NoError(t, err)
			keys := e.nb.SetupKeys()
			if tc.deleted {
				require.Equal(t, 1, n)
				require.Empty(t, keys)
				return
			}
			require.Zero(t, n)
			require.Len(t, keys, 1, "kept within the grace: the host enrolled can still join")
			for _, k := range keys {
				require.Equal(t, 3, k.UsageLimit)
				require.False(t, k.Revoked)
				// The key itself expires with the token plus the grace.
				require.WithinDuration(t, tok.ExpiresAt.Add(mesh.JoinGrace), k.Expires, 3*time.Second)
			}
		})
	}
}

func TestNetBirdRevokeDeletesPeer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		hostname string
		break_   func(nb *nbtest.Server)
		result   string
		message  string
		peer     string // the host's peer in the cached list
		peerGone string
	}{
		{name: "by hostname", hostname: "edge-a", result: "ok", peer: "peer-a", peerGone: "peer-a"},
		{name: "no peer", hostname: "edge-zz", result: "no_peer"},
		{name: "netbird down", hostname: "edge-a", peer: "peer-a", result: api.CodeNetBirdUnavailable,
			break_: func(nb *nbtest.Server) {
				nb.Queue("GET /api/peers", nbtest.Reply{Status: 500, Body: `{"message":"boom","code":500}`})
			}},
		// NetBird keeps a peer a network router uses (412, peer.go
		// validatePeerDelete): that is no outage.
		{name: "peer in use", hostname: "edge-a", peer: "peer-a", result: "peer_in_use", message: "in use by a network router, an ingress port or a proxy",
			break_: func(nb *nbtest.Server) { nb.LinkPeer("peer-a", "network router") }},
		// A deleted token gets 404 everywhere (v0.60.0+): not "no peer".
		{name: "token deleted", hostname: "edge-a", peer: "peer-a", result: "token_rejected", message: "refuses the server's API token",
			break_: func(nb *nbtest.Server) { nb.ExpectToken("") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newNetBirdEnv(t)
			site := e.netbirdSite("edge-site", true, "edge")
			ag := e.enroll(e.admin, site, tc.hostname)

			// The host view shows the management side from the cache.
			_, err := e.mesh.RefreshPeers(context.Background())
			require.NoError(t, err)
			var host struct {
				NetBird map[string]any `json:"netbird"`
			}
			hostResp := e.must(http.StatusOK, req{method: "GET", path: "/v1/hosts/" + ag.HostID.String(), key: e.admin})
			requireDocumented(t, "Host", hostResp.body)
			hostResp.json(t, &host)
			if tc.peer != "" {
				require.Equal(t, map[string]any{"peer_id": tc.peer, "connected": true, "last_seen": "2026-01-02T03:04:05Z"},
					host.NetBird["management"])
			} else {
				require.NotContains(t, host.NetBird, "management")
			}

			if tc.break_ != nil {
				tc.break_(e.nb)
			}
			before := len(e.nb.PeerIDs())
			resp := e.must(http.StatusOK, req{method: "POST", path: "/v1/agents/" + ag.AgentID.String() + "/revoke", key: e.admin})
			requireDocumented(t, "RevokedAgent", resp.body)
			var out struct {
				Revoked bool
				NetBird struct{ Result, Message string }
			}
			resp.json(t, &out)
			require.True(t, out.Revoked)
			require.Equal(t, tc.result, out.NetBird.Result)
			require.Contains(t, out.NetBird.Message, tc.message)
			if tc.peerGone != "" {
				require.NotContains(t, e.nb.PeerIDs(), tc.peerGone)
				require.Len(t, e.nb.PeerIDs(), before-1)
			} else {
				require.Len(t, e.nb.PeerIDs(), before)
			}
			require.Equal(t, []string{tc.result}, e.auditResults()["netbird.peer.delete"])
			require.Equal(t, []string{"ok"}, e.auditResults()["agent.revoke"], "the revocation itself succeeds")
		})
	}
}

// TestNetBirdSiteGroupsRefuseAll: NetBird refuses the All group in a
// setup key's auto_groups (422, setupkey.go), so a site listing it would
// fail every token mint later; it is refused when saved.
func TestNetBirdSiteGroupsRefuseAll(t *testing.T) {
	t.Parallel()
	e := newNetBirdEnv(t)
	resp := e.must(http.StatusBadRequest, req{method: "POST", path: "/v1/sites", key: e.admin, body: map[string]any{
		"name": "s1", "netbird": map[string]any{"enabled": true, "groups": []string{"edge", "All"}},
	}})
	require.Contains(t, string(resp.body), `must not list \"All\"`)
	site := e.netbirdSite("s2", true, "edge")
	e.must(http.StatusBadRequest, req{method: "PATCH", path: "/v1/sites/" + site.String(), key: e.admin, body: map[string]any{
		"netbird": map[string]any{"groups": []string{"All"}},
	}})
	require.NotContains(t, e.nb.Calls(), "POST /api/setup-keys")
}

// TestNetBirdDeadTokenSurfaces: a deleted NetBird API token gets 404 on
// every route since NetBird v0.60.0; the server must say the credential is
// broken in /readyz, the metric and the site's NetBird state, rather than
// read the 404s as "gone".
func TestNetBirdDeadTokenSurfaces(t *testing.T) {
	t.Parallel()
	e := newNetBirdEnv(t)
	site := e.netbirdSite("edge-site", true, "edge")
	ready := func() map[string]any {
		var out map[string]any
		resp := e.must(http.StatusOK, req{method: "GET", path: "/readyz"})
		requireDocumented(t, "Readiness", resp.body)
		resp.json(t, &out)
		return out
	}
	siteState := func() (string, string) {
		var out struct {
			NetBird struct{ State, Detail string }
		}
		resp := e.must(http.StatusOK, req{method: "GET", path: "/v1/sites/" + site.String(), key: e.admin})
		requireDocumented(t, "Site", resp.body)
		resp.json(t, &out)
		return out.NetBird.State, out.NetBird.Detail
	}
	require.Equal(t, "unknown", ready()["netbird"].(map[string]any)["state"])
	require.Equal(t, -1.0, gaugeValue(t, e.reg, "nkudo_netbird_api_token_ok"))

	_, err := e.mesh.RefreshPeers(context.Background())
	require.NoError(t, err)
	require.Equal(t, "ok", ready()["netbird"].(map[string]any)["state"])
	require.Equal(t, 1.0, gaugeValue(t, e.reg, "nkudo_netbird_api_token_ok"))
	state, _ := siteState()
	require.Equal(t, "ok", state)

	e.nb.ExpectToken("") // the token is deleted in NetBird
	_, err = e.mesh.RefreshPeers(context.Background())
	require.ErrorIs(t, err, mesh.ErrTokenRejected)
	nb := ready()["netbird"].(map[string]any)
	require.Equal(t, "token_rejected", nb["state"])
	require.Contains(t, nb["detail"], "NETBIRD_API_TOKEN")
	require.Contains(t, nb["detail"], "404")
	require.Equal(t, 0.0, gaugeValue(t, e.reg, "nkudo_netbird_api_token_ok"))
	state, detail := siteState()
	require.Equal(t, "token_rejected", state)
	require.NotContains(t, detail, nbtest.Token)

	resp := e.must(http.StatusBadGateway, req{method: "POST", path: "/v1/sites/" + site.String() + "/enrollment-tokens",
		key: e.admin, body: map[string]any{}})
	require.Equal(t, api.CodeNetBirdUnavailable, resp.errCode(t))
	require.Contains(t, string(resp.body), "refuses the server's API token")
}

// TestNetBirdPeersHiddenFromToken: a token whose user lacks peers:read
// gets 200 with only its own peers (peer.go GetPeers), so enrolled hosts
// that report a NetBird connection never appear; the site says why.
func TestNetBirdPeersHiddenFromToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		deny     bool
		reported string // the host's NetBird report
		want     string
	}{
		{name: "peers visible", reported: `{"state":"connected","ip":"100.92.3.15"}`, want: "ok"},
		{name: "peers hidden", deny: true, reported: `{"state":"connected","ip":"100.92.3.15"}`, want: "peers_hidden"},
		{name: "host not joined yet", deny: true, reported: `{"state":"disconnected"}`, want: "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newNetBirdEnv(t)
			site := e.netbirdSite("edge-site", true, "edge")
			ag := e.enroll(e.admin, site, "edge-a")
			require.NoError(t, e.store.UpsertHostStates(context.Background(), []store.HostState{{
				HostID: ag.HostID, AgentID: ag.AgentID, TenantID: e.tenant, LastSeenAt: time.Now(), NetBird: json.RawMessage(tc.reported),
			}}))
			if tc.deny {
				e.nb.DenyPeerRead()
			}
			_, err := e.mesh.RefreshPeers(context.Background())
			require.NoError(t, err, "NetBird answers 200")
			var out struct {
				NetBird struct{ State, Detail string }
			}
			e.must(http.StatusOK, req{method: "GET", path: "/v1/sites/" + site.String(), key: e.admin}).json(t, &out)
			require.Equal(t, tc.want, out.NetBird.State)
			if tc.want == "peers_hidden" {
				require.Contains(t, out.NetBird.Detail, "lacks permission to read peers")
			}
		})
	}
}

// gaugeValue reads a gauge from the registry.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// requireNotInDB checks that secret appears in none of the SQLite files
// (database, WAL, shared memory).
func requireNotInDB(t *testing.T, dbPath, secret string) {
	t.Helper()
	require.NotEmpty(t, secret)
	matches, err := filepath.Glob(dbPath + "*")
	require.NoError(t, err)
	require.NotEmpty(t, matches)
	for _, p := range matches {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		require.False(t, bytes.Contains(data, []byte(secret)), "plaintext setup key found in %s", p)
		require.False(t, bytes.Contains(bytes.ToLower(data), []byte(strings.ToLower(secret))), "setup key (any case) in %s", p)
	}
}

// openAPIDoc is the served OpenAPI document, parsed.
func openAPIDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPIDocument())
	require.NoError(t, err)
	return doc
}

// requireDocumented checks a body against a component schema of the
// served OpenAPI document, so the document describes what is answered.
func requireDocumented(t *testing.T, schema string, body []byte) {
	t.Helper()
	ref := openAPIDoc(t).Components.Schemas[schema]
	require.NotNil(t, ref, "schema %s", schema)
	var v any
	require.NoError(t, json.Unmarshal(body, &v))
	require.NoError(t, ref.Value.VisitJSON(v), "%s: %s", schema, body)
}

// requireDocumentedResponse checks that the operation documents the
// status and that body matches its schema.
func requireDocumentedResponse(t *testing.T, path, method string, status int, body []byte) {
	t.Helper()
	item := openAPIDoc(t).Paths.Value(path)
	require.NotNil(t, item, path)
	op := item.GetOperation(method)
	require.NotNil(t, op, "%s %s", method, path)
	resp := op.Responses.Status(status)
	require.NotNil(t, resp, "%s %s documents no %d", method, path, status)
	mt := resp.Value.Content.Get("application/json")
	require.NotNil(t, mt)
	var v any
	require.NoError(t, json.Unmarshal(body, &v))
	require.NoError(t, mt.Schema.Value.VisitJSON(v), "%s", body)
}
