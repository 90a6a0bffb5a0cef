// Package e2e holds end-to-end tests that build the real nkudo-server and
// nkudo-agent binaries and run them as processes on loopback: enrollment
// through the agent CLI, plans over the mutual-TLS WebSocket channel with
// the sim hypervisor, crashes of either side (SIGKILL) in the middle of a
// plan, revocation, and the execution log API. The package has no code
// outside its tests; this file only documents it.
package e2e
