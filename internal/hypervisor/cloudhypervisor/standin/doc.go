// Package standin is a stand-in for the Cloud Hypervisor VMM, for tests
// only: it is imported by _test.go files, never by production code.
//
// A test binary re-executed under the name "cloud-hypervisor" (see Install)
// runs Main, which serves Cloud Hypervisor's REST API on the Unix socket
// given by --api-socket path=…, validates every request against the API
// document (specs/cloud-hypervisor.yaml, through Config.SpecPath), keeps the
// VMM's VM state machine, writes guest console output to the serial file
// of the VmConfig, and logs every call (with any validation error) to
// CallsFile beside the binary, so tests can require that the provider never
// sent a request the real VMM would refuse. Both the provider's own tests
// and the end-to-end tests (a real nkudo-agent process) use it.
//
// # Modes
//
// ModeReal (the default) answers as Cloud Hypervisor's own code does, read
// from the cloud-hypervisor/cloud-hypervisor repository, v48.0 to v53.0
// and HEAD:
//
//   - vmm/src/api/http/mod.rs: error_response writes every error as a JSON
//     array of strings, the error and its sources top first (["Error from
//     API", "The VM info is not available", "VM is not created"]); the
//     EndpointHandler default answers 204 without a body, 200 with one;
//     from v53, api_error_status_code maps VmNotCreated and VmMissingConfig
//     to 404 and everything else to 500.
//   - vmm/src/api/http/http_endpoint.rs: before v53 the VmInfo, VmCreate
//     and VmActionHandler errors are error_response(e,
//     StatusCode::InternalServerError), so "not created" is 500; VmmShutdown
//     answers 200; a body on an action without one, or JSON that does not
//     deserialise (a MAC that MacAddr::parse_str in net_util/src/mac.rs
//     refuses), is 400.
//   - vmm/src/api/mod.rs: the ApiError messages ("The VM could not boot",
//     "Error triggering power button", ...).
//   - vmm/src/lib.rs (impl RequestHandler for Vmm): vm_create only stores
//     the config and opens the console files; vm_boot builds the Vm
//     (Vm::new validates the config and opens payload and disks) and boots
//     it; vm_shutdown drops the Vm, so vm.info then says "Created", never
//     "Shutdown"; vm_reboot shuts down and boots a new Vm; vm_delete is a
//     no-op without a VM; vmm_shutdown is vm_delete and exit; from v53
//     (VmOwnership) a Vm whose boot failed stays owned, vm.boot answers "VM
//     is already created" and the first vm.delete fails but drops it. The
//     serial file is opened with truncation at vm.create, at a vm.boot
//     after vm.shutdown and at vm.reboot. A guest power-off (sent to the
//     stand-in as GuestPowerOffSignal, or after vm.power-button) ends the
//     VMM with status 0.
//   - vmm/src/vm.rs: Vm::boot of a paused Vm resumes it (before v53);
//     VmState::valid_transition; the VmError messages ("VM is not
//     created", "VM is not running", "invalid VM state transition: Running
//     to Running").
//
// ModeOpenAPI answers as the document says: 404 without a VM, 405 in the
// wrong state, 204 for vmm.shutdown, errors as plain text, a "Shutdown"
// state after vm.shutdown, and a VMM that stays up after a guest power-off.
//
// # Call × state
//
// What each call answers in each state, for v48–v52, v53+ and the
// document: the status, and a part of the error message ("-": not
// modelled). The states: none (fresh VMM), created (vm.create),
// running (then vm.boot), paused (then vm.pause), shutdown (running, then
// vm.shutdown), bootfail (vm.boot refused: the kernel file is missing),
// deleted (created, then vm.delete). Differences from the document are
// the 500s where it says 404 (not created before v53), the 500s where it
// says 405 (wrong state: the document's 405 is never sent), vmm.shutdown's
// 200, "Created" where it would say "Shutdown", boot of a paused VM
// resuming it before v53, and reboot of a paused VM working. The
// stand-in's table test (TestStandinCallState in package cloudhypervisor)
// reads this table and checks every cell.
//
//	vmm.ping         none     | 200                     | 200                     | 200
//	vmm.ping         running  | 200                     | 200                     | 200
//	vm.info          none     | 500 VM is not created   | 404 VM is not created   | 404
//	vm.info          created  | 200 Created             | 200 Created             | 200 Created
//	vm.info          running  | 200 Running             | 200 Running             | 200 Running
//	vm.info          paused   | 200 Paused              | 200 Paused              | 200 Paused
//	vm.info          shutdown | 200 Created             | 200 Created             | 200 Shutdown
//	vm.info          bootfail | 200 Created             | 200 Created             | 200 Created
//	vm.info          deleted  | 500 VM is not created   | 404 VM is not created   | 404
//	vm.create        none     | 204                     | 204                     | 204
//	vm.create        created  | 500 already created     | 500 already created     | 500
//	vm.create        running  | 500 already created     | 500 already created     | 500
//	vm.create        deleted  | 204                     | 204                     | 204
//	vm.boot          none     | 500 VM config is missing | 404 VM config is missing | 404
//	vm.boot          created  | 204                     | 204                     | 204
//	vm.boot          running  | 500 Running to Running  | 500 already created     | 500
//	vm.boot          paused   | 204                     | 500 already created     | 500
//	vm.boot          shutdown | 204                     | 204                     | 204
//	vm.boot          bootfail | 500 kernel image        | 500 already created     | 500 kernel image
//	vm.boot          deleted  | 500 VM config is missing | 404 VM config is missing | 404
//	vm.shutdown      none     | 500 VM is not running   | 500 VM is not running   | 404
//	vm.shutdown      created  | 500 VM is not running   | 500 VM is not running   | 405
//	vm.shutdown      running  | 204                     | 204                     | 204
//	vm.shutdown      paused   | 204                     | 204                     | 204
//	vm.shutdown      shutdown | 500 VM is not running   | 500 VM is not running   | 405
//	vm.shutdown      bootfail | 500 VM is not running   | 500 Created to Shutdown | 405
//	vm.reboot        none     | 500 VM is not created   | 404 VM is not created   | 404
//	vm.reboot        created  | 500 VM is not created   | 404 VM is not created   | 405
//	vm.reboot        running  | 204                     | 204                     | 204
//	vm.reboot        paused   | 204                     | 204                     | 405
//	vm.reboot        shutdown | 500 VM is not created   | 404 VM is not created   | 405
//	vm.power-button  none     | 500 VM is not running   | 500 VM is not running   | 404
//	vm.power-button  created  | 500 VM is not running   | 500 VM is not running   | 405
//	vm.power-button  running  | 204                     | 204                     | 204
//	vm.power-button  shutdown | 500 VM is not running   | 500 VM is not running   | 405
//	vm.pause         none     | 500 VM is not running   | 500 VM is not running   | 404
//	vm.pause         created  | 500 VM is not running   | 500 VM is not running   | 405
//	vm.pause         running  | 204                     | 204                     | 204
//	vm.pause         paused   | 500 Paused to Paused    | 500 Paused to Paused    | 405
//	vm.resume        created  | 500 VM is not running   | 500 VM is not running   | 405
//	vm.resume        running  | 500 Running to Running  | 500 Running to Running  | 405
//	vm.resume        paused   | 204                     | 204                     | 204
//	vm.delete        none     | 204                     | 204                     | 204
//	vm.delete        created  | 204                     | 204                     | 204
//	vm.delete        running  | 204                     | 204                     | 204
//	vm.delete        bootfail | 204                     | 500 Created to Shutdown | 204
//	vm.delete        deleted  | 204                     | 204                     | 204
//	vmm.shutdown     none     | 200                     | 200                     | 204
//	vmm.shutdown     running  | 200                     | 200                     | 204
//
// Where a call ends the VMM: vmm.shutdown always; vm.power-button of a
// running VM in ModeReal (the guest powers off; Config.IgnorePowerButton
// plays a guest that does not).
package standin
