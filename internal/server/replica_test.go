package server_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubedoio/n-kudo/internal/agent/identity"
	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/server"
	"github.com/kubedoio/n-kudo/internal/store/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Wrap(m),
		// Idle keep-alive connections of http clients closed at cleanup.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"))
}

const (
	adminKey = "replica-test-admin-key-0123456789"
	// waitFor bounds each wait; -race on a shared 2-core machine is slow.
	waitFor = 60 * time.Second
)

// replica is one running nkudo-server.
type replica struct {
	srv  *server.Server
	url  string
	done chan error
}

// startReplica runs a server on dbURL with the PKI in dataDir (shared by
// the replicas, as a deployment shares its CA) until the test ends.
func startReplica(t *testing.T, dbURL, dataDir string) *replica {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = dataDir
	cfg.DatabaseURL = dbURL
	cfg.PKISealKey = sealKey
	return startReplicaWith(t, cfg)
}

// startReplicaWith runs a server with cfg (on a free loopback port, no
// metrics) until the test ends.
func startReplicaWith(t *testing.T, cfg server.Config) *replica {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	cfg.MetricsAddr = ""
	cfg.AdminKey = adminKey
	cfg.ShutdownTimeout = 10 * time.Second
	srv, err := server.New(t.Context(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{srv: srv, url: "https://" + srv.Addr().String(), done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-r.done)
	})
	select {
	case <-srv.BusListening():
	case <-time.After(waitFor):
		t.Fatal("notification bus never listened")
	}
	return r
}

func (r *replica) client(t *testing.T, caPEM []byte, key, tenant string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{BaseURL: r.url, CAPEM: caPEM, APIKey: key, Tenant: tenant})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// wireAgent is a hand-driven agent session, so the test controls exactly
// when each frame is sent.
type wireAgent struct {
	t    *testing.T
	conn *websocket.Conn
	tr   *http.Transport
	seq  uint64
}

func dial(t *testing.T, r *replica, id *identity.Identity) *wireAgent {
	t.Helper()
	cfg, err := pki.NewCertStore(id.Cert).ClientTLSConfig(id.CAPEM)
	require.NoError(t, err)
	tr := &http.Transport{TLSClientConfig: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "wss://"+r.srv.Addr().String()+"/v1/agent/connect", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: tr}, Subprotocols: []string{agentproto.Subprotocol},
	})
	require.NoError(t, err)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	w := &wireAgent{t: t, conn: conn, tr: tr}
	t.Cleanup(func() {
		_ = conn.CloseNow()
		tr.CloseIdleConnections()
	})
	w.send(&agentproto.Hello{
		AgentVersion: "replica-test", CapabilityVersion: agentproto.CapabilityVersion,
		Facts: agentproto.HostFacts{Hostname: id.Info.Hostname, OS: "linux", Kernel: "6.8", Arch: "amd64", CPUCores: 1,
			MemoryTotalBytes: 1 << 30, Hypervisor: agentproto.Hypervisor{Kind: agentproto.HypervisorSim, Simulated: true}, AgentVersion: "replica-test"},
		NetBird: agentproto.NetBirdStatus{State: agentproto.NetBirdDisabled},
	})
	require.Equal(t, agentproto.TypeHelloAck, w.next(agentproto.TypeHelloAck).Type)
	return w
}

func (w *wireAgent) send(m agentproto.Message) {
	w.t.Helper()
	w.seq++
	frame, err := agentproto.Encode(m.MessageType(), "", w.seq, 0, m)
	require.NoError(w.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(w.t, w.conn.Write(ctx, websocket.MessageText, frame))
}

// next returns the next frame of type typ, skipping acknowledgements.
func (w *wireAgent) next(typ string) agentproto.Envelope {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for {
		_, frame, err := w.conn.Read(ctx)
		require.NoError(w.t, err, "waiting for %s", typ)
		env, err := agentproto.Decode(frame)
		require.NoError(w.t, err)
		if env.Type == typ {
			return env
		}
	}
}

// recorder collects what a stream callback received.
type recorder[T any] struct {
	mu   sync.Mutex
	got  []T
	kick chan struct{}
}

func newRecorder[T any]() *recorder[T] { return &recorder[T]{kick: make(chan struct{}, 1)} }

func (r *recorder[T]) add(v T) error {
	r.mu.Lock()
	r.got = append(r.got, v)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	return nil
}

// wait blocks until cond holds over what was received.
func (r *recorder[T]) wait(t *testing.T, what string, cond func([]T) bool) {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := cond(r.got)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.kick:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// stream runs fn (a following client call) until the test ends.
func stream(t *testing.T, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("stream ended: %v", err)
		}
	})
}

