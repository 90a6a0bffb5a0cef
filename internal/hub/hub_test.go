package hub_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/pgtest"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Wrap(m))
}

// waitTimeout bounds every wait for something the hub does asynchronously.
// It is an upper bound only, sized for a loaded 2-core machine running the
// suite with -race: a passing test never waits it out.
const waitTimeout = time.Minute

// clock is a settable offset over the real clock, for the sweeper.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// env is one hub behind a real TLS listener with a real SQLite store.
type env struct {
	t      testing.TB
	st     store.Store
	auth   *pki.Authority
	pkiDir string
	hub    *hub.Hub
	srv    *httptest.Server
	clock  *clock
	// authClock is the CA's clock, moved to sign already-expired certs.
	authClock *clock
	tenant    uuid.UUID
	site      uuid.UUID
	token     string
	// stop cancels Run (also done at cleanup).
	stop context.CancelFunc
	// stopped is closed when Run has returned.
	stopped chan struct{}
}

// agent is an enrolled agent identity with its key and certificate.
type agent struct {
	id, host uuid.UUID
	key      crypto.Signer
	certPEM  []byte
	serial   string
}

func newEnv(t testing.TB, tweak func(*hub.Options)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	e := &env{t: t, clock: &clock{}, authClock: &clock{}, pkiDir: filepath.Join(dir, "pki")}
	auth, err := pki.LoadOrCreate(pki.Options{Dir: e.pkiDir, Now: e.authClock.Now})
	require.NoError(t, err)
	e.auth = auth
	st, err := sqlite.Open(ctx, filepath.Join(dir, "nkudo.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	e.st = st

	now := time.Now()
	e.tenant, e.site = store.NewID(), store.NewID()
	require.NoError(t, st.CreateTenant(ctx, store.Tenant{ID: e.tenant, Name: "t-" + e.tenant.String(), CreatedAt: now}))
	require.NoError(t, st.CreateSite(ctx, store.Site{ID: e.site, TenantID: e.tenant, Name: "edge", CreatedAt: now, UpdatedAt: now}))
	e.token = "tok-" + store.NewID().String()
	hash := sha256.Sum256([]byte(e.token))
	require.NoError(t, st.CreateEnrollmentToken(ctx, store.EnrollmentToken{
		ID: store.NewID(), TenantID: e.tenant, SiteID: e.site, Hash: hash[:],
		ExpiresAt: now.Add(time.Hour), MaxUses: 100000, CreatedAt: now,
	}))

	e.serve(tweak)
	return e
}

// replica is a second hub on e's store and CA, behind its own listener,
// as another server replica sharing the database.
func (e *env) replica(tweak func(*hub.Options)) *env {
	e.t.Helper()
	r := *e
	r.serve(tweak)
	return &r
}

// serve runs a hub on e's store behind a TLS listener until the test ends.
func (e *env) serve(tweak func(*hub.Options)) {
	t := e.t
	t.Helper()
	opts := hub.Options{
		Store:         e.st,
		Authority:     e.auth,
		Now:           e.clock.Now,
		FlushInterval: 20 * time.Millisecond,
		OfflineAfter:  time.Minute,
		SweepInterval: 20 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&opts)
	}
	e.hub = hub.New(opts)
	runCtx, stop := context.WithCancel(context.Background())
	e.stop = stop
	runDone := make(chan error, 1)
	e.stopped = make(chan struct{})
	go func() {
		err := e.hub.Run(runCtx)
		close(e.stopped)
		runDone <- err
	}()

	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.hub.ServeAgent))
	e.srv.TLS = e.auth.ServerTLSConfig()
	e.srv.StartTLS()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-runDone:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("hub.Run did not return after cancel")
		}
		e.srv.Close()
	})
}

// enroll creates an agent through the store, with a certificate from the
// environment's CA.
func (e *env) enroll() *agent {
	e.t.Helper()
	return e.enrollIn(e.tenant, e.site, e.token)
}

