package netbird

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// The test binary doubles as a stand-in `netbird` executable: tests
// symlink it as <dir>/netbird and the CLI runs that link. Its behaviour
// comes from <dir>/fake.json, so parallel tests never share one.
//
// It answers as the real client does (netbirdio/netbird, read at v0.77.1
// and older tags where behaviour changed):
//   - `status --json` prints what the test configured, which tests take
//     from testdata/netbird: real clients' output, JSON or (before
//     v0.67.0, while not logged in) plain text with exit 0
//     (client/cmd/status.go).
//   - With the daemon down the CLI blocks dialling its socket, then says
//     "failed to connect to daemon error: …" and exits 1
//     (client/cmd/root.go DialClientGRPCServer, client/cmd/status.go).
//   - `up` with the daemon Connected prints "Already connected" and exits
//     0, ignoring key and URL (client/cmd/up.go runInDaemonMode).
//   - `up` takes the key from --setup-key, --setup-key-file (v0.29.3+,
//     mutually exclusive with --setup-key) or NB_SETUP_KEY / WT_SETUP_KEY
//     (root.go SetFlagsFromEnvVars, getSetupKey); it records the key it got
//     in <dir>/up-key.json for the test.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "netbird" {
		os.Exit(fakeNetbird(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// Stand-in behaviours.
const (
	modeOK         = ""            // answer normally
	modeDaemonDown = "daemon-down" // block DialDelayMS, then exit 1 with netbird's message
	modeMalformed  = "malformed"   // print broken JSON
	modeHang       = "hang"        // never answer
	modeFail       = "fail"        // exit 1, echoing the key it was given
)

type fakeConfig struct {
	// Status is printed by `status --json`.
	Status string `json:"status"`
	// StatusAfterUp, when set, is printed instead once an `up` succeeded.
	StatusAfterUp string `json:"status_after_up"`
	// Daemon is the daemon's state `up` sees; empty: the state Status
	// names (JSON without daemonStatus, from clients before v0.67.0, is
	// printed only once logged in: Idle).
	Daemon     string `json:"daemon"`
	StatusMode string `json:"status_mode"`
	UpMode     string `json:"up_mode"`
	// Version is the client's version, printed by `version`; empty
	// prints nothing and behaves as the newest client.
	Version string `json:"version"`
	// DialDelayMS is how long a command blocks dialling a stopped daemon.
	DialDelayMS int `json:"dial_delay_ms"`
}

const (
	fakeConfigName = "fake.json"
	fakeCallsName  = "calls.log"
	fakeUpDoneName = "up.done"
	fakeUpKeyName  = "up-key.json"
)

// netbird's own message when its daemon is not reachable.
const daemonDownMessage = "failed to connect to daemon error: context deadline exceeded\nIf the daemon is not running please run: \nnetbird service install \nnetbird service start\n"

// fakeUpKey is what `up` recorded about the key it was given.
type fakeUpKey struct {
	Key    string `json:"key"`
	Source string `json:"source"` // flag, file or env
}

func fakeNetbird(args []string) int {
	dir := filepath.Dir(os.Args[0])
	var cfg fakeConfig
	data, err := os.ReadFile(filepath.Join(dir, fakeConfigName))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake netbird: reading config:", err)
		return 3
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "fake netbird: parsing config:", err)
		return 3
	}
	line, _ := json.Marshal(args)
	if err := appendFile(filepath.Join(dir, fakeCallsName), append(line, '\n')); err != nil {
		fmt.Fprintln(os.Stderr, "fake netbird: recording call:", err)
		return 3
	}
	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	mode := cfg.StatusMode
	if cmd == "up" {
		mode = cfg.UpMode
	}
	switch mode {
	case modeDaemonDown:
		time.Sleep(time.Duration(cfg.DialDelayMS) * time.Millisecond) // the CLI's own dial timeout
		fmt.Fprint(os.Stderr, daemonDownMessage)
		return 1
	case modeHang:
		// Block until killed; the CLI's timeout must end this.
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		<-ch
		return 1
	}
	switch cmd {
	case "status":
		return fakeStatus(dir, cfg, mode)
	case "up":
		return fakeUp(dir, cfg, args[1:], mode)
	case "down":
		fmt.Println("Disconnected")
	case "version":
		fmt.Println(cfg.Version)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", cmd)
		return 2
	}
	return 0
}

func appendFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func fakeStatus(dir string, cfg fakeConfig, mode string) int {
	if mode == modeMalformed {
		fmt.Print(`{"peers": {"total": 2,`)
		return 0
	}
	fmt.Print(fakeCurrentStatus(dir, cfg))
	return 0
}

func fakeCurrentStatus(dir string, cfg fakeConfig) string {
	if _, err := os.Stat(filepath.Join(dir, fakeUpDoneName)); err == nil && cfg.StatusAfterUp != "" {
		return cfg.StatusAfterUp
	}
	return cfg.Status
}

