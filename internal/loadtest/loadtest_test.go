package loadtest

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/server"
)

const testAdminKey = "load-test-admin-key-0123456789"

// liveServer is a real in-process nkudo-server (SQLite, real TLS) that the
// test can restart on the same addresses and data dir.
type liveServer struct {
	t       *testing.T
	cfg     server.Config
	mu      sync.Mutex // guards the following
	srv     *server.Server
	cancel  context.CancelFunc
	stopped chan error
}

func startServer(t *testing.T) *liveServer {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.AdminKey = testAdminKey
	cfg.Addr = "127.0.0.1:0"
	cfg.MetricsAddr = "127.0.0.2:0" // Validate refuses two identical addresses
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.LogLevel = "error"
	ls := &liveServer{t: t, cfg: cfg}
	require.NoError(t, ls.start(context.Background()))
	// Later starts reuse the ports the first one was given, so agents
	// and the probe find the restarted server where they left it.
	ls.cfg.Addr = ls.srv.Addr().String()
	ls.cfg.MetricsAddr = ls.srv.MetricsAddr().String()
	t.Cleanup(func() { require.NoError(t, ls.stop()) })
	return ls
}

func (ls *liveServer) start(ctx context.Context) error {
	srv, err := server.New(ctx, ls.cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Serve(sctx) }()
	ls.mu.Lock()
	ls.srv, ls.cancel, ls.stopped = srv, cancel, stopped
	ls.mu.Unlock()
	return nil
}

func (ls *liveServer) stop() error {
	ls.mu.Lock()
	cancel, stopped := ls.cancel, ls.stopped
	ls.mu.Unlock()
	cancel()
	return <-stopped
}

// restart stops the server gracefully and starts it again on the same
// data dir and addresses, like an operator's systemctl restart.
func (ls *liveServer) restart(ctx context.Context) error {
	if err := ls.stop(); err != nil {
		return err
	}
	return ls.start(ctx)
}

func TestRunEveryScenarioSmall(t *testing.T) {
	ls := startServer(t)
	ca, err := os.ReadFile(filepath.Join(ls.cfg.DataDir, "pki", "ca.crt"))
	require.NoError(t, err)
	sources, err := ParseIPRange("127.0.0.2-127.0.0.9")
	require.NoError(t, err)

	const agents = 20
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{
		ServerURL: "https://" + ls.cfg.Addr, CAPEM: ca, AdminKey: testAdminKey,
		Agents: agents, Heartbeat: 15 * time.Second, Duration: 2 * time.Second,
		Scenarios: []string{ScenarioAll}, ServerPID: os.Getpid(),
		MetricsURL: "http://" + ls.cfg.MetricsAddr + "/metrics", SourceIPs: sources,
		HeartbeatRate: 2000, DispatchRate: 20, DispatchAgents: 10, LogAgents: 4, APIKeys: 2,
		Restart: ls.restart, RestartTimeout: time.Minute,
		// Generous: a race build beside busy CPUs can take longer than
		// the default 10 s to store a batch; every line must still be
		// acked, with no stall.
		LogAckTimeout: time.Minute,
	}, nil)
	require.NoError(t, err)

	require.NotNil(t, rep.Enroll)
	require.EqualValues(t, agents, rep.Enroll.Enrolled)
	require.Zero(t, rep.Enroll.Failed)
	require.Positive(t, rep.Enroll.PerSecond)

	require.NotNil(t, rep.Sessions)
	require.EqualValues(t, agents, rep.Sessions.Connected)
	require.EqualValues(t, agents, rep.Sessions.ServerSessions)
	require.Positive(t, rep.Sessions.GoroutinesPerSession)
	require.Positive(t, rep.Sessions.RSSAfterMiB)

	require.NotNil(t, rep.Heartbeats)
	require.Positive(t, rep.Heartbeats.SentPerSecond)
	require.Positive(t, rep.Heartbeats.ReceivedPerSecond)
	require.Positive(t, rep.Heartbeats.RowsFlushedPerSecond)
	require.Zero(t, rep.Heartbeats.FlushErrors)
	require.Zero(t, rep.Heartbeats.SendErrors)

	require.NotNil(t, rep.Dispatch)
	require.Positive(t, rep.Dispatch.Created)
	require.Zero(t, rep.Dispatch.Failed, rep.Dispatch.FirstError)
	require.Zero(t, rep.Dispatch.Lost)
	require.Equal(t, rep.Dispatch.Created, rep.Dispatch.Held)
	require.GreaterOrEqual(t, rep.Dispatch.Maxms, rep.Dispatch.P99ms)
	require.GreaterOrEqual(t, rep.Dispatch.P99ms, rep.Dispatch.P50ms)
	require.Positive(t, rep.Dispatch.SentP50ms)
	require.GreaterOrEqual(t, rep.Dispatch.SentP50ms, rep.Dispatch.P50ms)

	require.NotNil(t, rep.Logs)
	require.Positive(t, rep.Logs.LinesAcked)
	require.Equal(t, rep.Logs.LinesSent, rep.Logs.LinesAcked)
	require.Zero(t, rep.Logs.AckStalls)

	require.NotNil(t, rep.Reconnect)
	require.True(t, rep.Reconnect.AllBack)
	require.Equal(t, agents, rep.Reconnect.Back)
	require.Positive(t, rep.Reconnect.SecondsSinceRestart)

	require.Zero(t, rep.Fleet.ErrorFrames)
	require.Zero(t, rep.Fleet.PermanentStops)
	require.Zero(t, rep.Fleet.SendErrors)
	require.Len(t, rep.Targets, 6)

	var table, js strings.Builder
	require.NoError(t, rep.WriteTable(&table))
	require.Contains(t, table.String(), "plan dispatch")
	require.NoError(t, rep.WriteJSON(&js))
	var back Report
	require.NoError(t, json.Unmarshal([]byte(js.String()), &back))
	require.Equal(t, rep.Dispatch.Held, back.Dispatch.Held)
	t.Log("\n" + table.String())
}

