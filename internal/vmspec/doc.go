// Package vmspec holds the one rule of what a microVM spec may say: its
// limits (vCPUs, memory, name, command line, cloud-init), the form of the
// host paths it names (disk image, kernel, initramfs, firmware) and of its
// NIC's MAC address, and one Validate that reports each problem with the
// field it is about.
//
// The server's API (POST /v1/vms and raw plans alike), the agent's
// hypervisor layer, the console's create form and the CLI all check specs
// with this package, so a VM one of them accepts is never refused by
// another for its shape. It imports nothing of the server or the agent, so
// both can use it.
package vmspec
