package netbird

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/specfile"
)

func readSample(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(specfile.Path(t, "netbird-status.example.json"))
	require.NoError(t, err)
	return data
}

// sampleVariant returns the sample status with mutate applied to its
// generic JSON form. The sample (shared/specs) pairs cliVersion 0.59.7
// with daemonStatus, which no real client prints: it serves the field
// shapes; what real clients print is in testdata/netbird (fixture).
func sampleVariant(t *testing.T, mutate func(m map[string]any)) string {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(readSample(t), &m))
	if mutate != nil {
		mutate(m)
	}
	data, err := json.Marshal(m)
	require.NoError(t, err)
	return string(data)
}

func allPeersConnected(m map[string]any) {
	peers := m["peers"].(map[string]any)
	peers["connected"] = peers["total"]
	for _, d := range peers["details"].([]any) {
		d.(map[string]any)["status"] = PeerConnected
	}
}

func TestParseStatusCoversEverySampleField(t *testing.T) {
	t.Parallel()
	sample := readSample(t)
	st, err := ParseStatus(sample)
	require.NoError(t, err)

	// Re-encoding must reproduce the sample exactly: a field the types
	// missed would vanish, a mistyped one would change.
	again, err := json.Marshal(st)
	require.NoError(t, err)
	require.JSONEq(t, string(sample), string(again))

	require.Equal(t, DaemonConnected, st.DaemonStatus)
	require.Equal(t, "0.59.7", st.DaemonVersion)
	require.Equal(t, "100.92.3.15/16", st.NetBirdIP)
	require.Equal(t, "edge-a.netbird.cloud", st.FQDN)
	require.True(t, st.Management.Connected)
	require.Equal(t, "https://signal.netbird.io:443", st.Signal.URL)
	require.Equal(t, 1, st.Relays.Available)
	require.Equal(t, "rels://relay.netbird.io:443", st.Relays.Details[0].URI)
	require.Len(t, st.Peers.Details, 2)
	p := st.Peers.Details[0]
	require.Equal(t, 12*time.Millisecond, p.Latency)
	require.Equal(t, "srflx", p.ICECandidateType.Remote)
	require.Equal(t, "198.51.100.7:51820", p.ICECandidateEndpoint.Remote)
	require.Equal(t, int64(182734), p.TransferReceived)
	require.Equal(t, time.Date(2026, 11, 27, 21, 40, 9, 0, time.UTC), p.LastWireguardHandshake)
	require.Equal(t, 51820, st.WireGuardPort)
	require.Equal(t, "default", st.ProfileName)
}

func TestParseStatusFullerShapes(t *testing.T) {
	t.Parallel()
	// Fields the sample leaves empty, plus a field this package does not
	// know, which must be ignored.
	data := sampleVariant(t, func(m map[string]any) {
		m["dnsServers"] = []any{map[string]any{"servers": []any{"1.1.1.1:53"}, "domains": []any{"."}, "enabled": true, "error": ""}}
		m["events"] = []any{map[string]any{
			"id": "e1", "severity": "WARNING", "category": "DNS", "message": "dns down",
			"userMessage": "DNS is down", "timestamp": "2026-11-27T21:00:00Z", "metadata": map[string]any{"server": "1.1.1.1"},
		}}
		m["sshServer"] = map[string]any{"enabled": true, "sessions": []any{map[string]any{"username": "root", "remoteAddress": "100.92.14.7:40000", "command": "sh"}}}
		m["networks"] = []any{"10.1.0.0/16"}
		m["someFutureField"] = map[string]any{"x": 1}
	})
	st, err := ParseStatus([]byte(data))
	require.NoError(t, err)
	require.Equal(t, []string{"1.1.1.1:53"}, st.DNSServers[0].Servers)
	require.Equal(t, "1.1.1.1", st.Events[0].Metadata["server"])
	require.Equal(t, "root", st.SSHServer.Sessions[0].Username)
	require.Equal(t, []string{"10.1.0.0/16"}, st.Networks)
}

func TestParseStatusMalformed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"blank", " \n"},
		{"null", "null"},
		{"array", "[]"},
		{"truncated", `{"peers": {"total": 2,`},
		{"wrong type", `{"peers": 5}`},
		{"bad time", `{"peers": {"details": [{"lastStatusUpdate": "yesterday"}]}}`},
		{"trailing garbage", `{} {}`},
		{"text", "Daemon status: Connected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseStatus([]byte(tc.in))
			require.ErrorIs(t, err, ErrMalformedStatus)
		})
	}
}

// TestParseStatusRealClients reads what real clients print (see
// testdata/netbird/README.md): clients before v0.67.0 print plain text,
// exit 0, while not logged in; a fresh install starts in NeedsLogin
// (client/server/server.go), so that text must read as the state it
// names, not as malformed output.
func TestParseStatusRealClients(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file       string
		wantDaemon string
		wantState  string
		wantErr    string
	}{
		{file: "status-0.66.4-needslogin.txt", wantDaemon: DaemonNeedsLogin, wantState: agentproto.NetBirdDisconnected, wantErr: "daemon status NeedsLogin"},
		{file: "status-0.66.4-sessionexpired.txt", wantDaemon: DaemonSessionExpired, wantState: agentproto.NetBirdDisconnected, wantErr: "daemon status SessionExpired"},
		{file: "status-0.66.4-connected.json", wantDaemon: "", wantState: agentproto.NetBirdDegraded, wantErr: "1 of 2 peers connected"},
		{file: "status-0.77.1-needslogin.json", wantDaemon: DaemonNeedsLogin, wantState: agentproto.NetBirdDisconnected, wantErr: "daemon status NeedsLogin"},
		{file: "status-0.77.1-connected.json", wantDaemon: DaemonConnected, wantState: agentproto.NetBirdDegraded, wantErr: "1 of 2 peers connected"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			st, err := ParseStatus([]byte(fixture(t, tc.file)))
			require.NoError(t, err)
			require.Equal(t, tc.wantDaemon, st.DaemonStatus)
			ev := Evaluate(st)
			require.Equal(t, tc.wantState, ev.State)
			require.Equal(t, tc.wantErr, ev.Error)
			require.NoError(t, ev.Validate())
		})
	}
}