// enrollIn enrolls an agent with token, of tenant's site.
func (e *env) enrollIn(tenant, site uuid.UUID, token string) *agent {
	e.t.Helper()
	a := &agent{id: store.NewID(), host: store.NewID()}
	key, err := pki.GenerateKey()
	require.NoError(e.t, err)
	a.key = key
	id := pki.AgentIdentity{TenantID: tenant, SiteID: site, AgentID: a.id}
	csr, err := pki.CreateCSR(key, a.id.String())
	require.NoError(e.t, err)
	certPEM, serial, notAfter, err := e.auth.SignAgentCSR(csr, id, time.Hour)
	require.NoError(e.t, err)
	a.certPEM, a.serial = certPEM, serial
	hash := sha256.Sum256([]byte(token))
	_, _, _, err = e.st.ConsumeEnrollment(context.Background(), store.Enrollment{
		TokenHash: hash[:], AgentID: a.id, HostID: a.host, Hostname: "host-" + a.id.String(),
		CertSerial: serial, CertExpiresAt: notAfter, Now: time.Now(),
	})
	require.NoError(e.t, err)
	return a
}

func (e *env) tlsConfig(certPEM []byte, key crypto.Signer) *tls.Config {
	e.t.Helper()
	store := pki.NewCertStore(tls.Certificate{})
	if certPEM != nil {
		cert, err := pki.KeyPair(certPEM, key)
		require.NoError(e.t, err)
		store.Set(cert)
	}
	cfg, err := store.ClientTLSConfig(e.auth.CACertPEM())
	require.NoError(e.t, err)
	return cfg
}

func (e *env) url() string {
	return "wss" + strings.TrimPrefix(e.srv.URL, "https") + "/v1/agent/connect"
}

// dialResult is a dial outcome: a client, or the HTTP refusal.
type dialResult struct {
	c          *client
	status     int
	body       string
	retryAfter string
	err        error
}

func (e *env) dialWith(cfg *tls.Config, subprotocols []string) dialResult {
	e.t.Helper()
	return e.dialOn(&http.Transport{TLSClientConfig: cfg}, subprotocols)
}

// dialOn dials over tr (its TLS config, its source address).
func (e *env) dialOn(tr *http.Transport, subprotocols []string) dialResult {
	e.t.Helper()
	e.t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, e.url(), &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		Subprotocols: subprotocols,
	})
	if err != nil {
		r := dialResult{err: err}
		if resp != nil {
			r.status = resp.StatusCode
			r.retryAfter = resp.Header.Get("Retry-After")
			if resp.Body != nil {
				b, _ := io.ReadAll(resp.Body)
				r.body = string(b)
				_ = resp.Body.Close()
			}
		}
		return r
	}
	conn.SetReadLimit(agentproto.MaxFrameBytes)
	c := &client{t: e.t, conn: conn}
	e.t.Cleanup(func() { _ = conn.CloseNow() })
	return dialResult{c: c}
}

// dial connects an agent and fails the test if it is refused.
func (e *env) dial(a *agent) *client {
	e.t.Helper()
	r := e.dialWith(e.tlsConfig(a.certPEM, a.key), []string{agentproto.Subprotocol})
	require.NoError(e.t, r.err, "dial refused: %d %s", r.status, r.body)
	return r.c
}

// connect dials and completes hello / hello_ack.
func (e *env) connect(a *agent, vms ...agentproto.VMStatus) (*client, agentproto.HelloAck) {
	e.t.Helper()
	c := e.dial(a)
	c.send(agentproto.TypeHello, "", helloMsg(vms...))
	env := c.expect(agentproto.TypeHelloAck)
	ack, err := agentproto.DecodeData[agentproto.HelloAck](env)
	require.NoError(e.t, err)
	return c, ack
}

func helloMsg(vms ...agentproto.VMStatus) *agentproto.Hello {
	if vms == nil {
		vms = []agentproto.VMStatus{}
	}
	return &agentproto.Hello{
		AgentVersion:      "1.2.3",
		CapabilityVersion: agentproto.CapabilityVersion,
		Facts:             testFacts("edge-1"),
		VMs:               vms,
		NetBird:           agentproto.NetBirdStatus{State: agentproto.NetBirdConnected, PeersConnected: 1, PeersTotal: 2},
	}
}

