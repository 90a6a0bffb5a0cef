// Package sim is a simulated hypervisor.Provider for `nkudo dev`, load
// tests and machines without Cloud Hypervisor or KVM.
//
// It runs no guest. It implements the same state machine as a real backend
// (hypervisor.Transition), validates specs the same way (vCPUs, memory,
// names, MAC), and persists its VMs in a JSON file in its runtime directory,
// so that simulated VMs survive an agent restart exactly as real ones
// outlive the agent process. The one deliberate difference: the disk image
// and kernel paths must be well-formed but need not exist, since no guest
// ever reads them.
//
// Capabilities().Simulated is always true, so every view of a host running
// it can say that its VMs are not real.
package sim
