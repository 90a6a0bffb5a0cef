package e2e_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agent/enroll"
	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/netbirdapi/nbtest"
)

// Files of the stand-in `netbird` executable, in the directory of its
// link: what it prints for `status --json` before and after a successful
// `up`, the key and URL an `up` must carry, and its record of calls.
const (
	standinDisconnected = "status-disconnected.json"
	standinConnected    = "status-connected.json"
	standinExpect       = "expect.json"
	standinJoined       = "joined"
	standinCalls        = "calls.log"
)

// standinWant is what `up` must be given for the stand-in to connect.
type standinWant struct {
	SetupKey      string `json:"setup_key"`
	ManagementURL string `json:"management_url"`
}

// netbirdStandin is the stand-in `netbird` client: it records its argv,
// reports NeedsLogin until an `up` with the expected setup key and
// management URL, and connected after. It never prints the key. It
// answers as the real client v0.77.1 does (netbirdio/netbird): its
// status output is a real client's (testdata/netbird), `up` takes the key
// from --setup-key, --setup-key-file or NB_SETUP_KEY (client/cmd/root.go
// getSetupKey, SetFlagsFromEnvVars) and, once connected, only prints
// "Already connected" (client/cmd/up.go).
func netbirdStandin(args []string) int {
	dir := filepath.Dir(os.Args[0])
	line, _ := json.Marshal(args)
	f, err := os.OpenFile(filepath.Join(dir, standinCalls), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stand-in netbird: recording call:", err)
		return 3
	}
	_, werr := f.Write(append(line, '\n'))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		fmt.Fprintln(os.Stderr, "stand-in netbird: recording call:", werr)
		return 3
	}

	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "status":
		name := standinDisconnected
		if _, err := os.Stat(filepath.Join(dir, standinJoined)); err == nil {
			name = standinConnected
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			fmt.Fprintln(os.Stderr, "stand-in netbird:", err)
			return 3
		}
		_, _ = os.Stdout.Write(data)
	case "up":
		raw, err := os.ReadFile(filepath.Join(dir, standinExpect))
		if err != nil {
			fmt.Fprintln(os.Stderr, "stand-in netbird:", err)
			return 3
		}
		var want standinWant
		if err := json.Unmarshal(raw, &want); err != nil {
			fmt.Fprintln(os.Stderr, "stand-in netbird:", err)
			return 3
		}
		if _, err := os.Stat(filepath.Join(dir, standinJoined)); err == nil {
			fmt.Println("Already connected")
			return 0
		}
		if standinKey(args) != want.SetupKey || flagValue(args, "--management-url") != want.ManagementURL {
			fmt.Fprintln(os.Stderr, "Error: login failed: invalid setup key or management URL")
			return 1
		}
		if err := os.WriteFile(filepath.Join(dir, standinJoined), nil, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "stand-in netbird:", err)
			return 3
		}
		fmt.Println("Connected")
	case "down":
		if err := os.Remove(filepath.Join(dir, standinJoined)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintln(os.Stderr, "stand-in netbird:", err)
			return 3
		}
		fmt.Println("Disconnected")
	case "version":
		fmt.Println("0.59.7")
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", cmd)
		return 2
	}
	return 0
}

// standinKey is the setup key as the real client gets it: the flag, else
// NB_SETUP_KEY, else the file named by --setup-key-file.
func standinKey(args []string) string {
	if k := flagValue(args, "--setup-key"); k != "" {
		return k
	}
	if k := os.Getenv("NB_SETUP_KEY"); k != "" {
		return k
	}
	if path := flagValue(args, "--setup-key-file"); path != "" {
		data, err := os.ReadFile(path)
		if err == nil {
			return strings.TrimSpace(string(data))
		}
	}
	return ""
}

