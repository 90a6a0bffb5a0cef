package agentproto

import (
	"fmt"

	"github.com/google/uuid"
)

// Hypervisor kinds.
const (
	HypervisorCloudHypervisor = "cloud-hypervisor"
	// HypervisorSim is the simulated hypervisor of `nkudo dev` and load
	// tests; hosts running it always report Simulated, so every view can
	// label them.
	HypervisorSim = "sim"
)

// VM states an agent reports. The server stores them as the VM's actual
// state; they match the store's VM state names.
const (
	VMRunning  = "running"
	VMStopped  = "stopped"
	VMDeleted  = "deleted"
	VMUnknown  = "unknown"
	VMCreating = "creating"
	VMFailed   = "failed"
	VMPaused   = "paused"
)

var vmStates = []string{VMRunning, VMStopped, VMDeleted, VMUnknown, VMCreating, VMFailed, VMPaused}

// NetBird connection states.
const (
	NetBirdDisabled     = "disabled"
	NetBirdNotInstalled = "not-installed"
	NetBirdDisconnected = "disconnected"
	NetBirdJoining      = "joining"
	NetBirdConnected    = "connected"
	NetBirdDegraded     = "degraded"
)

var netBirdStates = []string{NetBirdDisabled, NetBirdNotInstalled, NetBirdDisconnected, NetBirdJoining, NetBirdConnected, NetBirdDegraded}

// HostFacts describes an edge host. The agent sends them in hello and in a
// heartbeat only when they changed, since they are large and rarely do.
type HostFacts struct {
	Hostname         string     `json:"hostname"`
	OS               string     `json:"os"`
	Kernel           string     `json:"kernel"`
	Arch             string     `json:"arch"`
	CPUModel         string     `json:"cpu_model"`
	CPUCores         int        `json:"cpu_cores"`
	MemoryTotalBytes int64      `json:"memory_total_bytes"`
	Disks            []Disk     `json:"disks"`
	KVM              bool       `json:"kvm"`
	Hypervisor       Hypervisor `json:"hypervisor"`
	NetBirdVersion   string     `json:"netbird_version,omitempty"`
	AgentVersion     string     `json:"agent_version"`
}

// Disk is one mounted filesystem of a host.
type Disk struct {
	Mount      string `json:"mount"`
	Device     string `json:"device"`
	FSType     string `json:"fs_type"`
	TotalBytes int64  `json:"total_bytes"`
	FreeBytes  int64  `json:"free_bytes"`
}

// Hypervisor names the VMM an agent drives.
type Hypervisor struct {
	Kind    string `json:"kind"`
	Version string `json:"version,omitempty"`
	// Simulated is true when no real VM runs behind this host's VMs.
	Simulated bool `json:"simulated"`
	// Unavailable says why this hypervisor cannot run VMs on the host
	// (its binary is missing, /dev/kvm cannot be opened, …); empty when
	// it can. The agent stays connected and fails VM actions with it.
	Unavailable string `json:"unavailable,omitempty"`
}

// Validate checks the facts.
func (f HostFacts) Validate() error {
	if err := checkRequiredText("hostname", f.Hostname, MaxHostnameBytes); err != nil {
		return err
	}
	for _, t := range []struct{ field, v string }{
		{"os", f.OS}, {"kernel", f.Kernel}, {"arch", f.Arch}, {"cpu_model", f.CPUModel},
		{"netbird_version", f.NetBirdVersion},
	} {
		if err := checkText(t.field, t.v, MaxTextBytes); err != nil {
			return err
		}
	}
	if err := checkName("agent_version", f.AgentVersion); err != nil {
		return err
	}
	if err := checkNonNegative("cpu_cores", int64(f.CPUCores)); err != nil {
		return err
	}
	if err := checkNonNegative("memory_total_bytes", f.MemoryTotalBytes); err != nil {
		return err
	}
	if err := checkCount("disks", len(f.Disks), MaxDisks); err != nil {
		return err
	}
	for i, d := range f.Disks {
		if err := d.Validate(); err != nil {
			return fmt.Errorf("disks[%d]: %w", i, err)
		}
	}
	if err := f.Hypervisor.Validate(); err != nil {
		return fmt.Errorf("hypervisor: %w", err)
	}
	return nil
}

