// Package actioncache is the agent's persistent idempotency cache: it makes
// every plan action run at most once, across reconnects, replays and agent
// restarts, and remembers results until the server acknowledges them.
//
// The executor's protocol:
//
//  1. Begin(actionID) before doing anything. Begin persists a "started"
//     entry before it returns true; if it returns false the action is
//     already known (running, finished, or interrupted by a crash) and must
//     not run again.
//  2. Run the action, then Finish(actionID, result), which persists the
//     terminal result.
//  3. Send Unacked() results to the server (again after each reconnect) and
//     call Ack when the server's ResultAck arrives.
//
// A crash between Begin and Finish leaves a "started" entry. After a restart
// Interrupted lists such entries: the agent cannot know how far the action
// got, so it must not retry it blindly; it reports it (typically as failed,
// with the VM's observed state) and Finishes it.
//
// Persistence is a whole-file rewrite through statefile (write temp, fsync,
// rename) on every change. That is deliberate: actions are operator-driven,
// tens per host per day, and the cache is bounded, so a rewrite costs a few
// kilobytes and one fsync, negligible beside booting a VM; in exchange the
// file is always one consistent JSON document and a crash at any point
// leaves either the old or the new cache, never a torn one. An append-only
// log would add a second format and a recovery path for no measurable gain.
//
// Size is bounded: acknowledged entries are pruned when older than MaxAge or
// when the cache exceeds MaxEntries (oldest first). Unacknowledged and
// started entries are never pruned, since dropping them would lose a result
// the server waits for or reopen an action to a second run; when the cache
// is full of them, Begin refuses with ErrFull rather than break the
// at-most-once promise.
package actioncache
