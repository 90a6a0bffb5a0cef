package e2e_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/kubedoio/n-kudo/internal/hypervisor/cloudhypervisor/standin"
	"github.com/kubedoio/n-kudo/internal/specfile"
	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/vmnet"
)

// The test binary doubles as the stand-in Cloud Hypervisor VMM: the agent
// under test execs it through a symlink named cloud-hypervisor. This runs
// before TestMain, so the stand-in never builds binaries or starts tests.
func init() {
	if filepath.Base(os.Args[0]) == standin.BinaryName {
		os.Exit(standin.Main(os.Args[1:]))
	}
}

// vmFlow is one provider's run of the VM lifecycle tests.
type vmFlow struct {
	t   *testing.T
	srv *server
	tn  tenant
	ag  *agent
	// images holds the disk image and kernel given to VMs.
	images string
	// booted and rebooted are console output the provider's guest prints
	// when it boots and reboots.
	booted, rebooted string
}

// startAgent runs the agent with the given hypervisor flags, on a runtime
// directory short enough for Cloud Hypervisor's API socket paths.
func (f *vmFlow) startAgent(flags ...string) {
	f.t.Helper()
	runtime, err := os.MkdirTemp("", "nke2e")
	require.NoError(f.t, err)
	f.t.Cleanup(func() { _ = os.RemoveAll(runtime) })
	f.ag.runtime = runtime
	args := append([]string{"run", "--state-dir", f.ag.stateDir, "--runtime-dir", runtime, "--image-dir", f.images, "--log-level", "debug"}, flags...)
	f.ag.proc = start(f.t, filepath.Join(f.ag.dir, "agent.log"), nil, agentBin, args...)
	f.srv.waitOnline(f.tn, f.ag.hostID)
}

func newVMFlow(t *testing.T, name string) *vmFlow {
	srv := newServer(t, "")
	tn := srv.bootstrap(name)
	ag := newAgent(t, srv)
	ag.enroll(srv.token(tn, 1))
	f := &vmFlow{t: t, srv: srv, tn: tn, ag: ag, images: t.TempDir()}
	require.NoError(t, os.WriteFile(filepath.Join(f.images, "root.img"), make([]byte, 1<<20), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(f.images, "vmlinux"), []byte("kernel"), 0o600))
	return f
}

type vmView struct {
	ID           uuid.UUID `json:"id"`
	HostID       uuid.UUID `json:"host_id"`
	DesiredState string    `json:"desired_state"`
	ActualState  string    `json:"actual_state"`
	Error        string    `json:"error"`
}

func (f *vmFlow) getVM(id uuid.UUID) vmView {
	f.t.Helper()
	var v vmView
	f.srv.must(http.StatusOK, "GET", "/v1/vms/"+id.String(), f.tn.key, nil).into(f.t, &v)
	return v
}

// waitActual polls the API until the VM's actual state is want.
func (f *vmFlow) waitActual(id uuid.UUID, want string) vmView {
	f.t.Helper()
	var v vmView
	eventually(f.t, "vm "+want, func() bool {
		v = f.getVM(id)
		return v.ActualState == want
	})
	return v
}

// createVM creates a VM through the API and waits for its plan to end
// with status.
func (f *vmFlow) createVM(name, disk, status string) (vmView, plan) {
	f.t.Helper()
	var out struct {
		VM   vmView `json:"vm"`
		Plan plan   `json:"plan"`
	}
	f.srv.must(http.StatusCreated, "POST", "/v1/vms", f.tn.key, map[string]any{
		"name": name, "site_id": f.tn.site, "vcpus": 1, "memory_mib": 128,
		"kernel": filepath.Join(f.images, "vmlinux"), "cmdline": "console=ttyS0 root=/dev/vda1 rw",
		"disk_image": disk, "cloud_init": map[string]string{"user_data": "#cloud-config\nhostname: " + name + "\n"},
	}).into(f.t, &out)
	require.Equal(f.t, f.ag.hostID, out.VM.HostID, "the only online host was chosen")
	return out.VM, f.srv.waitPlan(f.tn, out.Plan.ID, status)
}

// act runs a lifecycle route and waits for its plan to succeed.
func (f *vmFlow) act(method, path string) {
	f.t.Helper()
	var p plan
	r := f.srv.do(method, path, f.tn.key, nil)
	require.Equal(f.t, http.StatusAccepted, r.status, "%s %s: %s", method, path, r.body)
	r.into(f.t, &p)
	f.srv.waitPlan(f.tn, p.ID, store.StatusSucceeded)
}

