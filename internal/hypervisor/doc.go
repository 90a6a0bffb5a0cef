// Package hypervisor defines the contract between the agent and a microVM
// monitor (VMM) backend: the Provider interface, the VM spec and state
// types, and the lifecycle state machine every backend implements.
//
// The shape follows flintlock's microVM provider: a small interface of
// idempotent lifecycle steps, so the agent can retry or replay any step
// (after a reconnect, a crash, a timeout of unknown outcome) and converge on
// the same result instead of failing or doing the work twice.
//
// # State machine
//
// A VM is in one of these states:
//
//	creating  the backend is preparing it (real backends only; transient)
//	stopped   created, not running
//	running   booted
//	paused    vCPUs paused, memory kept
//	failed    the VMM reported an error or died; Error says why
//	deleted   gone; kept as a tombstone so late or replayed operations on
//	          the id are answered consistently instead of recreating it
//
// Operations and their effect, by current state ("noop" means the call
// succeeds and changes nothing; "invalid" means ErrInvalidTransition):
//
//	from \ op  create      start    stop     reboot   pause    resume   delete
//	(none)     stopped     notfound notfound notfound notfound notfound noop
//	creating   noop*       invalid  invalid  invalid  invalid  invalid  deleted
//	stopped    noop*       running  noop     invalid  invalid  invalid  deleted
//	running    noop*       noop     stopped  running  paused   noop     deleted
//	paused     noop*       invalid  stopped  invalid  noop     running  deleted
//	failed     noop*       running  stopped  invalid  invalid  invalid  deleted
//	deleted    invalid     invalid  invalid  invalid  invalid  invalid  noop
//
// (*) Create of an existing VM is a no-op only with an identical spec; a
// different spec under the same id is ErrAlreadyExists. Operations other
// than Create and Delete on an unknown id return ErrNotFound.
//
// The choices, and why:
//   - Repeats of an operation whose result already holds are no-ops (start of
//     running, stop of stopped, pause of paused, resume of running, delete of
//     deleted or unknown): the agent replays unacknowledged actions after a
//     restart, and a replay must not fail an action that in fact succeeded.
//   - Start of a paused VM is invalid rather than an implicit resume: the
//     two differ on a real VMM (boot versus unpause), and guessing would
//     hide a drift between desired and actual state.
//   - Reboot needs a running VM; rebooting a stopped one would silently
//     turn into a start.
//   - Start of a failed VM retries the boot, and Stop of a failed VM tidies
//     it up, so an operator can recover without deleting it.
//   - Deleted is final: ids are UUIDs that the server never reuses, so a
//     Create on a deleted id is a replay or a bug, never a new VM.
//
// Transition implements the table as a pure function; backends call it so
// they all answer the same way, and its table test is the reference.
package hypervisor