func TestHeartbeatFrameIsValid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		seq  uint64
		n    uint64
	}{
		{"first", 1, 0},
		{"large counters", 1 << 40, 1<<64 - 1},
		{"mid", 77, 12345},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			at := time.Date(2026, 11, 27, 23, 0, 0, 123456789, time.UTC)
			frame := appendHeartbeat(nil, tc.seq, at, tc.n)
			env, err := agentproto.Decode(frame)
			require.NoError(t, err)
			require.Equal(t, agentproto.TypeHeartbeat, env.Type)
			require.Equal(t, tc.seq, env.Seq)
			hb, err := agentproto.DecodeData[agentproto.Heartbeat](env)
			require.NoError(t, err)
			require.True(t, at.Equal(hb.At))
			require.Equal(t, agentproto.NetBirdDisabled, hb.NetBird.State)
			require.NotNil(t, hb.VMs)
		})
	}
}

func TestPlanTrackerPairsEitherOrder(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name         string
		createdFirst bool
		gap          time.Duration
		want         time.Duration
		wantEarly    int
		wantFromSend time.Duration
	}{
		{"api first", true, 3 * time.Millisecond, 3 * time.Millisecond, 0, 4 * time.Millisecond},
		// Sent 1 ms before the agent held it, returned 2 ms after.
		{"agent first", false, 2 * time.Millisecond, 0, 1, time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := newPlanTracker()
			id := uuid.New()
			if tc.createdFirst {
				tr.created(id, base.Add(-time.Millisecond), base)
				tr.received(id, base.Add(tc.gap))
			} else {
				tr.received(id, base)
				tr.created(id, base.Add(-time.Millisecond), base.Add(tc.gap))
			}
			tr.received(id, base.Add(time.Hour)) // a re-send does not count twice
			lat, fromSend, early := tr.snapshot()
			require.Equal(t, []time.Duration{tc.want}, lat)
			require.Equal(t, []time.Duration{tc.wantFromSend}, fromSend)
			require.Equal(t, tc.wantEarly, early)
			require.True(t, tr.isHeld(id))
		})
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	cases := []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}}
	for _, tc := range cases {
		require.Equal(t, tc.want, percentile(d, tc.p), "p%v", tc.p)
	}
	require.Zero(t, percentile(nil, 50))
}

func TestParseIPRange(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"127.0.0.2-127.0.0.20", 19, false},
		{"127.0.0.5", 1, false},
		{"127.0.0.2,127.0.1.1-127.0.1.3", 4, false},
		{"10.0.0.1", 0, true},
		{"127.0.0.9-127.0.0.2", 0, true},
		{"127.0.0.250-128.0.0.2", 0, true},
		{"::1", 0, true},
		{"nonsense", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseIPRange(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Len(t, got, tc.want)
		})
	}
}

func TestValidateRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	good := Config{ServerURL: "https://127.0.0.1:8443", CAPEM: []byte("x"), AdminKey: "k", Agents: 1}
	cases := []struct {
		name string
		mut  func(*Config)
	}{
		{"remote server", func(c *Config) { c.ServerURL = "https://192.0.2.1:8443" }},
		{"plain http", func(c *Config) { c.ServerURL = "http://127.0.0.1:8443" }},
		{"remote metrics", func(c *Config) { c.MetricsURL = "http://192.0.2.1:9464/metrics" }},
		{"remote source", func(c *Config) { c.SourceIPs = []netip.Addr{netip.MustParseAddr("192.0.2.7")} }},
		{"no agents", func(c *Config) { c.Agents = 0 }},
		{"unknown scenario", func(c *Config) { c.Scenarios = []string{"chaos"} }},
		{"no admin key", func(c *Config) { c.AdminKey = "" }},
	}
	require.NoError(t, good.Validate())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := good
			tc.mut(&c)
			require.ErrorIs(t, c.Validate(), ErrInvalidConfig)
		})
	}
}

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	in := "# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 42\n" +
		`nkudo_hub_frames_received_total{type="heartbeat"} 1.5e+06` + "\n" + "broken_line\n"
	got, err := parseMetrics(strings.NewReader(in))
	require.NoError(t, err)
	require.Equal(t, 42.0, got[metricGoroutines])
	require.Equal(t, 1.5e6, got[metricHBReceived])
	require.Len(t, got, 2)
}

// The harness dials only loopback, so the source addresses must be
// bindable here; fail early with a clear message if they are not.
func TestLoopbackSourceBindable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9)}}
	c, err := d.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	require.NoError(t, c.Close())
}
