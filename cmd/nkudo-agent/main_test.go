package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/hypervisor/sim"
)

// TestOpenProvider checks the one place the --hypervisor choice is made:
// each kind opens its provider, which reports its own capabilities (what
// host facts show), and bad choices fail with a precise error.
func TestOpenProvider(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	// A stand-in binary: the provider only asks it for its version until
	// a VM is created.
	vmm := filepath.Join(bin, "cloud-hypervisor")
	require.NoError(t, os.WriteFile(vmm, []byte("#!/bin/sh\necho 'cloud-hypervisor v48.0'\n"), 0o755))
	notExec := filepath.Join(bin, "not-executable")
	require.NoError(t, os.WriteFile(notExec, []byte("data"), 0o644))
	// A stand-in for /dev/kvm (this host may have none): the preflight
	// only opens it read-write.
	kvm := filepath.Join(bin, "kvm")
	require.NoError(t, os.WriteFile(kvm, nil, 0o600))

	cases := []struct {
		name      string
		cfg       runConfig
		wantErr   error
		wantKind  string
		wantVer   string
		simulated bool
		// unavailable is in the reason of a provider that cannot run.
		unavailable string
	}{
		{name: "sim", cfg: runConfig{hypervisor: hypervisor.KindSim}, wantKind: hypervisor.KindSim, simulated: true},
		{name: "cloud-hypervisor", cfg: runConfig{hypervisor: hypervisor.KindCloudHypervisor, chBin: vmm, bridge: "nkudotest0", kvmDevice: kvm},
			wantKind: hypervisor.KindCloudHypervisor, wantVer: "v48.0"},
		{name: "cloud-hypervisor binary missing", cfg: runConfig{hypervisor: hypervisor.KindCloudHypervisor, chBin: filepath.Join(bin, "nope"), kvmDevice: kvm},
			wantKind: hypervisor.KindCloudHypervisor, unavailable: "not found"},
		{name: "cloud-hypervisor binary not executable", cfg: runConfig{hypervisor: hypervisor.KindCloudHypervisor, chBin: notExec, kvmDevice: kvm},
			wantKind: hypervisor.KindCloudHypervisor, unavailable: "not-executable"},
		{name: "no kvm", cfg: runConfig{hypervisor: hypervisor.KindCloudHypervisor, chBin: vmm, kvmDevice: filepath.Join(bin, "no-kvm")},
			wantKind: hypervisor.KindCloudHypervisor, unavailable: "no-kvm is missing"},
		{name: "unknown", cfg: runConfig{hypervisor: "qemu"}, wantErr: errUnknownHypervisor},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Short: Cloud Hypervisor's API socket paths live under it.
			dir, err := os.MkdirTemp("", "nkrt")
			require.NoError(t, err)
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			tc.cfg.runtimeDir = dir
			pv, closePV, err := openProvider(tc.cfg, slog.New(slog.DiscardHandler))
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			defer func() { require.NoError(t, closePV()) }()
			require.Equal(t, tc.wantKind, pv.Name())
			caps, err := pv.Capabilities(context.Background())
			require.NoError(t, err)
			require.Equal(t, tc.wantKind, caps.Kind)
			require.Equal(t, tc.simulated, caps.Simulated)
			require.Equal(t, tc.unavailable == "", caps.Unavailable == "", "unavailable: %q", caps.Unavailable)
			require.Contains(t, caps.Unavailable, tc.unavailable)
			if tc.unavailable != "" {
				// VM actions fail with the reason; the agent keeps running.
				err := pv.Start(context.Background(), uuid.New())
				require.ErrorIs(t, err, hypervisor.ErrUnavailable)
				require.ErrorContains(t, err, tc.unavailable)
			}
			if tc.wantVer != "" {
				require.Equal(t, tc.wantVer, caps.Version)
			}
		})
	}
}

