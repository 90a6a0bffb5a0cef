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

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// The test binary doubles as a stand-in `netbird` executable: tests
// symlink it as <dir>/netbird and the CLI runs that link. Its behaviour
// comes from <dir>/fake.json, so parallel tests never share one.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "netbird" {
		os.Exit(fakeNetbird(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// Stand-in behaviours.
const (
	modeOK         = ""            // answer normally
	modeDaemonDown = "daemon-down" // exit 1 with netbird's message
	modeMalformed  = "malformed"   // print broken JSON
	modeHang       = "hang"        // never answer
	modeFail       = "fail"        // exit 1, echoing the arguments (and so the key)
)

type fakeConfig struct {
	// Status is printed by `status --json`.
	Status string `json:"status"`
	// StatusAfterUp, when set, is printed instead once an `up` succeeded.
	StatusAfterUp string `json:"status_after_up"`
	StatusMode    string `json:"status_mode"`
	UpMode        string `json:"up_mode"`
	Version       string `json:"version"`
}

const (
	fakeConfigName = "fake.json"
	fakeCallsName  = "calls.log"
	fakeUpDoneName = "up.done"
)

// netbird's own message when its daemon is not reachable.
const daemonDownMessage = "failed to connect to daemon error: context deadline exceeded\nIf the daemon is not running please run: \nnetbird service install \nnetbird service start\n"

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
	f, err := os.OpenFile(filepath.Join(dir, fakeCallsName), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake netbird: recording call:", err)
		return 3
	}
	_, _ = f.Write(append(line, '\n'))
	_ = f.Close()

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
		fmt.Fprint(os.Stderr, daemonDownMessage)
		return 1
	case modeHang:
		// Block until killed; the CLI's timeout must end this.
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		<-ch
		return 1
	case modeFail:
		fmt.Fprintf(os.Stderr, "Error: login failed with arguments %s: invalid setup key\n", strings.Join(args, " "))
		return 1
	}

	switch cmd {
	case "status":
		if mode == modeMalformed {
			fmt.Print(`{"peers": {"total": 2,`)
			return 0
		}
		out := cfg.Status
		if _, err := os.Stat(filepath.Join(dir, fakeUpDoneName)); err == nil && cfg.StatusAfterUp != "" {
			out = cfg.StatusAfterUp
		}
		fmt.Print(out)
	case "up":
		if err := os.WriteFile(filepath.Join(dir, fakeUpDoneName), nil, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "fake netbird:", err)
			return 3
		}
		fmt.Println("Connected")
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
