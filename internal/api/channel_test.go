package api_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/api"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
)

// channelEnv is an API with a real hub and PKI behind a real TLS 1.3
// listener, as nkudo-server serves it.
type channelEnv struct {
	*env
	authority *pki.Authority
	hub       *hub.Hub
}

func newChannelEnv(t *testing.T, tune func(*api.Options)) *channelEnv {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "nkudo.db"))
	require.NoError(t, err)
	authority, err := pki.LoadOrCreate(pki.Options{Dir: filepath.Join(dir, "pki")})
	require.NoError(t, err)
	h := hub.New(hub.Options{Store: st, Authority: authority, HeartbeatInterval: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan error, 1)
	go func() { hubDone <- h.Run(ctx) }()

	opts := api.Options{
		Store:     st,
		AdminKey:  testAdminKey,
		Authority: authority,
		Hub:       h,
		RateLimit: api.RateLimitConfig{
			PerKey: rate.Inf, PerIP: rate.Inf, FailedAuthPerIP: rate.Inf, EnrollPerIP: rate.Inf,
		},
	}
	if tune != nil {
		tune(&opts)
	}
	a, err := api.New(opts)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(a.Handler())
	srv.TLS = authority.ServerTLSConfig()
	srv.StartTLS()
	cli := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: authority.CAPool(), MinVersion: tls.VersionTLS13,
	}}}
	t.Cleanup(func() {
		a.CloseStreams()
		cancel()
		require.NoError(t, <-hubDone)
		srv.Close()
		cli.CloseIdleConnections()
		require.NoError(t, st.Close())
	})
	return &channelEnv{env: &env{t: t, store: st, api: a, srv: srv, cli: cli}, authority: authority, hub: h}
}

// token issues an enrollment token for site with the given uses.
func (e *channelEnv) token(key string, site uuid.UUID, uses int) string {
	e.t.Helper()
	var out struct{ Token string }
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites/" + site.String() + "/enrollment-tokens", key: key,
		body: map[string]any{"max_uses": uses}}).json(e.t, &out)
	return out.Token
}

func newCSR(t testing.TB) ([]byte, func([]byte) tls.Certificate) {
	t.Helper()
	key, err := pki.GenerateKey()
	require.NoError(t, err)
	csr, err := pki.CreateCSR(key, "edge")
	require.NoError(t, err)
	pair := func(certPEM []byte) tls.Certificate {
		c, err := pki.KeyPair(certPEM, key)
		require.NoError(t, err)
		return c
	}
	return csr, pair
}

