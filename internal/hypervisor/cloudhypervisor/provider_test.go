package cloudhypervisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/kubedoio/n-kudo/internal/agent/statefile"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/hypervisor/cloudhypervisor/standin"
	"github.com/kubedoio/n-kudo/internal/vmnet"
)

func (h *harness) spec(name string) hypervisor.VMSpec {
	return hypervisor.VMSpec{ID: uuid.New(), Name: name, VCPUs: 2, MemoryMiB: 256, Kernel: h.kernel, DiskImage: h.imagePath,
		CloudInit: hypervisor.CloudInit{UserData: "#cloud-config\nruncmd: [echo hi]\n"}}
}

func requireState(t *testing.T, p *Provider, id uuid.UUID, want hypervisor.State) hypervisor.VMState {
	t.Helper()
	st, err := p.State(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, want, st.State, "vm %s: %s", id, st.Error)
	return st
}

// requireClean checks that nothing of the VM is left on the host.
func (h *harness) requireClean(t *testing.T, id uuid.UUID) {
	t.Helper()
	assert.NotContains(t, h.net.names(), vmnet.TAPName(id), "tap left behind")
	assert.Empty(t, h.alive(), "vmm processes left behind")
	_, err := os.Stat(filepath.Join(h.runtimeDir, id.String()))
	assert.ErrorIs(t, err, os.ErrNotExist, "runtime dir left behind")
}

// standinModes are the VMM behaviours the provider is tested against:
// Cloud Hypervisor's code before and from v53, and the API document.
var standinModes = []struct {
	name    string
	version string
	mode    string
}{
	{"real-v48", "v48.0", standin.ModeReal},
	{"real-v53", "v53.0", standin.ModeReal},
	{"openapi", "v48.0", standin.ModeOpenAPI},
}

// newModeHarness is a harness whose stand-in plays one of standinModes.
func newModeHarness(t *testing.T, version, mode string) *harness {
	t.Helper()
	h := newHarness(t)
	h.configure(func(c *standinConfig) { c.Version, c.Mode = version, mode })
	return h
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	eachMode(t, testLifecycle)
}