// cluster is two replicas on one PostgreSQL database, a tenant with an
// admin key's client on B, and an agent enrolled through A (not yet
// connected).
type cluster struct {
	a, b *replica
	onB  *client.Client
	site client.Site
	id   *identity.Identity
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	dbURL := pgtest.URL(t)
	dataDir := t.TempDir()
	cl := &cluster{a: startReplica(t, dbURL, dataDir), b: startReplica(t, dbURL, dataDir)}
	caPEM, err := os.ReadFile(filepath.Join(dataDir, "pki", "ca.crt"))
	require.NoError(t, err)
	cl.onB, cl.site, cl.id = bootstrapAndEnroll(t, cl.b, cl.a, caPEM, filepath.Join(dataDir, "pki", "ca.crt"), "replicas")
	return cl
}

// connectToA dials the agent's session on A and waits until B sees the
// host online (hello_ack precedes the store work: the batched heartbeat
// path marks the host online shortly after).
func (cl *cluster) connectToA(t *testing.T) *wireAgent {
	t.Helper()
	ag := dial(t, cl.a, cl.id)
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := cl.onB.GetHost(t.Context(), cl.id.Info.HostID)
		require.NoError(t, err)
		if h.Online {
			return ag
		}
		require.True(t, time.Now().Before(deadline), "host never came online")
		time.Sleep(20 * time.Millisecond)
	}
}

// createVM creates a VM on the agent's host through B.
func (cl *cluster) createVM(t *testing.T) client.CreatedVM {
	t.Helper()
	start := true
	created, err := cl.onB.CreateVM(t.Context(), client.CreateVMRequest{Name: "web", SiteID: cl.site.ID, HostID: &cl.id.Info.HostID,
		VCPUs: 1, MemoryMiB: 256, DiskImage: "/var/lib/images/debian-12.raw", Start: &start})
	require.NoError(t, err)
	require.NotNil(t, created.Plan)
	return created
}

// Two replicas on one PostgreSQL database: the agent's session lives on
// A; everything is asked of B, and reaches the session on A at once
// (the agent never reconnects here).
func TestReplicasShareOneDatabase(t *testing.T) {
	cl := newCluster(t)
	ctx, id, onB := t.Context(), cl.id, cl.onB

	// B's event stream, open before anything happens on A.
	events := newRecorder[client.Event]()
	stream(t, func(ctx context.Context) error { return onB.Events(ctx, 0, events.add) })
	ag := cl.connectToA(t)

	// A plan created through B reaches the session on A.
	created := cl.createVM(t)
	env := ag.next(agentproto.TypePlan)
	wp, err := agentproto.DecodeData[agentproto.Plan](env)
	require.NoError(t, err)
	require.Equal(t, created.Plan.ID, wp.PlanID)
	require.NotEmpty(t, wp.Actions)
	ag.send(&agentproto.PlanAck{PlanID: wp.PlanID})
	act := wp.Actions[0]
	ag.send(&agentproto.ActionResult{PlanID: wp.PlanID, ActionID: act.ActionID, ExecutionID: act.ExecutionID,
		Status: "running", At: time.Now()})

	// A follower on B sees lines the agent sends to A while the action
	// still runs, so they come over the bus, not from a final re-read.
	lines := newRecorder[client.LogLine]()
	stream(t, func(ctx context.Context) error {
		return onB.FollowLogs(ctx, act.ExecutionID, 0, lines.add)
	})
	for seq := int64(1); seq <= 3; seq++ {
		ag.send(&agentproto.LogBatch{ExecutionID: act.ExecutionID, Lines: []agentproto.LogLine{
			{Seq: seq, At: time.Now(), Stream: "stdout", Message: "booting step"},
		}})
		lines.wait(t, "log line on B", func(got []client.LogLine) bool { return len(got) >= int(seq) })
	}
	lines.mu.Lock()
	for i, l := range lines.got {
		require.Equal(t, int64(i+1), l.Seq)
	}
	lines.mu.Unlock()

	// The VM state change applied on A shows on B's event stream.
	for _, act := range wp.Actions {
		ag.send(&agentproto.ActionResult{PlanID: wp.PlanID, ActionID: act.ActionID, ExecutionID: act.ExecutionID,
			Status: "succeeded", VMState: "running", At: time.Now()})
	}
	events.wait(t, "vm.updated running on B", func(got []client.Event) bool {
		for _, e := range got {
			if e.Type != "vm.updated" || e.ID != created.ID {
				continue
			}
			vm, err := client.DecodeObject[client.VM](e)
			if err == nil && vm.ActualState == "running" {
				return true
			}
		}
		return false
	})
	plan, err := onB.GetPlan(ctx, created.Plan.ID)
	require.NoError(t, err)
	require.Equal(t, "succeeded", plan.Status)

	// Revoking through B closes the session on A at once.
	_, err = onB.RevokeAgent(ctx, id.Info.AgentID)
	require.NoError(t, err)
	rctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	for {
		_, _, err := ag.conn.Read(rctx)
		if err != nil {
			require.Equal(t, agentproto.CloseRevoked, websocket.CloseStatus(err), "closed with %v", err)
			break
		}
	}
}

