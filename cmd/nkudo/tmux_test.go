package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestConsoleInTmux is the console's end-to-end test: the real nkudo
// binary runs `nkudo dev --no-tui` as a process, and the real TUI runs in
// a tmux pane on a private tmux server; the test types keys and reads the
// screen like an operator would.
func TestConsoleInTmux(t *testing.T) {
	tmuxBin, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed; the console's end-to-end test needs it (CI installs it)")
	}
	if testing.Short() {
		t.Skip("builds the nkudo binary and runs a dev stack; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nkudo")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building nkudo: %s", out)

	env := []string{
		"NKUDO_CONFIG=" + filepath.Join(dir, "config", "config.yaml"),
		"HOME=" + dir,
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg"),
	}
	startDev(t, bin, env, filepath.Join(dir, "data"))

	// A private tmux server: its own socket name and an empty config
	// apart from keeping the pane after its process exits, so the exit
	// status can be read.
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	tm := &tmuxServer{t: t, bin: tmuxBin, socket: "nkudo-test-" + hex.EncodeToString(suffix[:])}
	conf := filepath.Join(dir, "tmux.conf")
	require.NoError(t, os.WriteFile(conf, []byte("set -g remain-on-exit on\nset -g status off\n"), 0o600))
	t.Cleanup(func() { _ = exec.Command(tmuxBin, "-L", tm.socket, "kill-server").Run() })
	args := []string{"-f", conf, "new-session", "-d", "-s", "console", "-x", "120", "-y", "40"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	// The console's stderr goes to a file (the pane shows the TUI), so a
	// hang on exit can be diagnosed from a goroutine dump.
	// Its exit status is written by the pane's shell to a file: tmux's
	// own pane_dead_status is sometimes empty right after the pane dies.
	errFile := filepath.Join(dir, "console.stderr")
	exitFile := filepath.Join(dir, "console.exit")
	args = append(args, "-e", "GOTRACEBACK=all")
	tm.run(append(args, "sh", "-c", `"$0" 2>"$1"; echo $? >"$2.tmp" && mv "$2.tmp" "$2"`, bin, errFile, exitFile)...)

	// Sites: dev-site with both hosts online; the status line names the
	// context and its tenant.
	tm.waitScreen(`dev-site\s+2\s+2\s+0\b`, `dev │ dev │ ● connected`)
	// Drill in: both hosts run the simulated hypervisor.
	tm.keys("Enter")
	tm.waitScreen(`sites › dev-site`, `(?m)^[▶ ] dev-agent-1\s+online\b.*\bsimulated\b`, `(?m)^[▶ ] dev-agent-2\s+online\b.*\bsimulated\b`)

	// All VMs, then the create form: the site is implied, the host left
	// to the server.
	tm.text(":vms")
	tm.keys("Enter")
	tm.waitScreen(`n-kudo vms`)
	tm.text("n")
	tm.waitScreen(`Create VM`, `Site\s+dev-site`)
	tm.text("e2e-1")
	tm.keys("Enter", "Enter", "Enter", "Enter", "Enter")
	// The dev stack's image dir holds the sample image (README).
	tm.text(filepath.Join(dir, "data", "images", "alpine.raw"))
	tm.keys("Enter")
	tm.waitScreen(`created vm e2e-1 on dev-agent-[12] \(placed by the server\)`, `(?m)^[▶ ] e2e-1\s+running\s+running\b`)

	// Stop asks first, then the VM reaches stopped.
	tm.text("x")
	tm.waitScreen(`Stop VM e2e-1\?`)
	tm.text("y")
	tm.waitScreen(`(?m)^[▶ ] e2e-1\s+stopped\s+stopped\b`)

	// Help, and back.
	tm.text("?")
	tm.waitScreen(`new vm`, `stop vm`, `command`)
	tm.keys("Escape")
	tm.waitScreen(`(?m)^[▶ ] e2e-1\s+stopped`)

	// :q quits, and the console's process exits 0.
	tm.text(":q")
	tm.keys("Enter")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, err := os.ReadFile(exitFile); err == nil {
			require.Equal(t, "0", strings.TrimSpace(string(code)), "nkudo exit status; screen:\n%s\nstderr:\n%s", tm.screen(), readFile(errFile))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nkudo did not quit on :q; screen:\n%s\ngoroutines:\n%s", tm.screen(), readFile(errFile))
		}
		pause(t, 50*time.Millisecond)
	}
}

// startDev runs `nkudo dev --no-tui` until the test ends and returns once
// it printed that it is ready.
func startDev(t *testing.T, bin string, env []string, dataDir string) {
	t.Helper()
	var stdout, stderr lockedBuffer
	dev := exec.Command(bin, "dev", "--no-tui", "--agents", "2", "--data-dir", dataDir)
	dev.Env = append(os.Environ(), env...)
	dev.Stdout, dev.Stderr = &stdout, &stderr
	require.NoError(t, dev.Start())
	exited := make(chan error, 1)
	go func() { exited <- dev.Wait() }()
	t.Cleanup(func() {
		// Ctrl-C, as an operator stops it; killed if it hangs.
		_ = dev.Process.Signal(syscall.SIGINT)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("nkudo dev: %v; stderr:\n%s", err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			_ = dev.Process.Kill()
			<-exited
			t.Errorf("nkudo dev did not stop on SIGINT; stderr:\n%s", stderr.String())
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	for !strings.Contains(stdout.String(), "ready") {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("nkudo dev exited early (%v); stderr:\n%s", err, stderr.String())
		case <-ctx.Done():
			t.Fatalf("nkudo dev not ready: %v; stderr:\n%s", ctx.Err(), stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// tmuxServer drives one private tmux server.
type tmuxServer struct {
	t      *testing.T
	bin    string
	socket string
}

func (s *tmuxServer) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command(s.bin, append([]string{"-L", s.socket}, args...)...).CombinedOutput()
	require.NoError(s.t, err, "tmux %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// keys sends named keys (Enter, Escape…).
func (s *tmuxServer) keys(names ...string) {
	s.t.Helper()
	s.run(append([]string{"send-keys", "-t", "console"}, names...)...)
}

// text types literally.
func (s *tmuxServer) text(txt string) {
	s.t.Helper()
	s.run("send-keys", "-t", "console", "-l", txt)
}

func (s *tmuxServer) screen() string {
	s.t.Helper()
	return s.run("capture-pane", "-p", "-t", "console")
}

// waitScreen polls the pane until every pattern matches the same screen.
func (s *tmuxServer) waitScreen(patterns ...string) {
	s.t.Helper()
	res := make([]*regexp.Regexp, len(patterns))
	for i, p := range patterns {
		res[i] = regexp.MustCompile(p)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		scr := s.screen()
		missing := ""
		for _, re := range res {
			if !re.MatchString(scr) {
				missing = re.String()
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("screen never matched %q; last screen:\n%s", missing, scr)
		}
		pause(s.t, 50*time.Millisecond)
	}
}

// pause is the poll interval of the screen checks: a tick between two
// looks at the screen, not a wait for anything in particular.
func pause(t *testing.T, d time.Duration) {
	select {
	case <-t.Context().Done():
	case <-time.After(d):
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