func testLifecycle(t *testing.T, h *harness, mode string) {
	p := h.provider()
	ctx := context.Background()

	caps, err := p.Capabilities(ctx)
	require.NoError(t, err)
	assert.Equal(t, hypervisor.Capabilities{Kind: "cloud-hypervisor", Version: h.cfg.Version, PauseResume: true, Reboot: true}, caps)
	assert.Equal(t, hypervisor.KindCloudHypervisor, p.Name())

	spec := h.spec("web_1")
	id := spec.ID
	for range 2 {
		require.NoError(t, p.Create(ctx, spec))
	}
	requireState(t, p, id, hypervisor.StateStopped)
	assert.Equal(t, []string{vmnet.TAPName(id)}, h.net.names())
	require.Len(t, h.alive(), 1, "one vmm per vm, reused by the repeated create")

	paths := PathsFor(h.runtimeDir, id, h.firmware)
	for _, f := range []string{paths.APISocket, paths.PIDFile, paths.Disk, paths.Seed, paths.SpecFile, paths.StateFile, paths.VMMLog} {
		_, err := os.Stat(f)
		require.NoError(t, err, f)
	}
	disk, err := os.ReadFile(paths.Disk)
	require.NoError(t, err)
	assert.Equal(t, h.image, disk, "the disk copy matches the image")
	var gotSpec hypervisor.VMSpec
	require.NoError(t, statefile.Read(paths.SpecFile, &gotSpec))
	assert.Equal(t, spec, gotSpec)
	pid, err := readPID(paths.PIDFile)
	require.NoError(t, err)
	assert.Equal(t, h.alive(), []int{pid})

	different := spec
	different.VCPUs = 4
	require.ErrorIs(t, p.Create(ctx, different), hypervisor.ErrAlreadyExists)

	steps := []struct {
		name string
		op   func(context.Context, uuid.UUID) error
		want hypervisor.State
		err  error
	}{
		{"reboot stopped", p.Reboot, hypervisor.StateStopped, hypervisor.ErrInvalidTransition},
		{"pause stopped", p.Pause, hypervisor.StateStopped, hypervisor.ErrInvalidTransition},
		{"resume stopped", p.Resume, hypervisor.StateStopped, hypervisor.ErrInvalidTransition},
		{"stop stopped", p.Stop, hypervisor.StateStopped, nil},
		{"start", p.Start, hypervisor.StateRunning, nil},
		{"start again", p.Start, hypervisor.StateRunning, nil},
		{"resume running", p.Resume, hypervisor.StateRunning, nil},
		{"pause", p.Pause, hypervisor.StatePaused, nil},
		{"pause again", p.Pause, hypervisor.StatePaused, nil},
		{"start paused", p.Start, hypervisor.StatePaused, hypervisor.ErrInvalidTransition},
		{"reboot paused", p.Reboot, hypervisor.StatePaused, hypervisor.ErrInvalidTransition},
		{"resume", p.Resume, hypervisor.StateRunning, nil},
		{"resume again", p.Resume, hypervisor.StateRunning, nil},
		{"reboot", p.Reboot, hypervisor.StateRunning, nil},
		{"reboot again", p.Reboot, hypervisor.StateRunning, nil},
		{"stop", p.Stop, hypervisor.StateStopped, nil},
		{"stop again", p.Stop, hypervisor.StateStopped, nil},
		{"start after stop", p.Start, hypervisor.StateRunning, nil},
		{"pause before stop", p.Pause, hypervisor.StatePaused, nil},
		{"stop paused", p.Stop, hypervisor.StateStopped, nil},
	}
	for _, s := range steps {
		err := s.op(ctx, id)
		if s.err != nil {
			require.ErrorIs(t, err, s.err, s.name)
		} else {
			require.NoError(t, err, s.name)
		}
		requireState(t, p, id, s.want)
	}
	// The VMM truncates the serial file at each create, boot after a
	// shutdown and reboot; the history is kept in rotated files.
	console := h.consoleHistory(t, paths)
	assert.Contains(t, console, "login:")
	assert.Contains(t, console, "Restarting system")
	assert.Contains(t, console, "Power down")

	for range 2 {
		require.NoError(t, p.Delete(ctx, id))
	}
	requireState(t, p, id, hypervisor.StateDeleted)
	h.requireClean(t, id)
	for _, op := range []func(context.Context, uuid.UUID) error{p.Start, p.Stop, p.Reboot, p.Pause, p.Resume} {
		require.ErrorIs(t, op(ctx, id), hypervisor.ErrInvalidTransition)
	}
	require.ErrorIs(t, p.Create(ctx, spec), hypervisor.ErrInvalidTransition)
	list, err := p.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []hypervisor.VMState{{ID: id, State: hypervisor.StateDeleted}}, list)

	// What the VMM saw: a boot per start; the no-ops and invalid
	// transitions never reached it. A running VM is stopped through the
	// power button; the real VMM then exits with the guest, so the next
	// start defines the VM in a new VMM; a VMM that follows the document
	// keeps it. A paused VM is stopped hard.
	restart := []string{"/vm.create", "/vm.boot"}
	if mode == standin.ModeOpenAPI {
		restart = []string{"/vm.boot"}
	}
	want := append([]string{"/vm.create", "/vm.boot", "/vm.pause", "/vm.resume", "/vm.reboot", "/vm.reboot", "/vm.power-button"}, restart...)
	want = append(want, "/vm.pause", "/vm.shutdown", "/vm.delete", "/vmm.shutdown")
	assert.Equal(t, want, h.mutatingCalls())
}

// mutatingCalls lists the PUT calls the stand-ins served, in order.
func (h *harness) mutatingCalls() []string {
	var out []string
	for _, c := range h.calls() {
		if c.Method == "PUT" {
			out = append(out, strings.TrimPrefix(c.Path, "/api/v1"))
		}
	}
	return out
}

