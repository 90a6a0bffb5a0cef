package agent_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agent"
	"github.com/kubedoio/n-kudo/internal/agent/hostfacts"
	"github.com/kubedoio/n-kudo/internal/agent/identity"
	"github.com/kubedoio/n-kudo/internal/agent/imagedir"
	"github.com/kubedoio/n-kudo/internal/backoff"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/hypervisor/sim"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
	"github.com/kubedoio/n-kudo/internal/store/storetest"
)

// env is a real server side: a pki.Authority, a SQLite store and the hub
// serving the agent channel over TLS on loopback.
type env struct {
	t      *testing.T
	auth   *pki.Authority
	st     store.Store
	hub    *hub.Hub
	srv    *httptest.Server
	tenant uuid.UUID
	site   uuid.UUID
	token  string
}

// waitTimeout bounds every wait for something the agent and the hub do
// asynchronously. It is an upper bound only, sized for a loaded 2-core
// machine running the suite with -race: a passing test never waits it out.
const waitTimeout = time.Minute

// newEnv starts the server side; tweaks adjust the hub's options (a test
// may wrap the store, say).
func newEnv(t *testing.T, tweaks ...func(*hub.Options)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	auth, err := pki.LoadOrCreate(pki.Options{Dir: filepath.Join(dir, "pki")})
	require.NoError(t, err)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "nkudo.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	e := &env{t: t, auth: auth, st: st, tenant: store.NewID(), site: store.NewID()}
	now := time.Now()
	require.NoError(t, st.CreateTenant(ctx, store.Tenant{ID: e.tenant, Name: "t-" + e.tenant.String(), CreatedAt: now}))
	require.NoError(t, st.CreateSite(ctx, store.Site{ID: e.site, TenantID: e.tenant, Name: "edge", CreatedAt: now, UpdatedAt: now}))
	e.token = "tok-" + store.NewID().String()
	hash := sha256.Sum256([]byte(e.token))
	require.NoError(t, st.CreateEnrollmentToken(ctx, store.EnrollmentToken{
		ID: store.NewID(), TenantID: e.tenant, SiteID: e.site, Hash: hash[:],
		ExpiresAt: now.Add(time.Hour), MaxUses: 100, CreatedAt: now,
	}))
	// The hub closes a session silent for three heartbeat intervals: at
	// 1 s a loaded machine can starve an agent that long, and a reconnect
	// would hide a plan the session lost (tests assert there is none).
	opts := hub.Options{
		Store: st, Authority: auth, HeartbeatInterval: 5 * time.Second,
		FlushInterval: 20 * time.Millisecond, OfflineAfter: time.Minute,
	}
	for _, tweak := range tweaks {
		tweak(&opts)
	}
	e.hub = hub.New(opts)
	runCtx, stop := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- e.hub.Run(runCtx) }()
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.hub.ServeAgent))
	e.srv.TLS = auth.ServerTLSConfig()
	e.srv.StartTLS()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-runDone)
		e.srv.Close()
	})
	return e
}

// testAgent is an enrolled agent with its state directory.
type testAgent struct {
	id, host uuid.UUID
	stateDir string
	serial   string
	agent    *agent.Agent
	pv       *sim.Provider
	done     chan error
	stop     context.CancelFunc
}

// enroll records an agent in the store, as POST /v1/enroll does, and
// stores its identity in a state directory, as `nkudo-agent enroll` does.
func (e *env) enroll(certTTL time.Duration) *testAgent {
	e.t.Helper()
	ta := &testAgent{id: store.NewID(), host: store.NewID(), stateDir: e.t.TempDir()}
	key, err := pki.GenerateKey()
	require.NoError(e.t, err)
	csr, err := pki.CreateCSR(key, "edge-1")
	require.NoError(e.t, err)
	id := pki.AgentIdentity{TenantID: e.tenant, SiteID: e.site, AgentID: ta.id}
	certPEM, serial, notAfter, err := e.auth.SignAgentCSR(csr, id, certTTL)
	require.NoError(e.t, err)
	ta.serial = serial
	hash := sha256.Sum256([]byte(e.token))
	_, _, _, err = e.st.ConsumeEnrollment(context.Background(), store.Enrollment{
		TokenHash: hash[:], AgentID: ta.id, HostID: ta.host, Hostname: "edge-1",
		CertSerial: serial, CertExpiresAt: notAfter, Now: time.Now(),
	})
	require.NoError(e.t, err)
	info := identity.Info{AgentID: ta.id, HostID: ta.host, SiteID: e.site, TenantID: e.tenant, Server: e.srv.URL, Hostname: "edge-1", EnrolledAt: time.Now()}
	require.NoError(e.t, identity.Save(ta.stateDir, info, key, certPEM, e.auth.CACertPEM(), false))
	return ta
}

