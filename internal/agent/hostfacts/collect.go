package hostfacts

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
)

// Options say where to look and what to report besides the host itself.
type Options struct {
	// ProcDir is the proc file system; default "/proc".
	ProcDir string
	// OSReleasePaths are tried in order; default /etc/os-release then
	// /usr/lib/os-release, as os-release(5) specifies.
	OSReleasePaths []string
	// KVMDevice is the KVM device node; default "/dev/kvm".
	KVMDevice string
	// Mounts are the paths whose file systems are reported as disks
	// (typically / and the runtime and image directories); default "/".
	// A path need not be a mount point: the file system holding it is
	// reported, once even if several paths share it.
	Mounts []string
	// Hostname overrides os.Hostname.
	Hostname string
	// Hypervisor is the provider's capabilities, reported as is.
	Hypervisor hypervisor.Capabilities
	// NetBirdVersion is the NetBird client's version, empty when NetBird
	// is not installed.
	NetBirdVersion string
	// AgentVersion is the agent's own version.
	AgentVersion string
}

func (o Options) withDefaults() Options {
	if o.ProcDir == "" {
		o.ProcDir = "/proc"
	}
	if len(o.OSReleasePaths) == 0 {
		o.OSReleasePaths = []string{"/etc/os-release", "/usr/lib/os-release"}
	}
	if o.KVMDevice == "" {
		o.KVMDevice = "/dev/kvm"
	}
	if len(o.Mounts) == 0 {
		o.Mounts = []string{"/"}
	}
	return o
}

// Collect gathers the host's facts. It fails when a file every Linux host
// has (cpuinfo, meminfo) cannot be read or a configured mount cannot be
// examined; a missing os-release only makes the OS "Linux".
func Collect(ctx context.Context, opts Options) (agentproto.HostFacts, error) {
	if err := ctx.Err(); err != nil {
		return agentproto.HostFacts{}, fmt.Errorf("collecting host facts: %w", err)
	}
	opts = opts.withDefaults()
	f := agentproto.HostFacts{
		Hypervisor: agentproto.Hypervisor{
			Kind:      opts.Hypervisor.Kind,
			Version:   opts.Hypervisor.Version,
			Simulated: opts.Hypervisor.Simulated,
			// Bounded like every free-text reason on the wire.
			Unavailable: truncateText(opts.Hypervisor.Unavailable, agentproto.MaxErrorBytes),
		},
		NetBirdVersion: opts.NetBirdVersion,
		AgentVersion:   opts.AgentVersion,
		Hostname:       opts.Hostname,
	}
	if f.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return agentproto.HostFacts{}, fmt.Errorf("reading hostname: %w", err)
		}
		f.Hostname = h
	}

	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return agentproto.HostFacts{}, fmt.Errorf("reading uname: %w", err)
	}
	f.Kernel = unix.ByteSliceToString(uts.Release[:])
	f.Arch = unix.ByteSliceToString(uts.Machine[:])

	cpuinfo, err := os.ReadFile(filepath.Join(opts.ProcDir, "cpuinfo"))
	if err != nil {
		return agentproto.HostFacts{}, fmt.Errorf("reading cpuinfo: %w", err)
	}
	cpu := ParseCPUInfo(string(cpuinfo))
	f.CPUModel, f.CPUCores = cpu.Model, cpu.LogicalCPUs

	mem, err := readMemInfo(opts.ProcDir)
	if err != nil {
		return agentproto.HostFacts{}, err
	}
	f.MemoryTotalBytes = mem.TotalBytes

	f.OS = readOSRelease(opts.OSReleasePaths).String()

	disks, err := collectDisks(opts)
	if err != nil {
		return agentproto.HostFacts{}, err
	}
	for _, d := range disks {
		f.Disks = append(f.Disks, d.Disk)
	}

	f.KVM = ProbeKVM(opts.KVMDevice).Usable
	return f, nil
}

func readMemInfo(procDir string) (MemInfo, error) {
	data, err := os.ReadFile(filepath.Join(procDir, "meminfo"))
	if err != nil {
		return MemInfo{}, fmt.Errorf("reading meminfo: %w", err)
	}
	mem, err := ParseMemInfo(string(data))
	if err != nil {
		return MemInfo{}, fmt.Errorf("reading meminfo: %w", err)
	}
	return mem, nil
}

func readOSRelease(paths []string) OSRelease {
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err == nil {
			return ParseOSRelease(string(data))
		}
	}
	return OSRelease{}
}

// disk is a reported file system and its bytes in use.
type disk struct {
	agentproto.Disk
	used int64
}

