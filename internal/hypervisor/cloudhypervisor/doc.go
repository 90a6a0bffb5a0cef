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
//	console.log  the guest's serial console (console.log.N: earlier runs)
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
// The provider is written against what Cloud Hypervisor's code does (see
// package standin for the call × state table, v48 to v53), not only its
// API document: "not created" is 404 or a 500 whose JSON array of error
// strings names it; success is 200 or 204; errors quote the VMM's error
// chain. Config errors surface at vm.boot, so a refused boot fails the VM
// with the VMM's message and deletes its definition, and a retried Start
// defines it again (v53 refuses a second vm.boot of such a VM). Stop
// presses the ACPI power button and waits Options.StopGrace before the
// hard vm.shutdown; after it the VMM reports "Created", which is stopped.
// A guest that powers off ends its VMM with status 0: the VM is stopped,
// and Start makes a new VMM. The serial file, which the VMM truncates at
// vm.create, at a boot after a shutdown and at every reboot, is rotated
// aside first (console.log.1 … .MaxConsoleLogs).
//
// Networking goes through the Network interface, by default package
// vmnet's netlink implementation (bridge + TAP per VM). The TAP is made
// again, on the bridge, at re-adoption and before every start: a VMM that
// finds none creates its own, attached to nothing.
package cloudhypervisor