// Validate checks the disk.
func (d Disk) Validate() error {
	if err := checkRequiredText("mount", d.Mount, MaxTextBytes); err != nil {
		return err
	}
	if err := checkText("device", d.Device, MaxTextBytes); err != nil {
		return err
	}
	if err := checkText("fs_type", d.FSType, MaxNameBytes); err != nil {
		return err
	}
	if err := checkNonNegative("total_bytes", d.TotalBytes); err != nil {
		return err
	}
	if err := checkNonNegative("free_bytes", d.FreeBytes); err != nil {
		return err
	}
	if d.FreeBytes > d.TotalBytes {
		return fmt.Errorf("free_bytes: %d over total_bytes %d: %w", d.FreeBytes, d.TotalBytes, ErrInvalid)
	}
	return nil
}

// Validate checks the hypervisor.
func (h Hypervisor) Validate() error {
	if err := checkOneOf("kind", h.Kind, HypervisorCloudHypervisor, HypervisorSim); err != nil {
		return err
	}
	if err := checkText("version", h.Version, MaxNameBytes); err != nil {
		return err
	}
	if err := checkText("unavailable", h.Unavailable, MaxErrorBytes); err != nil {
		return err
	}
	// A sim host that did not say so would pass for real hardware in
	// every view; the spec requires it to be labelled.
	if h.Kind == HypervisorSim && !h.Simulated {
		return fmt.Errorf("simulated: must be true for kind %q: %w", HypervisorSim, ErrInvalid)
	}
	return nil
}

// VMStatus is an agent's report of one VM's actual state.
type VMStatus struct {
	VMID  uuid.UUID `json:"vm_id"`
	State string    `json:"state"`
	Error string    `json:"error,omitempty"`
}

// Validate checks the status.
func (s VMStatus) Validate() error {
	if err := checkID("vm_id", s.VMID); err != nil {
		return err
	}
	if err := checkOneOf("state", s.State, vmStates...); err != nil {
		return err
	}
	return checkText("error", s.Error, MaxErrorBytes)
}

func validateVMs(vms []VMStatus) error {
	if err := checkCount("vms", len(vms), MaxVMsPerHost); err != nil {
		return err
	}
	for i, vm := range vms {
		if err := vm.Validate(); err != nil {
			return fmt.Errorf("vms[%d]: %w", i, err)
		}
	}
	return nil
}

// NetBirdStatus is the agent's view of its NetBird mesh membership.
type NetBirdStatus struct {
	State               string        `json:"state"`
	IP                  string        `json:"ip,omitempty"`
	FQDN                string        `json:"fqdn,omitempty"`
	PeersConnected      int           `json:"peers_connected"`
	PeersTotal          int           `json:"peers_total"`
	ManagementConnected bool          `json:"management_connected"`
	SignalConnected     bool          `json:"signal_connected"`
	Probe               *NetBirdProbe `json:"probe,omitempty"`
	Error               string        `json:"error,omitempty"`
}

// NetBirdProbe is the result of the agent's reachability probe through
// the mesh; absent when no probe ran.
type NetBirdProbe struct {
	OK        bool    `json:"ok"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

// Validate checks the status.
func (s NetBirdStatus) Validate() error {
	if err := checkOneOf("state", s.State, netBirdStates...); err != nil {
		return err
	}
	if err := checkIP("ip", s.IP); err != nil {
		return err
	}
	if err := checkText("fqdn", s.FQDN, MaxHostnameBytes); err != nil {
		return err
	}
	if err := checkNonNegative("peers_connected", int64(s.PeersConnected)); err != nil {
		return err
	}
	if err := checkNonNegative("peers_total", int64(s.PeersTotal)); err != nil {
		return err
	}
	if s.PeersConnected > s.PeersTotal {
		return fmt.Errorf("peers_connected: %d over peers_total %d: %w", s.PeersConnected, s.PeersTotal, ErrInvalid)
	}
	if s.Probe != nil {
		if err := checkRatio("probe.latency_ms", s.Probe.LatencyMS); err != nil {
			return err
		}
		if err := checkText("probe.error", s.Probe.Error, MaxErrorBytes); err != nil {
			return err
		}
	}
	return checkText("error", s.Error, MaxErrorBytes)
}