// collectDisks reports the file system of each configured path, once per
// file system.
func collectDisks(opts Options) ([]disk, error) {
	var mounts []Mount
	if data, err := os.ReadFile(filepath.Join(opts.ProcDir, "self", "mounts")); err == nil {
		mounts = ParseMounts(string(data))
	}
	seen := make(map[string]bool)
	var disks []disk
	for _, path := range opts.Mounts {
		total, free, used, err := statfs(path)
		if err != nil {
			return nil, err
		}
		d := disk{Disk: agentproto.Disk{Mount: path, TotalBytes: total, FreeBytes: free}, used: used}
		if m, ok := MountFor(mounts, path); ok {
			d.Mount, d.Device, d.FSType = m.Point, m.Device, m.FSType
		}
		if seen[d.Mount] {
			continue
		}
		seen[d.Mount] = true
		disks = append(disks, d)
	}
	return disks, nil
}

// statfs returns the size of the file system holding path, the bytes
// available to unprivileged users (what a VM image can still grow into),
// and the bytes in use.
func statfs(path string) (total, free, used int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, 0, fmt.Errorf("examining file system of %s: %w", path, err)
	}
	bsize := int64(st.Bsize)
	total = int64(st.Blocks) * bsize
	free = min(int64(st.Bavail)*bsize, total)
	used = max(total-int64(st.Bfree)*bsize, 0)
	return total, free, used, nil
}

// KVMStatus says whether hardware virtualisation is usable.
type KVMStatus struct {
	// Present is true when the device node exists.
	Present bool `json:"present"`
	// Usable is true when the agent can open it read-write, which is what
	// Cloud Hypervisor needs.
	Usable bool `json:"usable"`
	// Error says why it is not usable (missing module, permissions).
	Error string `json:"error,omitempty"`
}

// ProbeKVM checks the KVM device node.
func ProbeKVM(device string) KVMStatus {
	f, err := os.OpenFile(device, os.O_RDWR, 0)
	if err == nil {
		_ = f.Close()
		return KVMStatus{Present: true, Usable: true}
	}
	if errors.Is(err, os.ErrNotExist) {
		return KVMStatus{Error: fmt.Sprintf("%s does not exist: KVM module not loaded or no hardware virtualisation", device)}
	}
	return KVMStatus{Present: true, Error: err.Error()}
}

// Sampler computes heartbeat usage. CPU usage is a delta between two reads
// of /proc/stat, so the Sampler keeps the previous read: each Usage call
// reports the busy share since the last call (since boot on the first),
// without sleeping to take a second sample.
type Sampler struct {
	opts Options

	mu   sync.Mutex // guards prev
	prev CPUTimes
}

// NewSampler returns a Sampler reading the files opts names.
func NewSampler(opts Options) *Sampler {
	return &Sampler{opts: opts.withDefaults()}
}

// Usage reports current usage. VMsRunning is left zero for the caller, who
// knows the VMs.
func (s *Sampler) Usage(ctx context.Context) (agentproto.Usage, error) {
	if err := ctx.Err(); err != nil {
		return agentproto.Usage{}, fmt.Errorf("sampling usage: %w", err)
	}
	stat, err := os.ReadFile(filepath.Join(s.opts.ProcDir, "stat"))
	if err != nil {
		return agentproto.Usage{}, fmt.Errorf("reading stat: %w", err)
	}
	cur, err := ParseProcStat(string(stat))
	if err != nil {
		return agentproto.Usage{}, fmt.Errorf("reading stat: %w", err)
	}
	var u agentproto.Usage
	s.mu.Lock()
	u.CPUPercent = CPUPercent(s.prev, cur)
	s.prev = cur
	s.mu.Unlock()

	mem, err := readMemInfo(s.opts.ProcDir)
	if err != nil {
		return agentproto.Usage{}, err
	}
	u.MemoryUsedBytes = mem.UsedBytes()

	if data, err := os.ReadFile(filepath.Join(s.opts.ProcDir, "loadavg")); err != nil {
		return agentproto.Usage{}, fmt.Errorf("reading loadavg: %w", err)
	} else if u.Load1, err = ParseLoadAvg(string(data)); err != nil {
		return agentproto.Usage{}, fmt.Errorf("reading loadavg: %w", err)
	}
	if data, err := os.ReadFile(filepath.Join(s.opts.ProcDir, "uptime")); err != nil {
		return agentproto.Usage{}, fmt.Errorf("reading uptime: %w", err)
	} else if u.UptimeSeconds, err = ParseUptime(string(data)); err != nil {
		return agentproto.Usage{}, fmt.Errorf("reading uptime: %w", err)
	}

	disks, err := collectDisks(s.opts)
	if err != nil {
		return agentproto.Usage{}, err
	}
	for _, d := range disks {
		u.DiskUsedBytes += d.used
	}
	return u, nil
}

// truncateText makes s valid UTF-8 of at most n bytes, cut on a rune
// boundary: reasons come from error messages that may quote paths.
func truncateText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
