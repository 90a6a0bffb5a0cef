// Package netbird is the agent's side of the NetBird mesh: it reads the
// local NetBird client's state, joins the mesh with a setup key when asked
// to, probes reachability through it, and turns all of that into the
// agentproto.NetBirdStatus that every heartbeat carries.
//
// The NetBird client is reached through the small Client interface. Today
// its only implementation is CLI, which drives the `netbird` command
// (`netbird status --json`, `netbird up`, `netbird down`, `netbird
// version`), because the embedded NetBird Go library cannot be fetched in
// this build environment; the library can replace CLI later without the
// Manager noticing.
//
// The CLI is driven as real clients behave (netbirdio/netbird, v0.77.1
// and older): before v0.67.0 `status --json` prints plain text while the
// daemon needs login; a stopped daemon makes the CLI block about 10 s
// before failing; `up` on a Connected daemon only prints "Already
// connected".
//
// Setup keys are secrets: they are kept only in a 0600 file (SetupKeyFile),
// passed to `netbird up` by that file's path (--setup-key-file), never on
// the command line, and scrubbed from every error message and log line
// this package produces.
package netbird