// start runs the agent from its state directory, as `nkudo-agent run`.
func (e *env) start(ta *testAgent, tweak func(*agent.Options)) {
	e.t.Helper()
	id, err := identity.Load(ta.stateDir)
	require.NoError(e.t, err)
	pv, err := sim.Open(filepath.Join(ta.stateDir, "runtime"))
	require.NoError(e.t, err)
	caps, err := pv.Capabilities(context.Background())
	require.NoError(e.t, err)
	imagesDir := filepath.Join(ta.stateDir, "images")
	require.NoError(e.t, os.MkdirAll(imagesDir, 0o700))
	require.NoError(e.t, os.WriteFile(filepath.Join(imagesDir, "root.img"), []byte("disk"), 0o600))
	images, err := imagedir.New([]string{imagesDir})
	require.NoError(e.t, err)
	o := agent.Options{
		StateDir: ta.stateDir, Identity: id, Provider: pv, Images: images, AgentVersion: "test",
		Facts:   agent.NewHostFacts(hostfacts.Options{Hostname: "edge-1", Hypervisor: caps, AgentVersion: "test"}),
		Backoff: &backoff.Backoff{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond},
	}
	if tweak != nil {
		tweak(&o)
	}
	a, err := agent.New(o)
	require.NoError(e.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ta.agent, ta.pv, ta.stop, ta.done = a, pv, cancel, done
	// The cleanup waits for this run's goroutine only (its own channel),
	// whatever the test did with ta.done.
	finished := make(chan struct{})
	go func() {
		err := a.Run(ctx)
		close(finished)
		done <- err
	}()
	e.t.Cleanup(func() {
		cancel()
		<-finished
	})
}

// wait polls cond until it holds or the deadline passes.
func wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// submitVMPlan stores a VM and a plan that creates and boots it, then
// dispatches the plan, as the API does (internal/api submitPlanWith):
// commit, then DispatchPlan. A plan only stored would reach an agent whose
// hello's pending-plans lookup ran before the commit at its next
// reconnect only.
func (e *env) submitVMPlan(ta *testAgent) (store.Plan, uuid.UUID) {
	e.t.Helper()
	p, vm := newVMPlan(e, ta)
	require.NoError(e.t, e.submit(p, vm))
	return p, vm.ID
}

// newVMPlan is a VM and a plan that creates and boots it, not stored yet.
func newVMPlan(e *env, ta *testAgent) (store.Plan, store.VM) {
	now := time.Now()
	id := store.NewID()
	vm := store.VM{
		ID: id, TenantID: e.tenant, SiteID: e.site, HostID: ta.host, Name: "vm-" + id.String(),
		DesiredState: store.VMRunning, ActualState: store.VMCreating, VCPUs: 1, MemoryMiB: 128,
		Spec: json.RawMessage(`{"disk_image":"/img/root.img"}`), CreatedAt: now, UpdatedAt: now,
	}
	params := fmt.Sprintf(`{"name":%q,"vcpus":1,"memory_mib":128,"disk_image":%q}`, vm.Name, filepath.Join(ta.stateDir, "images", "root.img"))
	p := store.Plan{
		ID: store.NewID(), TenantID: e.tenant, SiteID: e.site, HostID: ta.host, AgentID: ta.id,
		Status: store.StatusPending, CreatedAt: now, UpdatedAt: now,
	}
	p.Actions = []store.PlanAction{{
		ID: store.NewID(), PlanID: p.ID, Seq: 0, Type: store.ActionMicroVMCreate, VMID: id,
		Params: json.RawMessage(params), Status: store.StatusPending, ExecutionID: store.NewID(), UpdatedAt: now,
	}}
	return p, vm
}

// submit stores the VM and its plan in one transaction, as the API's VM
// create does, and dispatches the plan once committed.
func (e *env) submit(p store.Plan, vm store.VM) error {
	if err := e.st.CreateVMWithPlan(context.Background(), vm, p); err != nil {
		return fmt.Errorf("storing vm %s and its plan: %w", vm.ID, err)
	}
	e.hub.DispatchPlan(p)
	return nil
}

func (e *env) planStatus(id uuid.UUID) string {
	p, err := e.st.GetPlan(context.Background(), e.tenant, id)
	require.NoError(e.t, err)
	return p.Status
}

// checkRan asserts the plan's effect on the server and on the host.
func (e *env) checkRan(ta *testAgent, p store.Plan, vm uuid.UUID) {
	e.t.Helper()
	wait(e.t, "plan to succeed", func() bool { return e.planStatus(p.ID) == store.StatusSucceeded })
	got, err := e.st.GetVM(context.Background(), e.tenant, vm)
	require.NoError(e.t, err)
	assert.Equal(e.t, store.VMRunning, got.ActualState)
	st, err := ta.pv.State(context.Background(), vm)
	require.NoError(e.t, err)
	assert.Equal(e.t, hypervisor.StateRunning, st.State)
	var lines []store.LogLine
	wait(e.t, "execution log", func() bool {
		lines, err = e.st.ListLogLines(context.Background(), e.tenant, p.Actions[0].ExecutionID, 0, 100)
		require.NoError(e.t, err)
		return len(lines) >= 3
	})
	for i, l := range lines {
		assert.Equal(e.t, int64(i+1), l.Seq, "log seq without gaps")
	}
}

func TestSessionRunsPlans(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ta := e.enroll(time.Hour)
	e.start(ta, nil)
	wait(t, "agent online", func() bool { return e.hub.Online(ta.id) })
	wait(t, "hello recorded", func() bool {
		a, err := e.st.GetAgent(context.Background(), ta.id)
		require.NoError(t, err)
		return a.Status == store.AgentOnline && a.Version == "test"
	})

	// A plan dispatched to the live session.
	p, vm := e.submitVMPlan(ta)
	e.checkRan(ta, p, vm)

	// Graceful shutdown, then a plan created while the agent is offline
	// is delivered when it comes back.
	ta.stop()
	require.NoError(t, <-ta.done)
	wait(t, "agent offline", func() bool { return !e.hub.Online(ta.id) })
	p2, vm2 := e.submitVMPlan(ta)
	e.start(ta, nil)
	e.checkRan(ta, p2, vm2)
}

// TestPlanSubmittedDuringHelloRuns: a plan submitted right after the
// hello's pending-plans query read the store runs at once, without a
// reconnect. That ordering is what lost TestConsoleTail's plan under CPU
// contention (issue 16): its helper stored the plan without dispatching
// it, which only a hello that comes after the commit picks up.
func TestPlanSubmittedDuringHelloRuns(t *testing.T) {
	t.Parallel()
	hs := &storetest.PendingHook{}
	e := newEnv(t, func(o *hub.Options) { hs.Store = o.Store; o.Store = hs })
	ta := e.enroll(time.Hour)
	p, vm := newVMPlan(e, ta)
	// The hook runs on the hub's lookup goroutine: it records its error
	// for the test goroutine instead of failing there.
	var submitted atomic.Bool
	var submitErr error
	hs.After = func() {
		submitErr = e.submit(p, vm)
		submitted.Store(true)
	}
	hs.Arm(ta.id)
	bo := &backoff.Backoff{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	e.start(ta, func(o *agent.Options) { o.Backoff = bo })
	wait(t, "the hello's pending-plans lookup", submitted.Load)
	require.NoError(t, submitErr)
	e.checkRan(ta, p, vm.ID)
	assert.Equal(t, 0, bo.Attempt(), "the session was not dropped")
}

func TestSessionReconnectsAfterServerDropsIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ta := e.enroll(time.Hour)
	e.start(ta, nil)
	wait(t, "agent online", func() bool { return e.hub.Online(ta.id) })
	e.srv.CloseClientConnections()
	// Whether or not the dispatch finds a live session, the plan stays
	// pending and reaches the agent after its reconnect.
	p, vm := e.submitVMPlan(ta)
	e.checkRan(ta, p, vm)
	assert.True(t, e.hub.Online(ta.id))
}

func TestRevokedAgentStops(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ta := e.enroll(time.Hour)
	e.start(ta, nil)
	wait(t, "agent online", func() bool { return e.hub.Online(ta.id) })
	_, err := e.st.RevokeAgent(context.Background(), e.tenant, ta.id, time.Now())
	require.NoError(t, err)
	e.hub.Revoke(ta.id)
	select {
	case err := <-ta.done:
		require.ErrorIs(t, err, agent.ErrStopped)
		assert.Contains(t, err.Error(), "4002")
	case <-time.After(waitTimeout):
		t.Fatal("revoked agent kept running")
	}

	// Started again, the revoked agent is refused at the handshake and
	// stops instead of retrying forever.
	e.start(ta, nil)
	select {
	case err := <-ta.done:
		require.ErrorIs(t, err, agent.ErrStopped)
		assert.Contains(t, err.Error(), "403")
	case <-time.After(waitTimeout):
		t.Fatal("refused agent kept running")
	}
}

func TestCertRenewalKeepsSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ta := e.enroll(time.Hour)
	var bo backoff.Backoff
	bo.Base, bo.Max = 20*time.Millisecond, 200*time.Millisecond
	// Renew at once: the certificate is already past 1% of its life.
	e.start(ta, func(o *agent.Options) { o.RenewAt = 0.01; o.Backoff = &bo })
	wait(t, "agent online", func() bool { return e.hub.Online(ta.id) })
	serialOf := func() string { return fmt.Sprintf("%x", ta.agent.Certificate().Current().Leaf.SerialNumber) }
	wait(t, "certificate renewed", func() bool { return serialOf() != ta.serial })
	a, err := e.st.GetAgent(context.Background(), ta.id)
	require.NoError(t, err)
	assert.Equal(t, serialOf(), a.CertSerial, "the server records the new serial")
	assert.Equal(t, 0, bo.Attempt(), "the session was not dropped")
	assert.True(t, e.hub.Online(ta.id))

	// The renewed identity is on disk and works for the next session.
	id, err := identity.Load(ta.stateDir)
	require.NoError(t, err)
	assert.Equal(t, serialOf(), fmt.Sprintf("%x", id.Cert.Leaf.SerialNumber))
	e.srv.CloseClientConnections()
	p, vm := e.submitVMPlan(ta)
	e.checkRan(ta, p, vm)
}
