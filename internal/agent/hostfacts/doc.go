// Package hostfacts gathers what the agent reports about its host: the
// static facts sent in hello (CPU, memory, disks, kernel, OS, KVM, the
// hypervisor and NetBird versions) and the usage sent in every heartbeat
// (CPU busy share, memory and disk used, load, uptime).
//
// Every parser is a pure function over the text of a /proc or /etc file, so
// it is table-tested against sample files in testdata taken from real hosts
// (x86 with VT-x, an AMD guest, arm64 servers, a Raspberry Pi, kernels
// without MemAvailable). Collect and Sampler only read the files and call
// the parsers; their /proc root is configurable so tests can point them at
// a fixture tree.
package hostfacts