// consoleHistory is the VM's console log with its rotated predecessors,
// oldest first; there are never more than MaxConsoleLogs of those.
func (h *harness) consoleHistory(t *testing.T, paths Paths) string {
	t.Helper()
	var b strings.Builder
	for i := MaxConsoleLogs + 1; i >= 0; i-- {
		name := paths.ConsoleLog
		if i > 0 {
			name = fmt.Sprintf("%s.%d", paths.ConsoleLog, i)
		}
		data, err := os.ReadFile(name)
		if i > MaxConsoleLogs {
			require.ErrorIs(t, err, os.ErrNotExist, "more than %d old console logs", MaxConsoleLogs)
			continue
		}
		if err == nil {
			b.Write(data)
		}
	}
	return b.String()
}

func TestUnknownVM(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.provider()
	ctx := context.Background()
	id := uuid.New()
	for _, op := range []func(context.Context, uuid.UUID) error{p.Start, p.Stop, p.Reboot, p.Pause, p.Resume} {
		require.ErrorIs(t, op(ctx, id), hypervisor.ErrNotFound)
	}
	_, err := p.State(ctx, id)
	require.ErrorIs(t, err, hypervisor.ErrNotFound)
	require.NoError(t, p.Delete(ctx, id))
	require.ErrorIs(t, p.Create(ctx, hypervisor.VMSpec{ID: id, Name: "x"}), hypervisor.ErrInvalidSpec)
	assert.Empty(t, h.pids(), "nothing started for bad input")
}

func TestReadoption(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	p1 := h.provider()
	running, stopped, crashed := h.spec("running"), h.spec("stopped"), h.spec("crashed")
	for _, s := range []hypervisor.VMSpec{running, stopped, crashed} {
		require.NoError(t, p1.Create(ctx, s))
	}
	require.NoError(t, p1.Start(ctx, running.ID))
	require.NoError(t, p1.Start(ctx, crashed.ID))
	pidOf := func(id uuid.UUID) int {
		pid, err := readPID(PathsFor(h.runtimeDir, id, "").PIDFile)
		require.NoError(t, err)
		return pid
	}
	runningPID := pidOf(running.ID)
	require.NoError(t, p1.Close())

	// The agent is gone; one VMM dies meanwhile, another is shut down with
	// its VM stopped on purpose earlier.
	require.NoError(t, unix.Kill(pidOf(crashed.ID), unix.SIGKILL))
	require.NoError(t, unix.Kill(pidOf(stopped.ID), unix.SIGKILL))
	h.waitDead(pidOf(crashed.ID), pidOf(stopped.ID))

	p2 := h.provider()
	st := requireState(t, p2, running.ID, hypervisor.StateRunning)
	assert.Empty(t, st.Error)
	assert.Equal(t, runningPID, pidOf(running.ID), "re-adopted, not restarted")
	st = requireState(t, p2, crashed.ID, hypervisor.StateFailed)
	assert.Contains(t, st.Error, fmt.Sprintf("vmm process %d ", pidOf(crashed.ID)))
	requireState(t, p2, stopped.ID, hypervisor.StateStopped)

	list, err := p2.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 3)

	// The adopted VM is fully driven by the new provider.
	require.NoError(t, p2.Pause(ctx, running.ID))
	requireState(t, p2, running.ID, hypervisor.StatePaused)
	// A VM whose VMM died is started again with a new VMM.
	require.NoError(t, p2.Start(ctx, stopped.ID))
	requireState(t, p2, stopped.ID, hypervisor.StateRunning)
	require.NoError(t, p2.Start(ctx, crashed.ID))
	requireState(t, p2, crashed.ID, hypervisor.StateRunning)

	for _, s := range []hypervisor.VMSpec{running, stopped, crashed} {
		require.NoError(t, p2.Delete(ctx, s.ID))
		h.requireCleanDir(t, s.ID)
	}
	assert.Empty(t, h.alive())
	assert.Empty(t, h.net.names())

	// Tombstones survive a restart too.
	p3 := h.provider()
	requireState(t, p3, running.ID, hypervisor.StateDeleted)
	require.ErrorIs(t, p3.Create(ctx, running), hypervisor.ErrInvalidTransition)
}

func (h *harness) requireCleanDir(t *testing.T, id uuid.UUID) {
	t.Helper()
	_, err := os.Stat(filepath.Join(h.runtimeDir, id.String()))
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.NotContains(t, h.net.names(), vmnet.TAPName(id))
}

func TestCreateFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		standin func(*standinConfig)
		spec    func(*harness, *hypervisor.VMSpec)
		err     error
		msg     string
	}{
		{
			name: "disk image missing",
			spec: func(h *harness, s *hypervisor.VMSpec) { s.DiskImage = filepath.Join(h.binDir, "missing.img") },
			err:  hypervisor.ErrInvalidSpec, msg: "missing.img",
		},
		{
			name: "kernel missing",
			spec: func(h *harness, s *hypervisor.VMSpec) { s.Kernel = filepath.Join(h.binDir, "vmlinux-missing") },
			err:  hypervisor.ErrInvalidSpec, msg: "vmlinux-missing",
		},
		{
			name:    "socket never appears",
			standin: func(c *standinConfig) { c.NoSocket = true },
			err:     ErrVMM, msg: "did not appear",
		},
		{
			name:    "vmm crashes on vm.create",
			standin: func(c *standinConfig) { c.CrashOn = "/vm.create" },
			err:     ErrVMM, msg: "exited with status 3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if tt.standin != nil {
				h.configure(tt.standin)
			}
			opts := h.options()
			if tt.err == ErrVMM && tt.msg == "did not appear" {
				opts.SocketTimeout = 2 * time.Second // waited for in full
			}
			p, err := New(opts)
			require.NoError(t, err)
			t.Cleanup(func() { _ = p.Close() })
			ctx := context.Background()
			spec := h.spec("bad")
			if tt.spec != nil {
				tt.spec(h, &spec)
			}
			err = p.Create(ctx, spec)
			require.ErrorIs(t, err, tt.err)
			assert.Contains(t, err.Error(), tt.msg)
			st := requireState(t, p, spec.ID, hypervisor.StateFailed)
			assert.Contains(t, st.Error, tt.msg)
			h.requireClean(t, spec.ID)

			// Fixed, the same create succeeds (given the usual time to
			// start a VMM: a loaded machine needs more than 2s).
			h.configure(func(c *standinConfig) { c.NoSocket, c.CrashOn = false, "" })
			if tt.spec != nil {
				return // a different spec under the same id is refused
			}
			p.sock = h.options().SocketTimeout
			require.NoError(t, p.Create(ctx, spec))
			requireState(t, p, spec.ID, hypervisor.StateStopped)
			require.NoError(t, p.Delete(ctx, spec.ID))
			h.requireClean(t, spec.ID)
		})
	}
}

func TestCrashDuringBoot(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.configure(func(c *standinConfig) { c.CrashOn = "/vm.boot" })
	p := h.provider()
	ctx := context.Background()
	spec := h.spec("crashy")
	require.NoError(t, p.Create(ctx, spec))
	err := p.Start(ctx, spec.ID)
	require.ErrorIs(t, err, ErrVMM)
	assert.Contains(t, err.Error(), "exited with status 3")
	st := requireState(t, p, spec.ID, hypervisor.StateFailed)
	assert.Contains(t, st.Error, "exited with status 3")
	assert.Empty(t, h.alive())
	require.ErrorIs(t, p.Pause(ctx, spec.ID), hypervisor.ErrInvalidTransition)

	// Start of a failed VM retries with a new VMM.
	h.configure(func(c *standinConfig) { c.CrashOn = "" })
	require.NoError(t, p.Start(ctx, spec.ID))
	requireState(t, p, spec.ID, hypervisor.StateRunning)
	require.NoError(t, p.Delete(ctx, spec.ID))
	h.requireClean(t, spec.ID)
}

func TestStopFailedVM(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.provider()
	ctx := context.Background()
	spec := h.spec("tidy")
	require.NoError(t, p.Create(ctx, spec))
	require.NoError(t, p.Start(ctx, spec.ID))
	alive := h.alive()
	for _, pid := range alive {
		require.NoError(t, unix.Kill(pid, unix.SIGKILL))
	}
	h.waitDead(alive...)
	st := requireState(t, p, spec.ID, hypervisor.StateFailed)
	assert.Contains(t, st.Error, "killed by SIGKILL")
	require.NoError(t, p.Stop(ctx, spec.ID))
	requireState(t, p, spec.ID, hypervisor.StateStopped)
	require.NoError(t, p.Delete(ctx, spec.ID))
	h.requireClean(t, spec.ID)
}

