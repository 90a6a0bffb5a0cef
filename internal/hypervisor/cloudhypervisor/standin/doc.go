// Package standin is a stand-in for the Cloud Hypervisor VMM, for tests
// only: it is imported by _test.go files, never by production code.
//
// A test binary re-executed under the name "cloud-hypervisor" (see Install)
// runs Main, which serves Cloud Hypervisor's REST API on the Unix socket
// given by --api-socket path=…, validates every request against the API
// document (specs/cloud-hypervisor.yaml, through Config.SpecPath), keeps the
// real VMM's VM state machine, writes guest console output to the serial
// file of the VmConfig, and logs every call (with any validation error) to
// CallsFile beside the binary, so tests can require that the provider never
// sent a request the real VMM would refuse. Both the provider's own tests
// and the end-to-end tests (a real nkudo-agent process) use it.
package standin
