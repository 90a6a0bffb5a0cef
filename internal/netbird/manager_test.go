package netbird

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/backoff"
)

// heartbeatSource is the agent's NetBirdSource; Manager must satisfy it.
type heartbeatSource interface {
	Status(ctx context.Context) agentproto.NetBirdStatus
}

var _ heartbeatSource = (*Manager)(nil)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// maxRand makes backoff delays deterministic: always the bound.
type maxRand struct{}

func (maxRand) Int64N(n int64) int64 { return n - 1 }

// managementDown is a logged-in daemon that lost management: v0.67.0+
// prints daemonStatus Connected with management disconnected.
func managementDown(m map[string]any) {
	m["management"] = map[string]any{"url": "https://api.netbird.io:443", "connected": false, "error": "connection reset"}
}

// fixtureVariant is a testdata/netbird fixture with mutate applied to its
// generic JSON form.
func fixtureVariant(t *testing.T, name string, mutate func(m map[string]any)) string {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(fixture(t, name)), &m))
	mutate(m)
	data, err := json.Marshal(m)
	require.NoError(t, err)
	return string(data)
}

func TestManagerStates(t *testing.T) {
	t.Parallel()
	probeSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(probeSrv.Close)

	for _, tc := range []struct {
		name      string
		disabled  bool
		missing   bool
		cfg       fakeConfig
		variant   func(map[string]any)
		probe     *Probe
		want      string
		wantErr   string
		wantProbe *bool
		check     func(t *testing.T, st agentproto.NetBirdStatus)
	}{
		{name: "disabled", disabled: true, want: agentproto.NetBirdDisabled},
		{name: "binary missing", missing: true, want: agentproto.NetBirdNotInstalled, wantErr: "not installed"},
		{name: "daemon not running", cfg: fakeConfig{StatusMode: modeDaemonDown}, want: agentproto.NetBirdDisconnected, wantErr: "daemon not running"},
		{name: "malformed status", cfg: fakeConfig{StatusMode: modeMalformed}, want: agentproto.NetBirdDisconnected, wantErr: "malformed netbird status"},
		{name: "hanging daemon", cfg: fakeConfig{StatusMode: modeHang}, want: agentproto.NetBirdDisconnected, wantErr: "timed out"},
		{
			name: "sample: one of two peers", want: agentproto.NetBirdDegraded, wantErr: "1 of 2 peers connected",
			check: func(t *testing.T, st agentproto.NetBirdStatus) {
				require.Equal(t, agentproto.NetBirdStatus{
					State: agentproto.NetBirdDegraded, IP: "100.92.3.15", FQDN: "edge-a.netbird.cloud",
					PeersConnected: 1, PeersTotal: 2, ManagementConnected: true, SignalConnected: true,
					Error: "1 of 2 peers connected",
				}, st)
			},
		},
		{name: "all peers connected", variant: allPeersConnected, want: agentproto.NetBirdConnected},
		{name: "lazy connections leave peers idle", variant: func(m map[string]any) { m["lazyConnectionEnabled"] = true }, want: agentproto.NetBirdConnected},
		{
			name: "signal down", want: agentproto.NetBirdDegraded, wantErr: "signal disconnected: ws closed",
			variant: func(m map[string]any) {
				allPeersConnected(m)
				m["signal"] = map[string]any{"url": "x", "connected": false, "error": "ws closed"}
			},
		},
		{
			name: "no relay", want: agentproto.NetBirdDegraded, wantErr: "no relay available",
			variant: func(m map[string]any) {
				allPeersConnected(m)
				m["relays"].(map[string]any)["available"] = 0
			},
		},
		{
			name: "management disconnected", want: agentproto.NetBirdDisconnected, wantErr: "management disconnected: connection reset",
			variant: func(m map[string]any) {
				m["management"] = map[string]any{"url": "x", "connected": false, "error": "connection reset"}
			},
		},
		{name: "needs login", cfg: fakeConfig{Status: fixture(t, "status-0.77.1-needslogin.json")}, want: agentproto.NetBirdDisconnected, wantErr: "daemon status NeedsLogin"},
		{name: "needs login, client before v0.67.0", cfg: fakeConfig{Status: fixture(t, "status-0.66.4-needslogin.txt")}, want: agentproto.NetBirdDisconnected, wantErr: "daemon status NeedsLogin"},
		{name: "old client without daemonStatus", variant: func(m map[string]any) { allPeersConnected(m); delete(m, "daemonStatus") }, want: agentproto.NetBirdConnected},
		{name: "connecting", variant: func(m map[string]any) { m["daemonStatus"] = DaemonConnecting }, want: agentproto.NetBirdJoining},
		{
			name: "probe ok", variant: allPeersConnected, want: agentproto.NetBirdConnected, wantProbe: ptr(true),
			probe: &Probe{Type: ProbeHTTP, Target: probeSrv.URL + "/up"},
		},
		{
			name: "probe failing", variant: allPeersConnected, want: agentproto.NetBirdDegraded, wantProbe: ptr(false),
			wantErr: "probe: probing " + probeSrv.URL + "/down: status 503",
			probe:   &Probe{Type: ProbeHTTP, Target: probeSrv.URL + "/down"},
		},
		{
			name: "probe skipped while disconnected", cfg: fakeConfig{Status: fixture(t, "status-0.77.1-needslogin.json")}, want: agentproto.NetBirdDisconnected,
			probe: &Probe{Type: ProbeHTTP, Target: probeSrv.URL + "/up"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			if cfg.Status == "" {
				cfg.Status = sampleVariant(t, tc.variant)
			}
			bin := fakeBin(t, cfg)
			if tc.missing {
				bin = filepath.Join(t.TempDir(), "netbird")
			}
			timeout := 10 * time.Second
			if cfg.StatusMode == modeHang {
				timeout = 300 * time.Millisecond
			}
			m, err := NewManager(ManagerOptions{
				Enabled: !tc.disabled,
				Client:  NewCLI(CLIOptions{Bin: bin, Timeout: timeout}),
				Probe:   tc.probe,
			})
			require.NoError(t, err)
			st := m.Reconcile(context.Background())
			require.Equal(t, tc.want, st.State, st.Error)
			require.Contains(t, st.Error, tc.wantErr)
			require.NoError(t, st.Validate())
			require.Equal(t, st, m.Status(context.Background()), "Status returns the last observation")
			if tc.wantProbe == nil {
				require.Nil(t, st.Probe)
			} else {
				require.NotNil(t, st.Probe)
				require.Equal(t, *tc.wantProbe, st.Probe.OK)
			}
			if tc.check != nil {
				tc.check(t, st)
			}
			if tc.disabled {
				require.Empty(t, fakeCalls(t, bin), "a disabled manager never runs netbird")
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestManagerInitialStatus(t *testing.T) {
	t.Parallel()
	m, err := NewManager(ManagerOptions{})
	require.NoError(t, err)
	require.Equal(t, agentproto.NetBirdDisabled, m.Status(context.Background()).State)

	m, err = NewManager(ManagerOptions{Enabled: true, Client: NewCLI(CLIOptions{})})
	require.NoError(t, err)
	st := m.Status(context.Background())
	require.Equal(t, agentproto.NetBirdDisconnected, st.State)
	require.NoError(t, st.Validate())

	_, err = NewManager(ManagerOptions{Enabled: true})
	require.Error(t, err)
	_, err = NewManager(ManagerOptions{Enabled: true, Client: NewCLI(CLIOptions{}), Probe: &Probe{Type: "icmp"}})
	require.ErrorIs(t, err, ErrInvalidProbe)
}

type joinFixture struct {
	bin   string
	clock *fakeClock
	logs  *syncBuffer
	m     *Manager
	key   SetupKeyFile
}

func newJoinFixture(t *testing.T, cfg fakeConfig, writeKey bool) *joinFixture {
	t.Helper()
	f := &joinFixture{
		bin:   fakeBin(t, cfg),
		clock: &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		logs:  &syncBuffer{},
		key:   SetupKeyFile{Path: filepath.Join(t.TempDir(), "netbird-setup-key")},
	}
	if writeKey {
		require.NoError(t, f.key.Write(testKey))
	}
	var err error
	f.m, err = NewManager(ManagerOptions{
		Enabled:       true,
		AutoJoin:      true,
		Client:        NewCLI(CLIOptions{Bin: f.bin, Logger: debugLogger(f.logs)}),
		SetupKey:      f.key,
		ManagementURL: "https://nb.example:443",
		Hostname:      "edge-a",
		Backoff:       &backoff.Backoff{Base: time.Minute, Max: time.Hour, Rand: maxRand{}},
		Logger:        debugLogger(f.logs),
		Now:           f.clock.Now,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NotContains(t, f.logs.String(), testKey, "the setup key leaked into the logs")
	})
	return f
}

// TestManagerAutoJoin joins a fresh install (NeedsLogin) as the two kinds
// of client print it: text before v0.67.0, JSON after. The key goes as a
// file, never on the command line.
func TestManagerAutoJoin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		version, before, after string
	}{
		{version: "0.66.4", before: "status-0.66.4-needslogin.txt", after: "status-0.66.4-connected.json"},
		{version: "0.77.1", before: "status-0.77.1-needslogin.json", after: "status-0.77.1-connected.json"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			t.Parallel()
			f := newJoinFixture(t, fakeConfig{
				Version:       tc.version,
				Status:        fixture(t, tc.before),
				StatusAfterUp: fixtureVariant(t, tc.after, allPeersConnected),
			}, true)
			st := f.m.Reconcile(context.Background())
			require.Equal(t, agentproto.NetBirdConnected, st.State, st.Error)
			require.Equal(t, tc.version, f.m.Version())

			ups := callsOf(fakeCalls(t, f.bin), "up")
			require.Equal(t, [][]string{{"up", "--setup-key-file", f.key.Path, "--management-url", "https://nb.example:443", "--hostname", "edge-a"}}, ups)
			require.Equal(t, fakeUpKey{Key: testKey, Source: "file"}, fakeKeyReceived(t, f.bin))
			require.Contains(t, f.logs.String(), "joining netbird mesh")
			require.Contains(t, f.logs.String(), "setup_key="+redacted)

			// Connected: no more joins.
			f.m.Reconcile(context.Background())
			require.Len(t, callsOf(fakeCalls(t, f.bin), "up"), 1)
		})
	}
}

// TestManagerAlreadyConnectedIsNoFailedJoin: a client before v0.67.0 does
// not say the daemon is Connected; with management out of reach the agent
// tries `up`, which answers "Already connected" (exit 0). That is no
// failed join: the state says management is down, and asking again is
// paced.
func TestManagerAlreadyConnectedIsNoFailedJoin(t *testing.T) {
	t.Parallel()
	f := newJoinFixture(t, fakeConfig{
		Version: "0.66.4", Daemon: DaemonConnected,
		Status: fixtureVariant(t, "status-0.66.4-connected.json", managementDown),
	}, true)
	st := f.m.Reconcile(context.Background())
	require.Equal(t, agentproto.NetBirdDisconnected, st.State)
	require.Equal(t, "management disconnected: connection reset", st.Error)
	require.Len(t, callsOf(fakeCalls(t, f.bin), "up"), 1)
	require.NotContains(t, f.logs.String(), "joining netbird mesh failed")
	f.m.Reconcile(context.Background())
	require.Len(t, callsOf(fakeCalls(t, f.bin), "up"), 1, "not asked again within the backoff")
}

func TestManagerJoinFailureBacksOff(t *testing.T) {
	t.Parallel()
	f := newJoinFixture(t, fakeConfig{Status: fixture(t, "status-0.77.1-needslogin.json"), UpMode: modeFail}, true)
	ctx := context.Background()

	st := f.m.Reconcile(ctx)
	require.Equal(t, agentproto.NetBirdDisconnected, st.State)
	require.Contains(t, st.Error, "joining netbird mesh")
	require.Contains(t, st.Error, redacted)
	require.NotContains(t, st.Error, testKey)
	require.NoError(t, st.Validate())
	require.Len(t, callsOf(fakeCalls(t, f.bin), "up"), 1)

	// Within the first backoff (bound 1m): no new attempt.
	f.clock.Advance(59 * time.Second)
	f.m.Reconcile(ctx)
	require.Len(t, callsOf(fakeCalls(t, f.bin), "up"), 1)

	f.clock.Advance(2 * time.Second)
	f.m.Reconcile(ctx)
	require.Len(t, callsOf(fakeCalls(t, f.bin), "up"), 2)

	// The second failure doubles the wait.
	f.clock.Advance(61 * time.Second)
	f.m.Reconcile(ctx)
	require.Len(t, callsOf(fakeCalls(t, f.bin), "up"), 2)
	f.clock.Advance(60 * time.Second)
	f.m.Reconcile(ctx)
	require.Len(t, callsOf(fakeCalls(t, f.bin), "up"), 3)
}

func TestManagerDoesNotJoin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		cfg      fakeConfig
		writeKey bool
		loosen   bool
		want     string
		wantErr  string
	}{
		{name: "no setup key", writeKey: false, want: agentproto.NetBirdDisconnected},
		{name: "setup key file too open", writeKey: true, loosen: true, want: agentproto.NetBirdDisconnected, wantErr: "permissions too open"},
		{name: "daemon not running", writeKey: true, cfg: fakeConfig{StatusMode: modeDaemonDown}, want: agentproto.NetBirdDisconnected, wantErr: "daemon not running"},
		{name: "already connecting", writeKey: true, cfg: fakeConfig{Status: `{"daemonStatus":"Connecting"}`}, want: agentproto.NetBirdJoining},
		// `up` cannot help a Connected daemon that lost management: it
		// only answers "Already connected" (client/cmd/up.go).
		{name: "daemon connected, management down", writeKey: true, want: agentproto.NetBirdDisconnected,
			cfg:     fakeConfig{Status: fixtureVariant(t, "status-0.77.1-connected.json", managementDown)},
			wantErr: "management disconnected: connection reset (the daemon is logged in and reconnects by itself)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			if cfg.Status == "" {
				cfg.Status = fixture(t, "status-0.77.1-needslogin.json")
			}
			f := newJoinFixture(t, cfg, tc.writeKey)
			if tc.loosen {
				require.NoError(t, os.Chmod(f.key.Path, 0o644))
			}
			st := f.m.Reconcile(context.Background())
			require.Equal(t, tc.want, st.State, st.Error)
			require.Contains(t, st.Error, tc.wantErr)
			require.Empty(t, callsOf(fakeCalls(t, f.bin), "up"))
		})
	}
}

