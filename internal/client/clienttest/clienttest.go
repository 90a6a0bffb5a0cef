package clienttest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/internal/server"
	"github.com/kubedoio/n-kudo/internal/store"
)

// AdminKey is the NKUDO_ADMIN_KEY of every test server.
const AdminKey = "clienttest-admin-key-0123456789"

// Server is a running nkudo-server.
type Server struct {
	URL     string // https://127.0.0.1:<port>
	CAPEM   []byte // the server's CA certificate
	CAFile  string // <data-dir>/pki/ca.crt
	DataDir string
	Store   store.Store // the server's own store, for seeding fixtures
}

// Start runs a server until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Addr = "127.0.0.1:0"
	cfg.MetricsAddr = ""
	cfg.AdminKey = AdminKey
	cfg.ShutdownTimeout = 5 * time.Second
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serving: %v", err)
		}
	})
	caFile := filepath.Join(cfg.DataDir, "pki", "ca.crt")
	pem, err := os.ReadFile(caFile)
	require.NoError(t, err)
	return &Server{
		URL:     "https://" + srv.Addr().String(),
		CAPEM:   pem,
		CAFile:  caFile,
		DataDir: cfg.DataDir,
		Store:   srv.Store(),
	}
}

// Client returns a client with key (and tenant, for the admin key),
// closed when the test ends.
func (s *Server) Client(t testing.TB, key, tenant string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{BaseURL: s.URL, CAPEM: s.CAPEM, APIKey: key, Tenant: tenant,
		ReconnectBase: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// Tenant is a bootstrapped tenant with one key per role.
type Tenant struct {
	ID                          uuid.UUID
	AdminKey, OperatorKey, View string
}

// NewTenant creates a tenant and an admin, operator and viewer key.
func (s *Server) NewTenant(t testing.TB, name string) Tenant {
	t.Helper()
	ctx := context.Background()
	admin := s.Client(t, AdminKey, "")
	tn, err := admin.CreateTenant(ctx, name)
	require.NoError(t, err)
	out := Tenant{ID: tn.ID}
	for role, dst := range map[string]*string{
		client.RoleAdmin: &out.AdminKey, client.RoleOperator: &out.OperatorKey, client.RoleViewer: &out.View,
	} {
		k, err := admin.CreateAPIKey(ctx, tn.ID, name+"-"+role, role)
		require.NoError(t, err)
		*dst = k.Key
	}
	return out
}

// HostFixture describes a host to enroll through the store.
type HostFixture struct {
	SiteID, AgentID, HostID uuid.UUID
	Hostname                string
	Simulated               bool
	Online                  bool
	SeenAt                  time.Time
}

// EnrollHost creates a one-use token through the API, then consumes it
// through the server's store exactly as POST /v1/enroll does, so the host
// and agent exist without a running agent; facts, NetBird state and the
// online flag are written through the heartbeat path.
func (s *Server) EnrollHost(t testing.TB, c *client.Client, h HostFixture) {
	t.Helper()
	ctx := context.Background()
	tok, err := c.CreateEnrollmentToken(ctx, h.SiteID, client.CreateEnrollmentTokenRequest{})
	require.NoError(t, err)
	hash := sha256.Sum256([]byte(tok.Token))
	_, _, _, err = s.Store.ConsumeEnrollment(ctx, store.Enrollment{
		TokenHash: hash[:], AgentID: h.AgentID, HostID: h.HostID, Hostname: h.Hostname,
		CertSerial: "01", CertExpiresAt: h.SeenAt.Add(24 * time.Hour), Now: h.SeenAt,
	})
	require.NoError(t, err)
	kind := client.HypervisorCloudHypervisor
	if h.Simulated {
		kind = client.HypervisorSim
	}
	facts, err := json.Marshal(client.HostFacts{
		Hostname: h.Hostname, OS: "Debian GNU/Linux 13", Kernel: "6.12.0", Arch: "amd64",
		CPUCores: 8, MemoryTotalBytes: 16 << 30, KVM: !h.Simulated,
		Hypervisor:   client.HypervisorInfo{Kind: kind, Simulated: h.Simulated},
		AgentVersion: "v1.0.0",
	})
	require.NoError(t, err)
	nb, err := json.Marshal(client.NetBirdStatus{State: "connected", IP: "100.64.0.1", PeersConnected: 2, PeersTotal: 3})
	require.NoError(t, err)
	require.NoError(t, s.Store.SetAgentOnline(ctx, h.AgentID, true, "v1.0.0", h.SeenAt))
	require.NoError(t, s.Store.UpsertHostStates(ctx, []store.HostState{{
		HostID: h.HostID, AgentID: h.AgentID, LastSeenAt: h.SeenAt, Facts: facts, NetBird: nb,
	}}))
	if !h.Online {
		_, err := s.Store.MarkStaleAgentsOffline(ctx, h.SeenAt.Add(time.Second))
		require.NoError(t, err)
	}
}

// Execution is a seeded one-action plan and its execution.
type Execution struct {
	PlanID, ActionID, ExecutionID uuid.UUID
	AgentID                       uuid.UUID
}

// SeedExecution stores a pending one-action plan for host h, as the plan
// route does, and returns its ids; the agent's side (log lines, result)
// is written with AppendLogs and Finish.
func (s *Server) SeedExecution(t testing.TB, tenant uuid.UUID, h HostFixture, vm uuid.UUID) Execution {
	t.Helper()
	e := Execution{PlanID: store.NewID(), ActionID: store.NewID(), ExecutionID: store.NewID(), AgentID: h.AgentID}
	now := time.Now().UTC()
	require.NoError(t, s.Store.CreatePlan(context.Background(), store.Plan{
		ID: e.PlanID, TenantID: tenant, SiteID: h.SiteID, HostID: h.HostID, AgentID: h.AgentID, Status: store.StatusPending,
		Actions: []store.PlanAction{{ID: e.ActionID, PlanID: e.PlanID, Type: store.ActionMicroVMStart, VMID: vm,
			Params: json.RawMessage(`{}`), Status: store.StatusPending, ExecutionID: e.ExecutionID, UpdatedAt: now}},
		CreatedAt: now, UpdatedAt: now,
	}))
	return e
}

// AppendLogs stores log lines from..to (inclusive) of the execution, as
// the agent channel does with a log batch.
func (s *Server) AppendLogs(t testing.TB, e Execution, from, to int64) {
	t.Helper()
	var lines []store.LogLine
	for seq := from; seq <= to; seq++ {
		lines = append(lines, store.LogLine{ExecutionID: e.ExecutionID, Seq: seq, At: time.Now().UTC(), Stream: "info", Message: fmt.Sprintf("line %d", seq)})
	}
	require.NoError(t, s.Store.AppendLogLines(context.Background(), lines))
}

// Finish records the agent's final result for the execution's action.
func (s *Server) Finish(t testing.TB, e Execution, status, errMsg string) {
	t.Helper()
	_, err := s.Store.ApplyActionResult(context.Background(), e.AgentID, store.ActionResult{ActionID: e.ActionID, Status: status, Error: errMsg, At: time.Now().UTC()})
	require.NoError(t, err)
}
