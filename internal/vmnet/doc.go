// Package vmnet wires microVM network devices on the host through netlink:
// a bridge (default "nkudo0") and one TAP device per VM, attached to the
// bridge and owned by the user the VMM runs as.
//
// Everything goes through the kernel's netlink and tun interfaces
// (github.com/vishvananda/netlink); nothing shells out to ip(8), so errors
// are typed and the agent needs no iproute2 on the host.
//
// Names and MACs are derived from the VM id, never allocated: the same VM
// gets the same TAP name and guest MAC after an agent restart, which is
// what lets the agent re-adopt running VMs and lets every step here be
// idempotent (ensure the bridge, ensure the TAP, delete the TAP).
//
// A Manager may be bound to a network namespace other than the agent's;
// the tests use that to work in a namespace they create and never touch
// the host's.
package vmnet