func TestManagerRunStopsOnContext(t *testing.T) {
	t.Parallel()
	bin := fakeBin(t, fakeConfig{Status: sampleVariant(t, allPeersConnected)})
	m, err := NewManager(ManagerOptions{Enabled: true, Client: NewCLI(CLIOptions{Bin: bin}), Interval: time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	require.Eventually(t, func() bool {
		return len(fakeCalls(t, bin)) >= 2
	}, 30*time.Second, 5*time.Millisecond)
	require.Equal(t, agentproto.NetBirdConnected, m.Status(ctx).State)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

func TestEvaluateClampsNonsenseCounts(t *testing.T) {
	t.Parallel()
	st := Evaluate(Status{DaemonStatus: DaemonConnected, Management: ServerState{Connected: true}, Signal: ServerState{Connected: true},
		Peers: PeersOverview{Total: 1, Connected: 3}, NetBirdIP: "not an ip"})
	require.NoError(t, st.Validate())
	require.Equal(t, 1, st.PeersConnected)
	require.Empty(t, st.IP)
}

// timedClient records when each Status call of the real CLI started and
// ended.
type timedClient struct {
	*CLI
	mu    sync.Mutex
	spans [][2]time.Time
}

func (c *timedClient) Status(ctx context.Context) (Status, error) {
	start := time.Now()
	st, err := c.CLI.Status(ctx)
	c.mu.Lock()
	c.spans = append(c.spans, [2]time.Time{start, time.Now()})
	c.mu.Unlock()
	return st, err
}

func (c *timedClient) Spans() [][2]time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][2]time.Time(nil), c.spans...)
}

// TestManagerRunRestsAfterSlowRound: a stopped daemon makes every status
// call block (the real CLI dials for about 10 s); the next round still
// waits a full interval after the slow one ends, instead of following it
// at once, so the agent does not spend its time on netbird. Timers never
// fire early, so the gap is a lower bound that load cannot break.
func TestManagerRunRestsAfterSlowRound(t *testing.T) {
	t.Parallel()
	const interval = 400 * time.Millisecond
	bin := fakeBin(t, fakeConfig{StatusMode: modeDaemonDown, DialDelayMS: 600})
	c := &timedClient{CLI: NewCLI(CLIOptions{Bin: bin})}
	m, err := NewManager(ManagerOptions{Enabled: true, Client: c, Interval: interval})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	require.Eventually(t, func() bool { return len(c.Spans()) >= 3 }, 60*time.Second, 10*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Contains(t, m.Status(ctx).Error, "daemon not running")
	spans := c.Spans()
	for i := 1; i < len(spans); i++ {
		require.GreaterOrEqual(t, spans[i][0].Sub(spans[i-1][1]), interval, "round %d followed round %d at once", i, i-1)
	}
}
