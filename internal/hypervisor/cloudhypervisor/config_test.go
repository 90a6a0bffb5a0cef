package cloudhypervisor

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/specfile"
	"github.com/kubedoio/n-kudo/internal/vmnet"
)

// vmConfigSchema loads the VmConfig schema from the API document.
func vmConfigSchema(t *testing.T) *openapi3.Schema {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile(specfile.Path(t, "cloud-hypervisor.yaml"))
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))
	ref, ok := doc.Components.Schemas["VmConfig"]
	require.True(t, ok)
	return ref.Value
}

// asJSON round-trips v through JSON, as the VMM would receive it.
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

func TestBuildVMConfig(t *testing.T) {
	t.Parallel()
	schema := vmConfigSchema(t)
	id := uuid.MustParse("6f1c8a52-3c0a-4b8e-9d3f-2a7e5b9c1d04")
	paths := PathsFor("/run/nkudo/vms", id, "/usr/share/cloud-hypervisor/hypervisor-fw")
	base := hypervisor.VMSpec{ID: id, Name: "web", VCPUs: 2, MemoryMiB: 512, DiskImage: "/images/ubuntu.raw"}
	tests := []struct {
		name    string
		mutate  func(*hypervisor.VMSpec)
		payload PayloadConfig
		cpus    int
		memory  int64
		mac     string
	}{
		{
			name:    "firmware boot",
			mutate:  func(*hypervisor.VMSpec) {},
			payload: PayloadConfig{Firmware: "/usr/share/cloud-hypervisor/hypervisor-fw"},
			cpus:    2, memory: 512 << 20, mac: vmnet.MACFor(id).String(),
		},
		{
			name: "kernel with cmdline",
			mutate: func(s *hypervisor.VMSpec) {
				s.Kernel, s.Cmdline = "/boot/vmlinux", "console=ttyS0 root=/dev/vda2 ro quiet"
			},
			payload: PayloadConfig{Kernel: "/boot/vmlinux", Cmdline: "console=ttyS0 root=/dev/vda2 ro quiet"},
			cpus:    2, memory: 512 << 20, mac: vmnet.MACFor(id).String(),
		},
		{
			name:    "kernel with default cmdline",
			mutate:  func(s *hypervisor.VMSpec) { s.Kernel = "/boot/vmlinux" },
			payload: PayloadConfig{Kernel: "/boot/vmlinux", Cmdline: DefaultCmdline},
			cpus:    2, memory: 512 << 20, mac: vmnet.MACFor(id).String(),
		},
		{
			name: "limits and given mac",
			mutate: func(s *hypervisor.VMSpec) {
				s.VCPUs, s.MemoryMiB, s.MAC = 64, hypervisor.MaxMemoryMiB, "52:54:00:12:34:56"
			},
			payload: PayloadConfig{Firmware: "/usr/share/cloud-hypervisor/hypervisor-fw"},
			cpus:    64, memory: 1 << 40, mac: "52:54:00:12:34:56",
		},
		{
			name:    "minimum memory",
			mutate:  func(s *hypervisor.VMSpec) { s.VCPUs, s.MemoryMiB = 1, hypervisor.MinMemoryMiB },
			payload: PayloadConfig{Firmware: "/usr/share/cloud-hypervisor/hypervisor-fw"},
			cpus:    1, memory: 64 << 20, mac: vmnet.MACFor(id).String(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := base
			tt.mutate(&spec)
			require.NoError(t, spec.Validate())
			got := BuildVMConfig(spec, paths)
			assert.Equal(t, CpusConfig{BootVcpus: tt.cpus, MaxVcpus: tt.cpus}, got.Cpus)
			assert.Equal(t, tt.memory, got.Memory.Size)
			assert.Equal(t, tt.payload, got.Payload)
			assert.Equal(t, []DiskConfig{
				{Path: "/run/nkudo/vms/" + id.String() + "/disk.raw", ID: "root"},
				{Path: "/run/nkudo/vms/" + id.String() + "/seed.iso", Readonly: true, ImageType: "Raw", ID: "cidata"},
			}, got.Disks)
			assert.Equal(t, []NetConfig{{Tap: vmnet.TAPName(id), Mac: tt.mac, ID: "net0"}}, got.Net)
			assert.Equal(t, ConsoleConfig{Mode: "File", File: "/run/nkudo/vms/" + id.String() + "/console.log"}, got.Serial)
			assert.Equal(t, ConsoleConfig{Mode: "Off"}, got.Console)
			assert.Equal(t, RngConfig{Src: "/dev/urandom"}, got.Rng)
			assert.Equal(t, got, BuildVMConfig(spec, paths), "pure: same input, same config")
			require.NoError(t, schema.VisitJSON(asJSON(t, got)), "the config must satisfy the API's VmConfig schema")
		})
	}
}

// TestVMConfigSchemaRejects shows the schema check above can fail.
func TestVMConfigSchemaRejects(t *testing.T) {
	t.Parallel()
	schema := vmConfigSchema(t)
	for name, body := range map[string]any{
		"no payload":       map[string]any{"cpus": map[string]any{"boot_vcpus": 1, "max_vcpus": 1}},
		"zero vcpus":       map[string]any{"payload": map[string]any{}, "cpus": map[string]any{"boot_vcpus": 0, "max_vcpus": 1}},
		"bad console mode": map[string]any{"payload": map[string]any{}, "serial": map[string]any{"mode": "Logfile"}},
		"memory as string": map[string]any{"payload": map[string]any{}, "memory": map[string]any{"size": "512M"}},
	} {
		assert.Error(t, schema.VisitJSON(asJSON(t, body)), name)
	}
}

func TestParseVersion(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"cloud-hypervisor v43.0\n":            "v43.0",
		"cloud-hypervisor v48.0-12-gabcdef\n": "v48.0-12-gabcdef",
		"v1\nextra":                           "v1",
	} {
		assert.Equal(t, want, parseVersion([]byte(in)), in)
	}
}