// console reads the one-shot console answer.
func (f *vmFlow) console(id uuid.UUID) string {
	f.t.Helper()
	req, err := http.NewRequest("GET", f.srv.url()+"/v1/vms/"+id.String()+"/console", nil)
	require.NoError(f.t, err)
	req.Header.Set("Authorization", "Bearer "+f.tn.key)
	resp, err := f.srv.cli.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(f.t, err)
	require.Equal(f.t, http.StatusOK, resp.StatusCode, "%s", body)
	return string(body)
}

// consoleFollower reads a followed console's decoded output.
type consoleFollower struct {
	out    chan string
	cancel context.CancelFunc
}

func (f *vmFlow) followConsole(id uuid.UUID) *consoleFollower {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", f.srv.url()+"/v1/vms/"+id.String()+"/console?follow=true", nil)
	require.NoError(f.t, err)
	req.Header.Set("Authorization", "Bearer "+f.tn.key)
	// No client timeout: the stream lives until the test cancels it.
	cli := &http.Client{Transport: f.srv.cli.Transport}
	resp, err := cli.Do(req)
	require.NoError(f.t, err)
	require.Equal(f.t, http.StatusOK, resp.StatusCode)
	cf := &consoleFollower{out: make(chan string, 64), cancel: cancel}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(cf.out)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				b, err := base64.StdEncoding.DecodeString(data)
				if err != nil {
					cf.out <- "<bad base64: " + data + ">"
					continue
				}
				cf.out <- string(b)
			}
		}
	}()
	f.t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return cf
}

// until collects followed output until it holds want.
func (c *consoleFollower) until(t *testing.T, want string) string {
	t.Helper()
	var got strings.Builder
	deadline := time.After(waitFor)
	for !strings.Contains(got.String(), want) {
		select {
		case s, ok := <-c.out:
			require.True(t, ok, "console stream ended; got %q", got.String())
			got.WriteString(s)
		case <-deadline:
			require.FailNow(t, "console output never showed "+want, "got %q", got.String())
		}
	}
	return got.String()
}

// lifecycle drives one VM through create+boot, console, stop, start,
// reboot and delete, observing every state through the API.
func (f *vmFlow) lifecycle() uuid.UUID {
	t := f.t
	vm, p := f.createVM("web-1", filepath.Join(f.images, "root.img"), store.StatusSucceeded)
	require.Equal(t, store.VMRunning, vm.DesiredState)
	f.waitActual(vm.ID, store.VMRunning)
	eventually(t, "the create's execution log", func() bool {
		return len(f.srv.logs(f.tn, p.Actions[0].ExecutionID)) > 0
	})

	require.Contains(t, f.console(vm.ID), f.booted)
	follow := f.followConsole(vm.ID)
	follow.until(t, f.booted)

	path := "/v1/vms/" + vm.ID.String()
	f.act("POST", path+"/stop")
	f.waitActual(vm.ID, store.VMStopped)
	f.act("POST", path+"/start")
	f.waitActual(vm.ID, store.VMRunning)
	f.act("POST", path+"/reboot")
	follow.until(t, f.rebooted)
	got := f.waitActual(vm.ID, store.VMRunning)
	require.Equal(t, store.VMRunning, got.DesiredState)
	f.act("DELETE", path)
	got = f.waitActual(vm.ID, store.VMDeleted)
	require.Equal(t, store.VMDeleted, got.DesiredState)

	r := f.srv.do("POST", path+"/start", f.tn.key, nil)
	require.Equal(t, http.StatusConflict, r.status, "%s", r.body)
	return vm.ID
}

// TestVMLifecycleCloudHypervisor runs the VM lifecycle through the real
// agent with the Cloud Hypervisor provider against the stand-in VMM in its
// real mode: it answers as Cloud Hypervisor's code does (v48 to v52, and
// v53 on), not as its API document says, and checks every request against
// specs/cloud-hypervisor.yaml.
func TestVMLifecycleCloudHypervisor(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"v48.0", "v53.0"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			testVMLifecycleCloudHypervisor(t, version)
		})
	}
}