// fakeDaemonState is the daemon state the configured status shows.
func fakeDaemonState(dir string, cfg fakeConfig) string {
	if cfg.Daemon != "" {
		return cfg.Daemon
	}
	out := fakeCurrentStatus(dir, cfg)
	if rest, ok := strings.CutPrefix(out, "Daemon status: "); ok {
		state, _, _ := strings.Cut(rest, "\n")
		return state
	}
	var st struct {
		DaemonStatus string `json:"daemonStatus"`
	}
	if json.Unmarshal([]byte(out), &st) == nil && st.DaemonStatus != "" {
		return st.DaemonStatus
	}
	return DaemonIdle
}

// fakeUp is up.go's runInDaemonMode: flags, "Already connected", the key
// from flag, file or environment, login.
func fakeUp(dir string, cfg fakeConfig, args []string, mode string) int {
	flag, file := flagValue(args, "--setup-key"), flagValue(args, "--setup-key-file")
	if file != "" && versionBefore(cfg.Version, "0.29.3") {
		fmt.Fprintln(os.Stderr, "Error: unknown flag: --setup-key-file")
		return 1
	}
	if flag != "" && file != "" {
		fmt.Fprintln(os.Stderr, "Error: if any flags in the group [setup-key setup-key-file] are set none of the others can be; [setup-key setup-key-file] were all set")
		return 1
	}
	if fakeDaemonState(dir, cfg) == DaemonConnected {
		fmt.Println("Already connected")
		return 0
	}
	got := fakeUpKey{Key: flag, Source: "flag"}
	switch {
	case flag != "":
	case os.Getenv("NB_SETUP_KEY") != "":
		got = fakeUpKey{Key: os.Getenv("NB_SETUP_KEY"), Source: "env"}
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "Error: get setup key: failed to read setup key file: %v\n", err)
			return 1
		}
		got = fakeUpKey{Key: strings.TrimSpace(string(data)), Source: "file"}
	}
	rec, _ := json.Marshal(got)
	if err := os.WriteFile(filepath.Join(dir, fakeUpKeyName), rec, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "fake netbird:", err)
		return 3
	}
	if mode == modeFail {
		fmt.Fprintf(os.Stderr, "Error: daemon up failed: login failed: invalid setup key %s\n", got.Key)
		return 1
	}
	if err := os.WriteFile(filepath.Join(dir, fakeUpDoneName), nil, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "fake netbird:", err)
		return 3
	}
	fmt.Println("Connected")
	return 0
}

// flagValue returns the value after name in args ("" when absent).
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// versionBefore compares dotted versions numerically; an empty v is the
// newest.
func versionBefore(v, than string) bool {
	if v == "" {
		return false
	}
	a, b := strings.Split(v, "."), strings.Split(than, ".")
	for i := range max(len(a), len(b)) {
		var x, y int
		if i < len(a) {
			_, _ = fmt.Sscan(a[i], &x)
		}
		if i < len(b) {
			_, _ = fmt.Sscan(b[i], &y)
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// fakeBin installs the stand-in in a fresh directory with cfg and returns
// the path of the `netbird` link.
func fakeBin(t *testing.T, cfg fakeConfig) string {
	t.Helper()
	dir := t.TempDir()
	self, err := os.Executable()
	require.NoError(t, err)
	bin := filepath.Join(dir, "netbird")
	require.NoError(t, os.Symlink(self, bin))
	data, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, fakeConfigName), data, 0o600))
	return bin
}

// fakeKeyReceived returns what the stand-in at bin recorded about the
// key its `up` was given.
func fakeKeyReceived(t *testing.T, bin string) fakeUpKey {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(bin), fakeUpKeyName))
	require.NoError(t, err)
	var got fakeUpKey
	require.NoError(t, json.Unmarshal(data, &got))
	return got
}

// fixture reads a real client's `netbird status --json` output from the
// repository's testdata/netbird.
func fixture(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "netbird", name))
	require.NoError(t, err)
	return string(data)
}

// fakeCalls returns the argv of every call the stand-in at bin received.
func fakeCalls(t *testing.T, bin string) [][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(bin), fakeCallsName))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	// Only whole lines: the stand-in may be writing its record right now.
	text := string(data)
	text = text[:strings.LastIndex(text, "\n")+1]
	var calls [][]string
	for _, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		var argv []string
		require.NoError(t, json.Unmarshal([]byte(line), &argv))
		calls = append(calls, argv)
	}
	return calls
}

// callsOf filters calls by subcommand.
func callsOf(calls [][]string, cmd string) [][]string {
	var out [][]string
	for _, c := range calls {
		if len(c) > 0 && c[0] == cmd {
			out = append(out, c)
		}
	}
	return out
}