// flagValue returns the value after name in args ("" when absent).
func flagValue(args []string, name string) string {
	if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// installNetbirdStandin links the test binary as <dir>/netbird beside the
// statuses a real v0.77.1 client prints (testdata/netbird) and what `up`
// must carry, and returns the link's path.
func installNetbirdStandin(t *testing.T, want standinWant) string {
	t.Helper()
	decode := func(name string) map[string]any {
		raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "netbird", name))
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		return m
	}

	// Connected, with every peer connected (an idle peer would make it
	// "degraded") and our management URL.
	connected := decode("status-0.77.1-connected.json")
	peers := connected["peers"].(map[string]any)
	details := peers["details"].([]any)
	for _, d := range details {
		d.(map[string]any)["status"] = "Connected"
	}
	peers["connected"] = len(details)
	connected["management"].(map[string]any)["url"] = want.ManagementURL

	// Before login: a fresh install starts in NeedsLogin.
	disconnected := decode("status-0.77.1-needslogin.json")
	disconnected["management"].(map[string]any)["url"] = want.ManagementURL

	dir := t.TempDir()
	for name, v := range map[string]any{standinConnected: connected, standinDisconnected: disconnected, standinExpect: want} {
		data, err := json.Marshal(v)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}
	self, err := os.Executable()
	require.NoError(t, err)
	bin := filepath.Join(dir, "netbird")
	require.NoError(t, os.Symlink(self, bin))
	return bin
}

// standinCallsOf returns the argv of the stand-in's calls of cmd.
func standinCallsOf(t *testing.T, bin, cmd string) [][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(bin), standinCalls))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	// Only whole lines: the stand-in may be writing one right now.
	text := string(data)
	text = text[:strings.LastIndex(text, "\n")+1]
	var out [][]string
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" {
			continue
		}
		var argv []string
		require.NoError(t, json.Unmarshal([]byte(line), &argv))
		if len(argv) > 0 && argv[0] == cmd {
			out = append(out, argv)
		}
	}
	return out
}

// hostNetBird is the NetBird part of a host view.
type hostNetBird struct {
	State      string `json:"state"`
	IP         string `json:"ip"`
	Error      string `json:"error"`
	Management *struct {
		PeerID    string `json:"peer_id"`
		Connected bool   `json:"connected"`
	} `json:"management"`
}

func (s *server) hostNetBird(tn tenant, host uuid.UUID) hostNetBird {
	s.t.Helper()
	var h struct {
		NetBird hostNetBird `json:"netbird"`
	}
	s.must(http.StatusOK, "GET", "/v1/hosts/"+host.String(), tn.key, nil).into(s.t, &h)
	return h.NetBird
}

// runWithNetBird starts `nkudo-agent run` with NetBird on, using bin.
func (a *agent) runWithNetBird(bin string) {
	a.t.Helper()
	a.proc = start(a.t, filepath.Join(a.dir, "agent.log"), nil, agentBin,
		"run", "--state-dir", a.stateDir, "--runtime-dir", a.runtime, "--hypervisor", "sim", "--image-dir", imagesDir, "--log-level", "debug",
		"--netbird-enabled", "--netbird-auto-join", "--netbird-bin", bin)
}

