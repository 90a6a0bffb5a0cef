package cloudhypervisor

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/hypervisor/cloudhypervisor/standin"
	"github.com/kubedoio/n-kudo/internal/vmnet"
)

func TestIsNotCreated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   bool
	}{
		{"document: 404", 404, "", true},
		{"v53: 404 with the chain", 404, `["Error from API","The VM info is not available","VM is not created"]`, true},
		{"v48-v52: 500 with the chain", 500, `["Error from API","The VM info is not available","VM is not created"]`, true},
		{"boot without config", 500, `["Error from API","The VM could not boot","VM config is missing"]`, true},
		{"debug-printed variant", 500, `["Error from API","VmInfo(VmNotCreated)"]`, true},
		{"plain text", 500, "VM is not created", true},
		{"another 500", 500, `["Error from API","The VM could not boot","Cannot open the kernel image"]`, false},
		{"not running is not not created", 500, `["Error from API","The VM could not shutdown","VM is not running"]`, false},
		{"bad request", 400, `["Failed to deserialize JSON"]`, false},
	}
	for _, tt := range tests {
		err := fmt.Errorf("wrapped: %w", newAPIError(http.MethodGet, "/vm.info", tt.status, []byte(tt.body)))
		assert.Equal(t, tt.want, isNotCreated(err), tt.name)
	}
	ae := newAPIError(http.MethodGet, "/vm.info", 500, []byte(`["Error from API","VM is not created"]`))
	assert.Equal(t, "vmm answered GET /vm.info with 500: Error from API: VM is not created", ae.Error())
	assert.False(t, isNotCreated(fmt.Errorf("dial: %w", os.ErrNotExist)))
}

// requireEventually polls cond until it holds or a generous deadline
// passes.
func requireEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(standinWait)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out waiting for %s", what)
		time.Sleep(20 * time.Millisecond) // polling a condition, with a deadline
	}
}

// eachMode runs f, in parallel, against a stand-in in each of
// standinModes.
func eachMode(t *testing.T, f func(t *testing.T, h *harness, mode string)) {
	for _, m := range standinModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			f(t, newModeHarness(t, m.version, m.mode), m.mode)
		})
	}
}

// runningVM creates and starts a VM.
func (h *harness) runningVM(t *testing.T, p *Provider, name string) hypervisor.VMSpec {
	t.Helper()
	spec := h.spec(name)
	require.NoError(t, p.Create(context.Background(), spec))
	require.NoError(t, p.Start(context.Background(), spec.ID))
	return spec
}

// deleteClean deletes the VM and checks nothing of it is left.
func (h *harness) deleteClean(t *testing.T, p *Provider, id uuid.UUID) {
	t.Helper()
	require.NoError(t, p.Delete(context.Background(), id))
	h.requireClean(t, id)
}

// lastCalls is the last n PUT calls the stand-ins served.
func (h *harness) lastCalls(n int) []string {
	calls := h.mutatingCalls()
	return calls[max(0, len(calls)-n):]
}

// TestBootRefused: the VMM validates the config and opens the payload at
// vm.boot, not vm.create. The refused boot fails the action with the
// VMM's message, the VM shows failed with it, and its definition is
// deleted so a retry (v53 would refuse a second vm.boot) starts clean.
func TestBootRefused(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, h *harness, _ string) {
		p := h.provider()
		ctx := context.Background()
		spec := h.spec("badboot")
		require.NoError(t, p.Create(ctx, spec))
		moved := h.kernel + ".away"
		require.NoError(t, os.Rename(h.kernel, moved))

		err := p.Start(ctx, spec.ID)
		require.ErrorIs(t, err, ErrVMM)
		assert.Contains(t, err.Error(), "Cannot open the kernel image")
		st := requireState(t, p, spec.ID, hypervisor.StateFailed)
		assert.Contains(t, st.Error, "Cannot open the kernel image")
		// v53 refuses the first vm.delete of a VM whose boot failed (but
		// drops it): the provider deletes twice.
		want := []string{"/vm.boot", "/vm.delete"}
		if h.cfg.Version == "v53.0" && h.cfg.Mode == standin.ModeReal {
			want = append(want, "/vm.delete")
		}
		assert.Equal(t, want, h.lastCalls(len(want)), "the half-made vm is deleted")
		require.Len(t, h.alive(), 1, "the vmm stays")

		require.NoError(t, os.Rename(moved, h.kernel))
		require.NoError(t, p.Start(ctx, spec.ID))
		requireState(t, p, spec.ID, hypervisor.StateRunning)
		assert.Equal(t, []string{"/vm.create", "/vm.boot"}, h.lastCalls(2), "the retry defines the vm again")
		h.deleteClean(t, p, spec.ID)
	})
}

// TestStopGrace: a guest that ignores the power button is stopped hard
// (vm.shutdown) once the grace period is over; the VMM then holds a
// "Created" VM, which reads as stopped, and Start boots it again.
func TestStopGrace(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, h *harness, _ string) {
		h.configure(func(c *standinConfig) { c.IgnorePowerButton = true })
		opts := h.options()
		opts.StopGrace = 200 * time.Millisecond
		p, err := New(opts)
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		ctx := context.Background()
		spec := h.runningVM(t, p, "stubborn")
		require.NoError(t, p.Stop(ctx, spec.ID))
		requireState(t, p, spec.ID, hypervisor.StateStopped)
		assert.Equal(t, []string{"/vm.power-button", "/vm.shutdown"}, h.lastCalls(2))
		require.Len(t, h.alive(), 1, "a hard stop keeps the vmm")

		require.NoError(t, p.Start(ctx, spec.ID))
		requireState(t, p, spec.ID, hypervisor.StateRunning)
		assert.Equal(t, []string{"/vm.boot"}, h.lastCalls(1))
		h.deleteClean(t, p, spec.ID)
	})
}