// waitDead waits until the killed stand-ins have died (are zombies or
// gone), without reaping them: the provider reaps its children when it
// probes them and learns how they ended.
func (h *harness) waitDead(pids ...int) {
	h.t.Helper()
	deadline := time.Now().Add(standinWait)
	for _, pid := range pids {
		for h.ours(pid) {
			require.True(h.t, time.Now().Before(deadline), "stand-in %d did not die", pid)
			runtime.Gosched()
		}
	}
}

func TestCreateInterruptedByAgentCrash(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	spec := h.spec("halfway")
	// What an agent that died during the disk copy leaves behind.
	paths := PathsFor(h.runtimeDir, spec.ID, h.firmware)
	require.NoError(t, os.MkdirAll(paths.Dir, 0o700))
	require.NoError(t, statefile.Write(paths.StateFile, record{Version: recordVersion, Spec: spec, State: hypervisor.StateCreating,
		TAP: vmnet.TAPName(spec.ID), MAC: MACOf(spec)}))
	require.NoError(t, os.WriteFile(paths.Disk+".part", []byte("torn"), 0o600))
	// And a directory from a crash before its state was written.
	orphan := filepath.Join(h.runtimeDir, uuid.NewString())
	require.NoError(t, os.MkdirAll(orphan, 0o700))

	p := h.provider()
	requireState(t, p, spec.ID, hypervisor.StateCreating)
	_, err := os.Stat(orphan)
	require.ErrorIs(t, err, os.ErrNotExist, "stateless directory removed")
	require.ErrorIs(t, p.Start(ctx, spec.ID), hypervisor.ErrInvalidTransition)

	require.NoError(t, p.Create(ctx, spec))
	requireState(t, p, spec.ID, hypervisor.StateStopped)
	disk, err := os.ReadFile(paths.Disk)
	require.NoError(t, err)
	assert.Equal(t, h.image, disk)
	_, err = os.Stat(paths.Disk + ".part")
	require.ErrorIs(t, err, os.ErrNotExist)
	require.NoError(t, p.Delete(ctx, spec.ID))
	h.requireClean(t, spec.ID)
}

func TestFirmwareBoot(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	spec := h.spec("fw")
	spec.Kernel = ""
	opts := h.options()
	opts.Firmware = ""
	p0, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p0.Close() })
	err = p0.Create(ctx, spec)
	require.ErrorIs(t, err, hypervisor.ErrInvalidSpec)
	assert.Contains(t, err.Error(), "no firmware")
	require.NoError(t, p0.Delete(ctx, spec.ID))
	require.NoError(t, p0.Close())

	spec.ID = uuid.New()
	p := h.provider()
	require.NoError(t, p.Create(ctx, spec))
	require.NoError(t, p.Start(ctx, spec.ID))
	requireState(t, p, spec.ID, hypervisor.StateRunning)
	require.NoError(t, p.Delete(ctx, spec.ID))
	h.requireClean(t, spec.ID)
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tests := []struct {
		name   string
		mutate func(*Options)
		err    error
	}{
		{"missing binary", func(o *Options) { o.Binary = filepath.Join(h.binDir, "nope") }, ErrNoBinary},
		{"relative runtime dir", func(o *Options) { o.RuntimeDir = "vms" }, ErrBadRuntimeDir},
		{"runtime dir with a comma", func(o *Options) { o.RuntimeDir = "/tmp/a,b" }, ErrBadRuntimeDir},
		{"runtime dir too long for sockets", func(o *Options) { o.RuntimeDir = "/" + strings.Repeat("d", 80) }, ErrBadRuntimeDir},
	}
	for _, tt := range tests {
		opts := h.options()
		tt.mutate(&opts)
		_, err := New(opts)
		require.ErrorIs(t, err, tt.err, tt.name)
	}
}