func TestRunConfigValidate(t *testing.T) {
	t.Parallel()
	ok := runConfig{stateDir: "/s", runtimeDir: "/r", hypervisor: hypervisor.KindSim, imageDirs: []string{"/img"}, stopGrace: 30 * time.Second,
		vmmSocketTimeout: 10 * time.Second}
	cases := []struct {
		name  string
		tweak func(*runConfig)
		ok    bool
	}{
		{"sim", func(*runConfig) {}, true},
		{"cloud-hypervisor", func(c *runConfig) { c.hypervisor = hypervisor.KindCloudHypervisor }, true},
		{"unknown hypervisor", func(c *runConfig) { c.hypervisor = "xen" }, false},
		{"cloud-hypervisor runtime dir with a comma", func(c *runConfig) {
			c.hypervisor, c.runtimeDir = hypervisor.KindCloudHypervisor, "/var/lib/a,b"
		}, false},
		{"no stop grace", func(c *runConfig) { c.stopGrace = 0 }, false},
		{"stop grace too long", func(c *runConfig) { c.stopGrace = time.Hour }, false},
		{"no vmm socket timeout", func(c *runConfig) { c.vmmSocketTimeout = 0 }, false},
		{"vmm socket timeout too long", func(c *runConfig) { c.vmmSocketTimeout = time.Hour }, false},
		{"generous vmm socket timeout", func(c *runConfig) { c.vmmSocketTimeout = time.Minute }, true},
		{"no state dir", func(c *runConfig) { c.stateDir = "" }, false},
		{"no runtime dir", func(c *runConfig) { c.runtimeDir = "" }, false},
		{"comma in runtime dir", func(c *runConfig) { c.runtimeDir = "/run/a,b" }, false},
		{"comma in state dir", func(c *runConfig) { c.stateDir = "/var/lib/a,b" }, false},
		{"no image dir", func(c *runConfig) { c.imageDirs = nil }, false},
		{"relative image dir", func(c *runConfig) { c.imageDirs = []string{"images"} }, false},
		{"comma in image dir", func(c *runConfig) { c.imageDirs = []string{"/img,x"} }, false},
		{"image dir root", func(c *runConfig) { c.imageDirs = []string{"/"} }, false},
		{"two image dirs", func(c *runConfig) { c.imageDirs = []string{"/img", "/srv/images"} }, true},
		{"netbird", func(c *runConfig) { c.netbirdEnabled = true }, true},
		{"netbird bad probe", func(c *runConfig) {
			c.netbirdEnabled = true
			c.netbirdProbe.Type = "carrier-pigeon"
		}, false},
		{"netbird http probe", func(c *runConfig) {
			c.netbirdEnabled = true
			c.netbirdProbe.Type, c.netbirdProbe.Target = "http", "http://100.92.0.1/healthz"
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := ok
			tc.tweak(&c)
			if tc.ok {
				require.NoError(t, c.Validate())
			} else {
				require.Error(t, c.Validate())
			}
		})
	}
}

// TestProbeHypervisor checks that `hostfacts` describes the backend
// --hypervisor names, the same way the running agent's provider would.
func TestProbeHypervisor(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	vmm := filepath.Join(bin, "cloud-hypervisor")
	require.NoError(t, os.WriteFile(vmm, []byte("#!/bin/sh\necho 'cloud-hypervisor v48.0'\n"), 0o755))
	cases := []struct {
		name      string
		kind, bin string
		wantErr   error
		want      hypervisor.Capabilities
		// unavailable is in the reason reported for a backend that
		// cannot run.
		unavailable string
	}{
		{name: "sim", kind: hypervisor.KindSim,
			want: hypervisor.Capabilities{Kind: hypervisor.KindSim, Version: sim.Version, Simulated: true, PauseResume: true, Reboot: true}},
		{name: "cloud-hypervisor", kind: hypervisor.KindCloudHypervisor, bin: vmm,
			want: hypervisor.Capabilities{Kind: hypervisor.KindCloudHypervisor, Version: "v48.0", PauseResume: true, Reboot: true}},
		{name: "cloud-hypervisor missing", kind: hypervisor.KindCloudHypervisor, bin: filepath.Join(bin, "nope"),
			want: hypervisor.Capabilities{Kind: hypervisor.KindCloudHypervisor}, unavailable: filepath.Join(bin, "nope")},
		{name: "unknown", kind: "qemu", wantErr: errUnknownHypervisor},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := probeHypervisor(context.Background(), tc.kind, tc.bin)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.unavailable == "", got.Unavailable == "", "unavailable: %q", got.Unavailable)
			require.Contains(t, got.Unavailable, tc.unavailable)
			got.Unavailable = ""
			require.Equal(t, tc.want, got)
		})
	}
}

// --server is repeatable (and takes a comma-separated list), on enroll
// and run alike, with NKUDO_SERVER (comma-separated) as the default.
func TestServerFlagRepeatable(t *testing.T) {
	t.Setenv(envServer, "https://env-1:8443, https://env-2:8443")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"environment", nil, []string{"https://env-1:8443", "https://env-2:8443"}},
		{"repeated", []string{"--server", "https://a:8443", "--server", "https://b:8443"}, []string{"https://a:8443", "https://b:8443"}},
		{"comma-separated", []string{"--server", "https://a:8443,https://b:8443"}, []string{"https://a:8443", "https://b:8443"}},
	}
	for _, tc := range cases {
		for _, cmd := range []*cobra.Command{newEnrollCmd(), newRunCmd()} {
			require.NoError(t, cmd.Flags().Parse(tc.args), tc.name)
			got, err := cmd.Flags().GetStringSlice("server")
			require.NoError(t, err)
			require.Equal(t, tc.want, got, "%s: %s", cmd.Name(), tc.name)
		}
	}
}