// TestGuestPowerOff: a guest that powers itself off ends the real VMM
// with status 0; that is a stopped VM, not a failed one, and Start makes
// a new VMM and VM. A VMM that follows the document stays up.
func TestGuestPowerOff(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, h *harness, mode string) {
		p := h.provider()
		ctx := context.Background()
		spec := h.runningVM(t, p, "selfstop")
		pids := h.alive()
		require.Len(t, pids, 1)
		require.NoError(t, unix.Kill(pids[0], standin.GuestPowerOffSignal))
		requireEventually(t, "the vm to read stopped", func() bool {
			st, err := p.State(ctx, spec.ID)
			require.NoError(t, err)
			require.NotEqual(t, hypervisor.StateFailed, st.State, st.Error)
			return st.State == hypervisor.StateStopped
		})
		if mode == standin.ModeReal {
			requireEventually(t, "the vmm to end with the guest", func() bool { return len(h.alive()) == 0 })
		}
		require.NoError(t, p.Start(ctx, spec.ID))
		requireState(t, p, spec.ID, hypervisor.StateRunning)
		if mode == standin.ModeReal {
			now := h.alive()
			require.Len(t, now, 1)
			assert.NotEqual(t, pids[0], now[0], "a new vmm")
		}
		h.deleteClean(t, p, spec.ID)
	})
}

// TestStopAfterFailedCreate (issue 10.2): stopping a VM whose create
// failed succeeds and changes nothing (it stays failed with the VMM's
// reason); delete removes what is left.
func TestStopAfterFailedCreate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.configure(func(c *standinConfig) { c.CrashOn = "/vm.create" })
	p := h.provider()
	ctx := context.Background()
	spec := h.spec("neverup")
	require.ErrorIs(t, p.Create(ctx, spec), ErrVMM)
	require.NoError(t, p.Stop(ctx, spec.ID))
	st := requireState(t, p, spec.ID, hypervisor.StateFailed)
	assert.Contains(t, st.Error, "exited with status 3")
	assert.Contains(t, st.Error, "crashing on /api/v1/vm.create", "the vmm's own log is quoted")
	require.NoError(t, p.Delete(ctx, spec.ID))
	requireState(t, p, spec.ID, hypervisor.StateDeleted)
	h.requireClean(t, spec.ID)
}

func TestMACForms(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.provider()
	ctx := context.Background()
	for _, mac := range []string{"52-54-00-12-34-56", "5254.0012.3456"} {
		spec := h.spec("dashed")
		spec.MAC = mac
		err := p.Create(ctx, spec)
		require.ErrorIs(t, err, hypervisor.ErrInvalidSpec, mac)
		assert.Contains(t, err.Error(), "colon-separated")
	}
	assert.Empty(t, h.pids(), "refused before any vmm started")

	spec := h.spec("upper")
	spec.MAC = "52:54:00:AB:CD:EF"
	require.NoError(t, p.Create(ctx, spec))
	var info struct {
		Config VmConfig `json:"config"`
	}
	c := newClient(PathsFor(h.runtimeDir, spec.ID, "").APISocket, standinWait)
	defer c.close()
	require.NoError(t, c.call(ctx, http.MethodGet, "/vm.info", nil, &info))
	assert.Equal(t, "52:54:00:ab:cd:ef", info.Config.Net[0].Mac)
	require.NoError(t, p.Delete(ctx, spec.ID))
}

// TestTAPRecreated: a TAP that is gone (a host reboot) is made again, on
// the bridge, when the provider re-adopts the VM and before every start.
func TestTAPRecreated(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	p1 := h.provider()
	spec := h.spec("tapless")
	tap := vmnet.TAPName(spec.ID)
	require.NoError(t, p1.Create(ctx, spec))
	require.NoError(t, p1.Close())

	require.NoError(t, h.net.DeleteTAP(ctx, tap))
	p2 := h.provider()
	assert.Contains(t, h.net.names(), tap, "re-adoption re-creates the tap")

	require.NoError(t, h.net.DeleteTAP(ctx, tap))
	require.NoError(t, p2.Start(ctx, spec.ID))
	assert.Contains(t, h.net.names(), tap, "start re-creates the tap")
	require.NoError(t, p2.Delete(ctx, spec.ID))
	h.requireClean(t, spec.ID)
}

func TestConsoleHistoryBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	opts := h.options()
	p, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	ctx := context.Background()
	spec := h.spec("chatty")
	require.NoError(t, p.Create(ctx, spec))
	require.NoError(t, p.Start(ctx, spec.ID))
	for range MaxConsoleLogs + 2 {
		require.NoError(t, p.Reboot(ctx, spec.ID))
	}
	paths := PathsFor(h.runtimeDir, spec.ID, "")
	var logs []string
	entries, err := os.ReadDir(paths.Dir)
	require.NoError(t, err)
	for _, e := range entries {
		if m, _ := filepath.Match(fileConsole+"*", e.Name()); m {
			logs = append(logs, e.Name())
		}
	}
	slices.Sort(logs)
	want := []string{fileConsole}
	for i := range MaxConsoleLogs {
		want = append(want, fmt.Sprintf("%s.%d", fileConsole, i+1))
	}
	assert.Equal(t, want, logs)
	cur, err := os.ReadFile(paths.ConsoleLog)
	require.NoError(t, err)
	assert.NotContains(t, string(cur), "Restarting system", "the current log starts at the last reboot")
	prev, err := os.ReadFile(paths.ConsoleLog + ".1")
	require.NoError(t, err)
	assert.Contains(t, string(prev), "Restarting system", "the previous run's end is kept")
	require.NoError(t, p.Delete(ctx, spec.ID))
}
