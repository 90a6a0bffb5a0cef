package cloudhypervisor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/kubedoio/n-kudo/internal/specfile"
	"github.com/kubedoio/n-kudo/internal/vmnet"
)

func TestMain(m *testing.M) {
	// Re-executed as the stand-in VMM through a symlink of that name.
	if filepath.Base(os.Args[0]) == BinaryName {
		os.Exit(standinMain(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// fakeNetwork is the kernel side of vmnet for tests without root: it keeps
// the TAPs that would exist, so leaks are visible.
type fakeNetwork struct {
	mu   sync.Mutex
	taps map[string]vmnet.TAP
}

func newFakeNetwork() *fakeNetwork { return &fakeNetwork{taps: map[string]vmnet.TAP{}} }

func (f *fakeNetwork) EnsureTAP(ctx context.Context, tap vmnet.TAP) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := vmnet.ValidName(tap.Name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.taps[tap.Name]; !ok {
		f.taps[tap.Name] = tap
	}
	return nil
}

func (f *fakeNetwork) DeleteTAP(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.taps, name)
	return nil
}

func (f *fakeNetwork) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.taps {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// harness is one test's stand-in VMM binary, runtime directory and images.
type harness struct {
	t          *testing.T
	binDir     string
	bin        string
	runtimeDir string
	net        *fakeNetwork
	image      []byte
	imagePath  string
	kernel     string
	firmware   string
	cfg        standinConfig
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	h := &harness{t: t, binDir: t.TempDir(), net: newFakeNetwork()}
	h.bin = filepath.Join(h.binDir, BinaryName)
	require.NoError(t, os.Symlink(exe, h.bin))
	h.cfg = standinConfig{SpecPath: specfile.Path(t, "cloud-hypervisor.yaml"), Version: "v48.0"}
	h.configure(func(*standinConfig) {})
	// Unix socket paths are short (108 bytes): keep the runtime dir near /.
	h.runtimeDir, err = os.MkdirTemp("", "chrt")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(h.runtimeDir) })

	// A sparse disk image: data, a hole, data.
	imgDir := t.TempDir()
	h.imagePath = filepath.Join(imgDir, "disk.img")
	f, err := os.Create(h.imagePath)
	require.NoError(t, err)
	_, err = f.WriteAt(bytes.Repeat([]byte("root-fs!"), 1024), 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("superblock-2"), 3<<20)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(4<<20))
	require.NoError(t, f.Close())
	h.image, err = os.ReadFile(h.imagePath)
	require.NoError(t, err)
	h.kernel = filepath.Join(imgDir, "vmlinux")
	require.NoError(t, os.WriteFile(h.kernel, []byte("kernel"), 0o600))
	h.firmware = filepath.Join(imgDir, "hypervisor-fw")
	require.NoError(t, os.WriteFile(h.firmware, []byte("firmware"), 0o600))

	t.Cleanup(h.killAll)
	t.Cleanup(func() {
		for _, c := range h.calls() {
			assert.Empty(t, c.ValidationError, "stand-in rejected %s %s", c.Method, c.Path)
		}
	})
	return h
}

// configure rewrites standin.json; VMMs started afterwards read it.
func (h *harness) configure(f func(*standinConfig)) {
	f(&h.cfg)
	b, err := json.Marshal(h.cfg)
	require.NoError(h.t, err)
	require.NoError(h.t, os.WriteFile(filepath.Join(h.binDir, standinConfigFile), b, 0o600))
}

// standinWait bounds the waits on a stand-in VMM: it is a race-built Go
// binary, and on a loaded machine starting it and opening its socket can
// take longer than a real VMM ever does (10 s was seen to be too short).
const standinWait = time.Minute

func (h *harness) options() Options {
	return Options{
		Binary:     h.bin,
		RuntimeDir: h.runtimeDir,
		Firmware:   h.firmware,
		Network:    h.net,
		Logger:     slog.New(slog.NewTextHandler(h.t.Output(), nil)),
		// Generous (see standinWait). Tests that expect a timeout to fire
		// set a short one themselves.
		BootTimeout:     standinWait,
		SocketTimeout:   standinWait,
		ShutdownTimeout: standinWait,
	}
}

func (h *harness) provider() *Provider {
	h.t.Helper()
	p, err := New(h.options())
	require.NoError(h.t, err)
	h.t.Cleanup(func() { _ = p.Close() })
	return p
}

func (h *harness) calls() []standinCall {
	f, err := os.Open(filepath.Join(h.binDir, standinCallsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(h.t, err)
	defer f.Close()
	var out []standinCall
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var c standinCall
		require.NoError(h.t, json.Unmarshal(sc.Bytes(), &c))
		out = append(out, c)
	}
	require.NoError(h.t, sc.Err())
	return out
}

// pids lists every stand-in VMM this test started.
func (h *harness) pids() []int {
	b, err := os.ReadFile(filepath.Join(h.binDir, standinPIDsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(h.t, err)
	var out []int
	for _, l := range bytes.Fields(b) {
		pid, err := strconv.Atoi(string(l))
		require.NoError(h.t, err)
		out = append(out, pid)
	}
	return out
}

// ours reports whether pid is still one of this test's stand-ins (and not
// a reaped zombie or a reused pid).
func (h *harness) ours(pid int) bool {
	cmd, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !bytes.HasPrefix(cmd, []byte(h.bin+"\x00")) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

// alive lists this test's stand-ins that are still running.
func (h *harness) alive() []int {
	var out []int
	for _, pid := range h.pids() {
		if h.ours(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// killAll kills and reaps every stand-in this test started, so no test
// leaves a process behind whatever it asserted.
func (h *harness) killAll() {
	for _, pid := range h.pids() {
		if h.ours(pid) {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil) // reap; ECHILD when already reaped
	}
}