type enrollAnswer struct {
	AgentID     uuid.UUID `json:"agent_id"`
	HostID      uuid.UUID `json:"host_id"`
	SiteID      uuid.UUID `json:"site_id"`
	TenantID    uuid.UUID `json:"tenant_id"`
	Certificate string    `json:"certificate"`
	CA          string    `json:"ca"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func TestEnroll(t *testing.T) {
	t.Parallel()
	e := newChannelEnv(t, nil)
	tenant := e.createTenant("acme")
	admin, _ := e.createKey(tenant, store.RoleAdmin)
	site := e.createSite(admin, "edge")
	goodCSR, pair := newCSR(t)

	otherKey, err := pki.GenerateKey()
	require.NoError(t, err)
	otherCSR, err := pki.CreateCSR(otherKey, "x")
	require.NoError(t, err)
	tampered := strings.Replace(string(otherCSR), "M", "N", 3)

	cases := []struct {
		name     string
		body     any
		status   int
		code     string
		consumes bool
	}{
		{"csr not PEM", map[string]string{"csr": "hello", "hostname": "edge-1"}, 400, api.CodeInvalidArgument, false},
		{"csr tampered", map[string]string{"csr": tampered, "hostname": "edge-1"}, 400, api.CodeInvalidArgument, false},
		{"hostname invalid", map[string]string{"csr": string(goodCSR), "hostname": "-bad_host"}, 400, api.CodeInvalidArgument, false},
		{"hostname too long", map[string]string{"csr": string(goodCSR), "hostname": strings.Repeat("a.", 127) + "ab"}, 400, api.CodeInvalidArgument, false},
		{"unknown field", map[string]string{"csr": string(goodCSR), "hostname": "edge-1", "role": "admin"}, 400, api.CodeInvalidJSON, false},
		{"oversized body", map[string]string{"csr": strings.Repeat("A", 64<<10), "hostname": "edge-1"}, 413, api.CodeBodyTooLarge, false},
		{"ok", map[string]string{"csr": string(goodCSR), "hostname": "edge-1.example.com"}, 201, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := e.token(admin, site, 1)
			body := tc.body.(map[string]string)
			body["token"] = tok
			resp := e.do(req{method: "POST", path: "/v1/enroll", body: body})
			require.Equal(t, tc.status, resp.status, "%s", resp.body)
			if tc.code != "" {
				require.Equal(t, tc.code, resp.errCode(t))
			}
			// The token is spent exactly when the enrollment succeeded.
			csr, _ := newCSR(t)
			again := e.do(req{method: "POST", path: "/v1/enroll", body: map[string]string{"token": tok, "csr": string(csr), "hostname": "edge-2"}})
			if tc.consumes {
				require.Equal(t, http.StatusUnauthorized, again.status, "%s", again.body)
				require.Equal(t, api.CodeTokenInvalid, again.errCode(t))
			} else {
				require.Equal(t, http.StatusCreated, again.status, "a refused request consumed the token: %s", again.body)
			}
			if resp.status != http.StatusCreated {
				return
			}
			var out enrollAnswer
			resp.json(t, &out)
			require.Equal(t, tenant, out.TenantID)
			require.Equal(t, site, out.SiteID)
			require.Equal(t, e.authority.CACertPEM(), []byte(out.CA))

			// The certificate chains to the CA, names the agent and is
			// the one the store records.
			cert := pair([]byte(out.Certificate))
			leaf, err := x509.ParseCertificate(cert.Certificate[0])
			require.NoError(t, err)
			_, err = leaf.Verify(x509.VerifyOptions{Roots: e.authority.CAPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			require.NoError(t, err)
			id, err := pki.IdentityFromCert(leaf)
			require.NoError(t, err)
			require.Equal(t, pki.AgentIdentity{TenantID: tenant, SiteID: site, AgentID: out.AgentID}, id)
			agent, err := e.store.GetAgent(context.Background(), out.AgentID)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("%x", leaf.SerialNumber), agent.CertSerial)
			require.Equal(t, out.HostID, agent.HostID)
			require.WithinDuration(t, leaf.NotAfter, agent.CertExpiresAt, time.Second)
			host, err := e.store.GetHost(context.Background(), tenant, out.HostID)
			require.NoError(t, err)
			require.Equal(t, "edge-1.example.com", host.Hostname)

			events, _, err := e.store.ListAudit(context.Background(), tenant, store.Page{Limit: 500})
			require.NoError(t, err)
			found := false
			for _, ev := range events {
				if ev.Action == "agent.enroll" && ev.Target == out.AgentID.String() {
					found = true
					require.True(t, strings.HasPrefix(ev.Actor, "token:"), ev.Actor)
					require.Equal(t, "ok", ev.Result)
				}
			}
			require.True(t, found, "no agent.enroll audit event")
		})
	}
}

func TestEnrollBadToken(t *testing.T) {
	t.Parallel()
	e := newChannelEnv(t, nil)
	tenant := e.createTenant("acme")
	admin, _ := e.createKey(tenant, store.RoleAdmin)
	site := e.createSite(admin, "edge")
	csr, _ := newCSR(t)

	expired := "nket_expired-token-for-the-test"
	sum := sha256.Sum256([]byte(expired))
	past := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	require.NoError(t, e.store.CreateEnrollmentToken(context.Background(), store.EnrollmentToken{
		ID: store.NewID(), TenantID: tenant, SiteID: site, Hash: sum[:], ExpiresAt: past, MaxUses: 1, CreatedAt: past.Add(-time.Minute),
	}))
	before := e.snapshot()
	for _, tok := range []string{"nket_unknown", expired} {
		resp := e.do(req{method: "POST", path: "/v1/enroll", body: map[string]string{"token": tok, "csr": string(csr), "hostname": "edge-1"}})
		require.Equal(t, http.StatusUnauthorized, resp.status, "%s", resp.body)
		require.Equal(t, api.CodeTokenInvalid, resp.errCode(t))
	}
	require.Equal(t, before, e.snapshot(), "a refused enrollment changed the store")
}

func TestEnrollConcurrentOneTokenOneWinner(t *testing.T) {
	t.Parallel()
	e := newChannelEnv(t, nil)
	tenant := e.createTenant("acme")
	admin, _ := e.createKey(tenant, store.RoleAdmin)
	tok := e.token(admin, e.createSite(admin, "edge"), 1)

	const n = 8
	statuses := make(chan int, n)
	start := make(chan struct{})
	for range n {
		csr, _ := newCSR(t)
		go func() {
			<-start
			r, err := http.NewRequestWithContext(context.Background(), "POST", e.srv.URL+"/v1/enroll",
				strings.NewReader(fmt.Sprintf(`{"token":%q,"csr":%q,"hostname":"edge"}`, tok, csr)))
			if err != nil {
				statuses <- -1
				return
			}
			resp, err := e.cli.Do(r)
			if err != nil {
				statuses <- -1
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	close(start)
	counts := map[int]int{}
	for range n {
		counts[<-statuses]++
	}
	require.Equal(t, map[int]int{http.StatusCreated: 1, http.StatusUnauthorized: n - 1}, counts)
}

func TestEnrollRateLimit(t *testing.T) {
	t.Parallel()
	e := newChannelEnv(t, func(o *api.Options) {
		o.RateLimit.EnrollPerIP = rate.Every(time.Hour)
		o.RateLimit.EnrollBurst = 2
	})
	for i := range 3 {
		resp := e.do(req{method: "POST", path: "/v1/enroll", body: `{}`})
		if i < 2 {
			require.Equal(t, http.StatusBadRequest, resp.status, "%s", resp.body)
			continue
		}
		require.Equal(t, http.StatusTooManyRequests, resp.status, "%s", resp.body)
		require.Equal(t, api.CodeRateLimited, resp.errCode(t))
		require.NotEmpty(t, resp.header.Get("Retry-After"))
	}
}

// enrolled is an agent enrolled through the API, with its TLS identity.
type enrolled struct {
	enrollAnswer
	cert tls.Certificate
}

func (e *channelEnv) enroll(key string, site uuid.UUID, hostname string) enrolled {
	e.t.Helper()
	csr, pair := newCSR(e.t)
	var out enrollAnswer
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/enroll",
		body: map[string]string{"token": e.token(key, site, 1), "csr": string(csr), "hostname": hostname}}).json(e.t, &out)
	return enrolled{enrollAnswer: out, cert: pair([]byte(out.Certificate))}
}

// wireAgent is a minimal agent speaking the protocol by hand.
type wireAgent struct {
	t    testing.TB
	conn *websocket.Conn
	seq  uint64
}

func (e *channelEnv) connect(ag enrolled) *wireAgent {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: e.authority.CAPool(), MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{ag.cert},
	}}
	conn, resp, err := websocket.Dial(ctx, strings.Replace(e.srv.URL, "https", "wss", 1)+"/v1/agent/connect",
		&websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}, Subprotocols: []string{agentproto.Subprotocol}})
	require.NoError(e.t, err)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	w := &wireAgent{t: e.t, conn: conn}
	e.t.Cleanup(func() { _ = conn.CloseNow(); tr.CloseIdleConnections() })
	w.send(&agentproto.Hello{
		AgentVersion: "test", CapabilityVersion: agentproto.CapabilityVersion,
		Facts: agentproto.HostFacts{Hostname: "edge", OS: "linux", Kernel: "6.8", Arch: "amd64", CPUCores: 2,
			MemoryTotalBytes: 1 << 30, Hypervisor: agentproto.Hypervisor{Kind: agentproto.HypervisorSim, Simulated: true}, AgentVersion: "test"},
		NetBird: agentproto.NetBirdStatus{State: agentproto.NetBirdDisabled},
	})
	env := w.next()
	require.Equal(e.t, agentproto.TypeHelloAck, env.Type)
	return w
}

func (w *wireAgent) send(m agentproto.Message) {
	w.t.Helper()
	w.seq++
	frame, err := agentproto.Encode(m.MessageType(), "", w.seq, 0, m)
	require.NoError(w.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(w.t, w.conn.Write(ctx, websocket.MessageText, frame))
}

// next returns the next frame that is not a log or result ack.
func (w *wireAgent) next() agentproto.Envelope {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, frame, err := w.conn.Read(ctx)
		require.NoError(w.t, err)
		env, err := agentproto.Decode(frame)
		require.NoError(w.t, err)
		if env.Type == agentproto.TypeLogAck || env.Type == agentproto.TypeResultAck {
			continue
		}
		return env
	}
}
