package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/hypervisor/cloudhypervisor/standin"
	"github.com/kubedoio/n-kudo/internal/specfile"
	"github.com/kubedoio/n-kudo/internal/store"
)

// refuseOutside creates VMs whose disk image is a file outside the
// agent's --image-dir, then a symlink inside it pointing at that file (a
// copy of a secret): both creates fail with a message naming the image
// directory, the VMs end failed, and no byte of the secret lands in the
// agent's runtime directory.
func (f *vmFlow) refuseOutside() {
	t := f.t
	secret := []byte("root:$6$" + uuid.NewString() + ":19000:0:99999:7:::\n")
	outside := filepath.Join(t.TempDir(), "shadow")
	require.NoError(t, os.WriteFile(outside, secret, 0o600))
	link := filepath.Join(f.images, "innocent.raw")
	require.NoError(t, os.Symlink(outside, link))

	for i, disk := range []string{outside, link} {
		name := []string{"outside", "via-link"}[i]
		vm, p := f.createVM(name, disk, store.StatusFailed)
		got := f.waitActual(vm.ID, store.VMFailed)
		for _, msg := range []string{got.Error, p.Actions[0].Error} {
			require.Contains(t, msg, "disk_image", name)
			require.Contains(t, msg, disk, name)
			require.Contains(t, msg, "image directories ("+f.images+")", "%s: the message names the allowed directories", name)
			require.NotContains(t, msg, string(secret), name)
		}
	}
	// Nothing was copied: no file under the runtime dir holds the secret.
	err := filepath.WalkDir(f.ag.runtime, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		require.False(t, bytes.Contains(b, secret), "%s holds the secret", path)
		return nil
	})
	require.NoError(t, err)
}

// TestImageDirConfinementSim: the rule holds with the sim hypervisor.
func TestImageDirConfinementSim(t *testing.T) {
	t.Parallel()
	f := newVMFlow(t, "imgsim")
	f.startAgent("--hypervisor", "sim")
	f.refuseOutside()
}

// TestImageDirConfinementCloudHypervisor: and with Cloud Hypervisor, whose
// provider copies disk images: the refusal comes before any copy.
func TestImageDirConfinementCloudHypervisor(t *testing.T) {
	t.Parallel()
	f := newVMFlow(t, "imgch")
	binDir := t.TempDir()
	exe, err := os.Executable()
	require.NoError(t, err)
	bin, err := standin.Install(binDir, exe, standin.Config{SpecPath: specfile.Path(t, "cloud-hypervisor.yaml"), Version: "v48.0"})
	require.NoError(t, err)
	kvm := filepath.Join(binDir, "kvm")
	require.NoError(t, os.WriteFile(kvm, nil, 0o600))
	f.startAgent("--hypervisor", "cloud-hypervisor", "--cloud-hypervisor-bin", bin, "--kvm-device", kvm)
	f.refuseOutside()
	calls, err := standin.ReadCalls(binDir)
	require.NoError(t, err)
	require.Empty(t, calls, "no VMM was ever started")
}

// TestUnavailableHypervisor: `nkudo-agent run` defaults to Cloud
// Hypervisor; on a host that cannot run it the agent still connects,
// reports why in its host facts, fails VM actions with that reason and
// keeps running — it neither exits nor simulates.
func TestUnavailableHypervisor(t *testing.T) {
	t.Parallel()
	f := newVMFlow(t, "nohv")
	missing := filepath.Join(t.TempDir(), "cloud-hypervisor")
	f.startAgent("--cloud-hypervisor-bin", missing) // no --hypervisor: the default

	var host struct {
		Facts struct {
			Hypervisor struct {
				Kind        string `json:"kind"`
				Simulated   bool   `json:"simulated"`
				Unavailable string `json:"unavailable"`
			} `json:"hypervisor"`
		} `json:"facts"`
	}
	eventually(t, "host facts", func() bool {
		f.srv.must(http.StatusOK, "GET", "/v1/hosts/"+f.ag.hostID.String(), f.tn.key, nil).into(t, &host)
		return host.Facts.Hypervisor.Kind != ""
	})
	hv := host.Facts.Hypervisor
	require.Equal(t, "cloud-hypervisor", hv.Kind)
	require.False(t, hv.Simulated)
	require.Contains(t, hv.Unavailable, missing)
	require.Contains(t, hv.Unavailable, "not found")

	vm, p := f.createVM("web-1", filepath.Join(f.images, "root.img"), store.StatusFailed)
	require.Contains(t, p.Actions[0].Error, "cannot run on this host")
	require.Contains(t, p.Actions[0].Error, missing)
	got := f.waitActual(vm.ID, store.VMFailed)
	require.Contains(t, got.Error, missing)
	require.False(t, f.ag.proc.exited(), "the agent kept running")
}

// TestDoctorOnThisHost runs `nkudo-agent doctor` against a real server,
// on a PATH without Cloud Hypervisor or NetBird: it exits 1 and names the
// missing binary with its fix; the server is reached through the pinned
// CA and the clocks agree.
func TestDoctorOnThisHost(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "")
	caPEM, err := os.ReadFile(srv.caFile())
	require.NoError(t, err)
	dir := t.TempDir()
	emptyPath := filepath.Join(dir, "bin")
	require.NoError(t, os.Mkdir(emptyPath, 0o755))
	args := []string{"doctor", "--server", srv.url(), "--ca-fingerprint", caFingerprint(t, caPEM),
		"--state-dir", filepath.Join(dir, "state"), "--runtime-dir", filepath.Join(dir, "runtime"), "--image-dir", imagesDir}

	run := func(extra ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		cmd := exec.CommandContext(ctx, agentBin, append(args, extra...)...)
		cmd.Env = append(os.Environ(), "PATH="+emptyPath)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return stdout.String(), ee.ExitCode()
		}
		require.NoError(t, err)
		return stdout.String(), 0
	}
	out, code := run()
	t.Logf("nkudo-agent doctor:\n%s", out)
	require.Equal(t, 1, code, out)
	require.Regexp(t, `(?m)^cloud-hypervisor\s+fail\s+cloud-hypervisor not found`, out)
	require.Contains(t, out, "blocker: cloud-hypervisor: install Cloud Hypervisor v48.0 or newer")
	require.Regexp(t, `(?m)^server\s+ok\s+`+srv.url()+` reachable`, out)
	require.Regexp(t, `(?m)^clock\s+ok\s+`, out)
	require.Regexp(t, `(?m)^netbird\s+warn\s+netbird not found`, out)
	require.Regexp(t, `(?m)^image-dirs\s+ok\s+`, out)

	out, code = run("-o", "json")
	require.Equal(t, 1, code, out)
	var report struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Check, Status, Detail, Fix string
		} `json:"checks"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &report), out)
	require.False(t, report.OK)
	byName := map[string]string{}
	for _, c := range report.Checks {
		byName[c.Check] = c.Status
	}
	require.Equal(t, "fail", byName["cloud-hypervisor"])
	require.Equal(t, "ok", byName["server"])
}