// A lone SQLite server runs its in-process bus, serves the API with the
// bus wired in, and shuts down cleanly (checked at cleanup).
func TestSQLiteServerRunsLocalBus(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	r := startReplica(t, "", dataDir)
	caPEM, err := os.ReadFile(filepath.Join(dataDir, "pki", "ca.crt"))
	require.NoError(t, err)
	tenant, err := r.client(t, caPEM, adminKey, "").CreateTenant(t.Context(), "solo")
	require.NoError(t, err)
	require.Equal(t, "solo", tenant.Name)
}

// A console read through B from the agent on A, over PostgreSQL
// LISTEN/NOTIFY: a full 64 KiB snapshot (chunked under NOTIFY's payload
// limit) answers the one-shot read, which stops the tail; a follower on
// B sees live output, and its leaving stops the tail on the agent.
func TestConsoleRelayedOverPostgres(t *testing.T) {
	cl := newCluster(t)
	ag := cl.connectToA(t)
	vm := cl.createVM(t)
	ctx := t.Context()

	type answer struct {
		body []byte
		err  error
	}
	oneShot := make(chan answer, 1)
	go func() {
		b, err := cl.onB.Console(ctx, vm.ID)
		oneShot <- answer{b, err}
	}()
	start, err := agentproto.DecodeData[agentproto.ConsoleStart](ag.next(agentproto.TypeConsoleStart))
	require.NoError(t, err)
	snapshot := bytes.Repeat([]byte("0123456789abcdef"), agentproto.MaxConsoleChunkBytes/16)
	ag.send(&agentproto.ConsoleData{VMID: vm.ID, StreamID: start.StreamID, Data: snapshot})
	ag.send(&agentproto.ConsoleData{VMID: vm.ID, StreamID: start.StreamID, SnapshotDone: true})
	select {
	case got := <-oneShot:
		require.NoError(t, got.err)
		require.Equal(t, snapshot, got.body)
	case <-time.After(waitFor):
		t.Fatal("no one-shot console answer through B")
	}
	stop, err := agentproto.DecodeData[agentproto.ConsoleStop](ag.next(agentproto.TypeConsoleStop))
	require.NoError(t, err)
	require.Equal(t, start.StreamID, stop.StreamID)

	chunks := newRecorder[[]byte]()
	fctx, leave := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() {
		followed <- cl.onB.FollowConsole(fctx, vm.ID, func(c []byte) error { return chunks.add(bytes.Clone(c)) })
	}()
	start, err = agentproto.DecodeData[agentproto.ConsoleStart](ag.next(agentproto.TypeConsoleStart))
	require.NoError(t, err)
	ag.send(&agentproto.ConsoleData{VMID: vm.ID, StreamID: start.StreamID, Data: []byte("web login: ")})
	chunks.wait(t, "live console output through B", func(got [][]byte) bool {
		return bytes.Contains(bytes.Join(got, nil), []byte("web login: "))
	})
	leave()
	require.ErrorIs(t, <-followed, context.Canceled)
	stop, err = agentproto.DecodeData[agentproto.ConsoleStop](ag.next(agentproto.TypeConsoleStop))
	require.NoError(t, err)
	require.Equal(t, start.StreamID, stop.StreamID, "the follower leaving B stopped the tail on A")
}
