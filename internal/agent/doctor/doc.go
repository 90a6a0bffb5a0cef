// Package doctor is the preflight of an edge host (`nkudo-agent doctor`):
// it checks, before an operator enrolls the host, everything the agent
// needs to run microVMs — /dev/kvm, the Cloud Hypervisor binary and its
// version, the right to create bridges and TAP devices, the image, state
// and runtime directories, the server and its pinned CA, the NetBird CLI
// and the clock — and says, for each blocker, the one-line fix.
//
// Every check takes its paths and commands from Options, so tests run
// each one against files they make; `nkudo-agent run` uses the KVM and
// binary checks to decide whether its hypervisor can run at all.
package doctor