func testVMLifecycleCloudHypervisor(t *testing.T, version string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the Cloud Hypervisor provider creates a bridge and TAP devices through netlink (CI runs as root)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("needs /dev/net/tun for TAP devices: %v", err)
	}
	f := newVMFlow(t, "ch")
	f.booted, f.rebooted = "login: ", "Restarting system"

	binDir := t.TempDir()
	exe, err := os.Executable()
	require.NoError(t, err)
	bin, err := standin.Install(binDir, exe, standin.Config{SpecPath: specfile.Path(t, "cloud-hypervisor.yaml"), Version: version, Mode: standin.ModeReal})
	require.NoError(t, err)
	// A bridge of this test's own, removed afterwards with the TAPs the
	// VMs used, so the host keeps no trace of the test.
	bridge := "nkt" + strings.ReplaceAll(uuid.NewString(), "-", "")[:10]
	var vms []uuid.UUID
	t.Cleanup(func() {
		for _, id := range vms {
			if l, err := netlink.LinkByName(vmnet.TAPName(id)); err == nil {
				_ = netlink.LinkDel(l)
			}
		}
		if l, err := netlink.LinkByName(bridge); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	// This host may have no /dev/kvm; the stand-in VMM needs none, and
	// the agent's preflight only opens the device read-write.
	kvm := filepath.Join(binDir, "kvm")
	require.NoError(t, os.WriteFile(kvm, nil, 0o600))
	f.startAgent("--hypervisor", "cloud-hypervisor", "--cloud-hypervisor-bin", bin, "--bridge", bridge, "--kvm-device", kvm, "--stop-grace", "20s",
		// The stand-in VMM is a race-built Go binary: on a loaded machine it
		// can take longer than a real VMM to open its API socket.
		"--vmm-socket-timeout", "60s")

	var host struct {
		Facts struct {
			Hypervisor struct {
				Kind      string `json:"kind"`
				Version   string `json:"version"`
				Simulated bool   `json:"simulated"`
			} `json:"hypervisor"`
		} `json:"facts"`
	}
	// Facts land through the heartbeat batcher, just after "online".
	eventually(t, "host facts", func() bool {
		f.srv.must(http.StatusOK, "GET", "/v1/hosts/"+f.ag.hostID.String(), f.tn.key, nil).into(t, &host)
		return host.Facts.Hypervisor.Kind != ""
	})
	require.Equal(t, "cloud-hypervisor", host.Facts.Hypervisor.Kind)
	require.Equal(t, version, host.Facts.Hypervisor.Version)
	require.False(t, host.Facts.Hypervisor.Simulated)

	vms = append(vms, f.lifecycle())

	// A disk image that does not exist: the plan fails, the VM is failed,
	// and the execution log says why.
	missing := filepath.Join(f.images, "missing.img")
	vm, p := f.createVM("broken", missing, store.StatusFailed)
	vms = append(vms, vm.ID)
	got := f.waitActual(vm.ID, store.VMFailed)
	require.Contains(t, got.Error, "disk_image")
	require.Contains(t, p.Actions[0].Error, missing)
	// Log lines are persisted in batches, possibly just after the result.
	var failure string
	eventually(t, "the failure in the execution log", func() bool {
		for _, l := range f.srv.logs(f.tn, p.Actions[0].ExecutionID) {
			if l.Stream == "stderr" {
				failure = l.Message
			}
		}
		return failure != ""
	})
	require.Contains(t, failure, "failed")
	require.Contains(t, failure, missing)

	calls, err := standin.ReadCalls(binDir)
	require.NoError(t, err)
	paths := map[string]bool{}
	for _, c := range calls {
		require.Empty(t, c.ValidationError, "the stand-in refused %s %s", c.Method, c.Path)
		paths[c.Path] = true
	}
	// The stop went through the power button; the guest powered off and
	// its VMM ended, so the start defined the VM in a new VMM.
	for _, want := range []string{"/api/v1/vm.create", "/api/v1/vm.boot", "/api/v1/vm.power-button", "/api/v1/vm.reboot", "/api/v1/vm.delete", "/api/v1/vmm.shutdown"} {
		require.True(t, paths[want], "the provider never called %s (calls: %v)", want, paths)
	}
	vmms := map[int]bool{}
	for _, c := range calls {
		if c.Path == "/api/v1/vm.create" && c.Status == http.StatusNoContent {
			vmms[c.PID] = true
		}
	}
	require.Len(t, vmms, 2, "web-1 was defined in two VMMs: before the stop and after it")
}

// TestVMLifecycleSim runs the same lifecycle with the sim provider, whose
// console says it is simulated.
func TestVMLifecycleSim(t *testing.T) {
	t.Parallel()
	f := newVMFlow(t, "sim")
	f.booted, f.rebooted = "[simulated] web-1 login: ", "[simulated] reboot: restarting system"
	f.startAgent("--hypervisor", "sim")
	id := f.lifecycle()
	require.Equal(t, "deleted", f.ag.simState(id))

	// The sim checks the spec, not the files: an invalid one still fails
	// with a clear error.
	r := f.srv.do("POST", "/v1/vms", f.tn.key, map[string]any{
		"name": "Bad Name", "site_id": f.tn.site, "vcpus": 1, "memory_mib": 128, "disk_image": "/img.raw",
	})
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	require.Contains(t, string(r.body), "RFC 1123")
}