func testFacts(hostname string) agentproto.HostFacts {
	return agentproto.HostFacts{
		Hostname: hostname, OS: "linux", Kernel: "6.8", Arch: "amd64", CPUCores: 4,
		MemoryTotalBytes: 8 << 30, Hypervisor: agentproto.Hypervisor{Kind: agentproto.HypervisorSim, Simulated: true},
		AgentVersion: "1.2.3",
	}
}

// client is a minimal agent speaking the wire protocol.
type client struct {
	t    testing.TB
	conn *websocket.Conn
	seq  uint64
}

func (c *client) send(typ, id string, msg agentproto.Message) {
	c.t.Helper()
	c.seq++
	frame, err := agentproto.Encode(typ, id, c.seq, 0, msg)
	require.NoError(c.t, err)
	c.sendRaw(frame)
}

func (c *client) sendRaw(frame []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(c.t, c.conn.Write(ctx, websocket.MessageText, frame))
}

// recv reads the next frame; the error is the connection's when it ended.
func (c *client) recv() (agentproto.Envelope, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, data, err := c.conn.Read(ctx)
	if err != nil {
		return agentproto.Envelope{}, err
	}
	return agentproto.Decode(data)
}

func (c *client) expect(typ string) agentproto.Envelope {
	c.t.Helper()
	env, err := c.recv()
	require.NoError(c.t, err)
	require.Equal(c.t, typ, env.Type, "frame: %s", env.Data)
	return env
}

// closed reads until the connection ends and returns its close status.
func (c *client) closed() websocket.StatusCode {
	c.t.Helper()
	for {
		_, err := c.recv()
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// roundTrip proves the session is alive and served: a result for an
// unknown action must come back as an error frame.
func (c *client) roundTrip() {
	c.t.Helper()
	id := "rt-" + uuid.NewString()[:8]
	c.send(agentproto.TypeActionResult, id, &agentproto.ActionResult{
		PlanID: uuid.New(), ActionID: uuid.New(), ExecutionID: uuid.New(),
		Status: agentproto.ResultSucceeded, At: time.Now(),
	})
	env := c.expect(agentproto.TypeError)
	require.Equal(c.t, id, env.ID)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last error: %v)", what, err)
		}
		<-time.After(5 * time.Millisecond)
	}
}

// createVM stores a VM on the agent's host.
func (e *env) createVM(a *agent, actual string) uuid.UUID {
	e.t.Helper()
	now := time.Now()
	id := store.NewID()
	require.NoError(e.t, e.st.CreateVM(context.Background(), store.VM{
		ID: id, TenantID: e.tenant, SiteID: e.site, HostID: a.host, Name: "vm-" + id.String(),
		DesiredState: store.VMRunning, ActualState: actual, VCPUs: 1, MemoryMiB: 256,
		Spec: json.RawMessage(`{"disk_image":"img"}`), CreatedAt: now, UpdatedAt: now,
	}))
	return id
}

// createPlan stores a one-action plan for the agent.
func (e *env) createPlan(a *agent, vm uuid.UUID, typ string) store.Plan {
	e.t.Helper()
	p := newPlan(e, a, vm, typ)
	require.NoError(e.t, e.st.CreatePlan(context.Background(), p))
	return p
}

// newPlan is a one-action plan for the agent, not stored yet.
func newPlan(e *env, a *agent, vm uuid.UUID, typ string) store.Plan {
	now := time.Now()
	p := store.Plan{
		ID: store.NewID(), TenantID: e.tenant, SiteID: e.site, HostID: a.host, AgentID: a.id,
		Status: store.StatusPending, CreatedAt: now, UpdatedAt: now,
	}
	p.Actions = []store.PlanAction{{
		ID: store.NewID(), PlanID: p.ID, Seq: 0, Type: typ, VMID: vm,
		Params: json.RawMessage(`{}`), Status: store.StatusPending, ExecutionID: store.NewID(), UpdatedAt: now,
	}}
	return p
}

func (e *env) plan(id uuid.UUID) store.Plan {
	e.t.Helper()
	p, err := e.st.GetPlan(context.Background(), e.tenant, id)
	require.NoError(e.t, err)
	return p
}

func decodePlan(t testing.TB, env agentproto.Envelope) agentproto.Plan {
	t.Helper()
	p, err := agentproto.DecodeData[agentproto.Plan](env)
	require.NoError(t, err)
	return p
}
