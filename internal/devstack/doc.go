// Package devstack runs the whole product on one machine for `nkudo dev`:
// an nkudo-server on loopback with SQLite in a data dir, a bootstrapped
// tenant, site and key, and N agents enrolled through the real enrollment
// route and connected over the real mutual-TLS WebSocket channel. Nothing
// is faked: only the hypervisor is simulated unless Cloud Hypervisor is
// available, and every view labels simulated hosts as such.
package devstack
