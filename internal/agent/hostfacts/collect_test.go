package hostfacts

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
)

var simCaps = hypervisor.Capabilities{Kind: hypervisor.KindSim, Version: "sim-1", Simulated: true, PauseResume: true, Reboot: true}

func TestCollectFromFixtureTree(t *testing.T) {
	t.Parallel()
	facts, err := Collect(context.Background(), Options{
		ProcDir:        filepath.Join("testdata", "proc"),
		OSReleasePaths: []string{filepath.Join("testdata", "missing"), filepath.Join("testdata", "os-release-debian")},
		KVMDevice:      filepath.Join(t.TempDir(), "no-kvm"),
		Mounts:         []string{"/", "/"},
		Hostname:       "edge-01",
		Hypervisor:     simCaps,
		NetBirdVersion: "0.36.5",
		AgentVersion:   "1.2.3",
	})
	require.NoError(t, err)
	require.NoError(t, facts.Validate(), "the facts pass the wire protocol's checks")

	require.Equal(t, "edge-01", facts.Hostname)
	require.Equal(t, "Debian GNU/Linux 12 (bookworm)", facts.OS, "falls through to the second os-release path")
	require.Equal(t, "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", facts.CPUModel)
	require.Equal(t, 2, facts.CPUCores)
	require.Equal(t, int64(16318412*1024), facts.MemoryTotalBytes)
	require.False(t, facts.KVM)
	require.Equal(t, agentproto.Hypervisor{Kind: "sim", Version: "sim-1", Simulated: true}, facts.Hypervisor)
	require.Equal(t, "0.36.5", facts.NetBirdVersion)
	require.Equal(t, "1.2.3", facts.AgentVersion)
	require.NotEmpty(t, facts.Kernel)
	require.NotEmpty(t, facts.Arch)

	require.Len(t, facts.Disks, 1, "one file system, reported once")
	d := facts.Disks[0]
	require.Equal(t, "/", d.Mount)
	require.Equal(t, "overlay", d.Device)
	require.Equal(t, "overlay", d.FSType)
	require.Positive(t, d.TotalBytes)
	require.LessOrEqual(t, d.FreeBytes, d.TotalBytes)
}

func TestCollectThisHost(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	facts, err := Collect(context.Background(), Options{
		Mounts:       []string{"/", tmp},
		Hypervisor:   simCaps,
		AgentVersion: "dev",
	})
	require.NoError(t, err)
	require.NoError(t, facts.Validate())
	require.NotEmpty(t, facts.Hostname)
	require.Positive(t, facts.CPUCores)
	require.Positive(t, facts.MemoryTotalBytes)
	require.NotEmpty(t, facts.Disks)
	require.Equal(t, ProbeKVM("/dev/kvm").Usable, facts.KVM)
}

func TestCollectErrors(t *testing.T) {
	t.Parallel()
	emptyProc := t.TempDir()
	badMem := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(badMem, "cpuinfo"), []byte(testdata(t, "cpuinfo-x86")), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(badMem, "meminfo"), []byte("MemFree: 1 kB\n"), 0o600))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		ctx     context.Context
		opts    Options
		wantErr string
	}{
		{"no cpuinfo", context.Background(), Options{ProcDir: emptyProc}, "reading cpuinfo"},
		{"bad meminfo", context.Background(), Options{ProcDir: badMem}, "reading meminfo"},
		{"missing mount", context.Background(), Options{ProcDir: filepath.Join("testdata", "proc"), Mounts: []string{"/nonexistent/mount"}}, "examining file system of /nonexistent/mount"},
		{"cancelled", cancelled, Options{}, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Collect(tt.ctx, tt.opts)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestProbeKVM(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rw := filepath.Join(dir, "kvm")
	require.NoError(t, os.WriteFile(rw, nil, 0o600))
	tests := []struct {
		name string
		path string
		want KVMStatus
	}{
		{"openable read-write", rw, KVMStatus{Present: true, Usable: true}},
		{"missing", filepath.Join(dir, "missing"), KVMStatus{}},
		// A directory cannot be opened read-write, even by root.
		{"present but unusable", dir, KVMStatus{Present: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := ProbeKVM(tt.path)
			require.Equal(t, tt.want.Present, got.Present)
			require.Equal(t, tt.want.Usable, got.Usable)
			require.Equal(t, tt.want.Usable, got.Error == "", "an error exactly when unusable: %q", got.Error)
		})
	}
}

func TestSamplerUsage(t *testing.T) {
	t.Parallel()
	proc := t.TempDir()
	for _, name := range []string{"meminfo", "loadavg", "uptime"} {
		src := name
		if name != "meminfo" {
			src = filepath.Join("proc", name)
		}
		require.NoError(t, os.WriteFile(filepath.Join(proc, name), []byte(testdata(t, src)), 0o600))
	}
	writeStat := func(sample string) {
		require.NoError(t, os.WriteFile(filepath.Join(proc, "stat"), []byte(testdata(t, sample)), 0o600))
	}
	s := NewSampler(Options{ProcDir: proc, Mounts: []string{"/"}})
	ctx := context.Background()

	writeStat("stat-1")
	u, err := s.Usage(ctx)
	require.NoError(t, err)
	require.InDelta(t, 15, u.CPUPercent, 1e-9, "first sample: average since boot")
	require.Equal(t, int64((16318412-9876540)*1024), u.MemoryUsedBytes)
	require.InDelta(t, 0.52, u.Load1, 1e-9)
	require.Equal(t, int64(12345), u.UptimeSeconds)
	require.Positive(t, u.DiskUsedBytes)
	require.NoError(t, u.Validate())

	writeStat("stat-2")
	u, err = s.Usage(ctx)
	require.NoError(t, err)
	require.InDelta(t, 50, u.CPUPercent, 1e-9, "delta since the previous sample")

	u, err = s.Usage(ctx)
	require.NoError(t, err)
	require.Zero(t, u.CPUPercent, "no ticks since the previous sample")

	require.NoError(t, os.Remove(filepath.Join(proc, "loadavg")))
	_, err = s.Usage(ctx)
	require.ErrorContains(t, err, "reading loadavg")
}

func TestSamplerThisHost(t *testing.T) {
	t.Parallel()
	s := NewSampler(Options{})
	for range 2 {
		u, err := s.Usage(context.Background())
		require.NoError(t, err)
		require.NoError(t, u.Validate())
		require.Positive(t, u.MemoryUsedBytes)
	}
}

// The provider and the wire protocol name kinds and states independently;
// they must agree or the server would reject the agent's reports.
func TestNamesMatchWireProtocol(t *testing.T) {
	t.Parallel()
	require.Equal(t, agentproto.HypervisorSim, hypervisor.KindSim)
	require.Equal(t, agentproto.HypervisorCloudHypervisor, hypervisor.KindCloudHypervisor)
	for _, s := range []struct {
		provider hypervisor.State
		wire     string
	}{
		{hypervisor.StateCreating, agentproto.VMCreating},
		{hypervisor.StateRunning, agentproto.VMRunning},
		{hypervisor.StateStopped, agentproto.VMStopped},
		{hypervisor.StatePaused, agentproto.VMPaused},
		{hypervisor.StateFailed, agentproto.VMFailed},
		{hypervisor.StateDeleted, agentproto.VMDeleted},
	} {
		require.Equal(t, s.wire, string(s.provider))
	}
}

func BenchmarkUsage(b *testing.B) {
	s := NewSampler(Options{})
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.Usage(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