// TestNetBirdJoinThroughEnrollment: a token of a NetBird-enabled site
// mints a setup key (as many uses as the token) on a spec-validating
// NetBird Management stand-in; enrollment hands it to the agents; one
// joins with it through a stand-in `netbird` client and its host shows
// connected (with the management side from the server's peer list), the
// other, without a netbird binary, shows not-installed. The key is in no
// log of any process.
func TestNetBirdJoinThroughEnrollment(t *testing.T) {
	t.Parallel()
	const managementURL = "https://netbird.example.test:443"
	nb := nbtest.New(t)
	srv := &server{t: t, dir: t.TempDir(), addr: freeAddr(t), metricsAddr: freeAddr(t), env: []string{
		"NKUDO_NETBIRD_API_URL=" + nb.URL(),
		"NKUDO_NETBIRD_API_TOKEN=" + nbtest.Token,
		"NKUDO_NETBIRD_MANAGEMENT_URL=" + managementURL,
		// The NetBird state reaches the server in heartbeats. (The
		// harness sets NKUDO_HEARTBEAT_INTERVAL, which would win over
		// the older HEARTBEAT_INTERVAL.)
		"NKUDO_HEARTBEAT_INTERVAL=1s",
	}}
	srv.start()
	tn := srv.bootstrap("mesh")
	var site struct{ ID uuid.UUID }
	srv.must(http.StatusCreated, "POST", "/v1/sites", tn.key, map[string]any{
		"name": "mesh-edge", "netbird": map[string]any{"enabled": true, "groups": []string{"edge"}},
	}).into(t, &site)
	tn.site = site.ID

	token := srv.token(tn, 2)
	keys := nb.SetupKeys()
	require.Len(t, keys, 1, "one key per token")
	var minted nbtest.SetupKey
	for _, k := range keys {
		minted = k
	}
	require.Equal(t, 2, minted.UsageLimit, "every host the token enrolls can join")
	require.Equal(t, []string{"grp-edge"}, minted.AutoGroups)
	bin := installNetbirdStandin(t, standinWant{SetupKey: minted.Key, ManagementURL: managementURL})

	outputs := map[string]func() string{"server": srv.proc.output}
	enrollAgent := func(name string) *agent {
		ag := newAgent(t, srv)
		out, err := ag.enrollCmd(token, "--ca-file", srv.caFile())
		require.NoError(t, err, "%s", out)
		ag.loadIDs()
		outputs[name+" enroll"] = func() string { return out }
		st, err := os.Stat(filepath.Join(ag.stateDir, enroll.NetBirdSetupKeyFile))
		require.NoError(t, err, "enrollment stored the setup key")
		require.Equal(t, fs.FileMode(0o600), st.Mode().Perm())
		return ag
	}

	joined := enrollAgent("joined")
	joined.runWithNetBird(bin)
	outputs["joined agent"] = joined.proc.output
	absent := enrollAgent("absent")
	absent.runWithNetBird(filepath.Join(t.TempDir(), "netbird"))
	outputs["absent agent"] = absent.proc.output

	var nbState hostNetBird
	eventually(t, "host connected to netbird", func() bool {
		nbState = srv.hostNetBird(tn, joined.hostID)
		return nbState.State == agentproto.NetBirdConnected && nbState.Management != nil
	})
	require.Equal(t, "100.92.3.15", nbState.IP, "the overlay IP from `netbird status`")
	require.Equal(t, "peer-a", nbState.Management.PeerID, "matched by overlay IP in the server's peer list")
	eventually(t, "host reports netbird not-installed", func() bool {
		return srv.hostNetBird(tn, absent.hostID).State == agentproto.NetBirdNotInstalled
	})

	// Stop the agents so every line they would log is in their output.
	joined.stop()
	absent.stop()
	ups := standinCallsOf(t, bin, "up")
	require.Len(t, ups, 1, "up runs once: the peer stayed connected")
	require.GreaterOrEqual(t, len(ups[0]), 5, "%q", ups[0])
	// The key goes as a file, never on the command line (/proc/*/cmdline).
	require.Equal(t, []string{"up", "--setup-key-file", filepath.Join(joined.stateDir, enroll.NetBirdSetupKeyFile), "--management-url", managementURL}, ups[0][:5])
	require.NotContains(t, strings.Join(ups[0], " "), minted.Key)
	require.NotEmpty(t, standinCallsOf(t, bin, "status"))

	require.Contains(t, outputs["joined agent"](), "joining netbird mesh", "the agent logged its join")
	for name, output := range outputs {
		require.NotEmpty(t, output(), name)
		require.NotContains(t, output(), minted.Key, "the setup key is in the %s output", name)
	}
}
