// Package cloudhypervisor is the hypervisor.Provider that runs microVMs
// with Cloud Hypervisor, one VMM process per VM, driven through the VMM's
// REST API on a Unix socket (--api-socket), as described by Cloud
// Hypervisor's OpenAPI document.
//
// Every runtime file of a VM lives in <runtime-dir>/<vm-id>/:
//
//	api.sock     the VMM's API socket
//	pid          the VMM's process id
//	vmm.log      the VMM's own stdout and stderr
//	console.log  the guest's serial console
//	disk.raw     the VM's copy of the disk image (a reflink clone when the
//	             file system can, else a sparse copy)
//	seed.iso     the cloud-init NoCloud seed (package cloudinit)
//	spec.json    the spec the VM was created with
//	state.json   the provider's record: state, pid, TAP, error
//
// Following flintlock, the pieces are small and separately tested: a pure
// BuildVMConfig turns a spec and its paths into the complete VmConfig the
// VMM gets; the per-VM record (written atomically) owns the pid and socket
// paths; each step of Create (directory, disk, seed, TAP, VMM process,
// vm.create) checks whether its result already exists before acting, so a
// Create interrupted at any point, even by an agent crash, is completed by
// running it again.
//
// VMM processes run in their own process group and outlive the agent. A
// Provider constructed on the same runtime directory re-adopts every VM
// whose VMM is still alive (its pid is running with our API socket on its
// command line, and the socket answers vmm.ping); a VM whose VMM is gone is
// reported stopped if it was stopped on purpose, failed otherwise.
//
// Networking goes through the Network interface, by default package
// vmnet's netlink implementation (bridge + TAP per VM).
package cloudhypervisor
