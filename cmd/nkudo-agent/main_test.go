package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/hypervisor/cloudhypervisor"
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

	cases := []struct {
		name      string
		cfg       runConfig
		wantErr   error
		wantKind  string
		wantVer   string
		simulated bool
	}{
		{name: "sim", cfg: runConfig{hypervisor: hypervisor.KindSim}, wantKind: hypervisor.KindSim, simulated: true},
		{name: "cloud-hypervisor", cfg: runConfig{hypervisor: hypervisor.KindCloudHypervisor, chBin: vmm, bridge: "nkudotest0"},
			wantKind: hypervisor.KindCloudHypervisor, wantVer: "v48.0"},
		{name: "cloud-hypervisor binary missing", cfg: runConfig{hypervisor: hypervisor.KindCloudHypervisor, chBin: filepath.Join(bin, "nope")},
			wantErr: cloudhypervisor.ErrNoBinary},
		{name: "cloud-hypervisor binary not executable", cfg: runConfig{hypervisor: hypervisor.KindCloudHypervisor, chBin: notExec},
			wantErr: cloudhypervisor.ErrNoBinary},
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
			if tc.wantVer != "" {
				require.Equal(t, tc.wantVer, caps.Version)
			}
		})
	}
}

func TestRunConfigValidate(t *testing.T) {
	t.Parallel()
	ok := runConfig{stateDir: "/s", runtimeDir: "/r", hypervisor: hypervisor.KindSim}
	cases := []struct {
		name  string
		tweak func(*runConfig)
		ok    bool
	}{
		{"sim", func(*runConfig) {}, true},
		{"cloud-hypervisor", func(c *runConfig) { c.hypervisor = hypervisor.KindCloudHypervisor }, true},
		{"unknown hypervisor", func(c *runConfig) { c.hypervisor = "xen" }, false},
		{"no state dir", func(c *runConfig) { c.stateDir = "" }, false},
		{"no runtime dir", func(c *runConfig) { c.runtimeDir = "" }, false},
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
	}{
		{name: "sim", kind: hypervisor.KindSim,
			want: hypervisor.Capabilities{Kind: hypervisor.KindSim, Version: sim.Version, Simulated: true, PauseResume: true, Reboot: true}},
		{name: "cloud-hypervisor", kind: hypervisor.KindCloudHypervisor, bin: vmm,
			want: hypervisor.Capabilities{Kind: hypervisor.KindCloudHypervisor, Version: "v48.0", PauseResume: true, Reboot: true}},
		{name: "cloud-hypervisor missing", kind: hypervisor.KindCloudHypervisor, bin: filepath.Join(bin, "nope"), wantErr: cloudhypervisor.ErrVMM},
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
			require.Equal(t, tc.want, got)
		})
	}
}
