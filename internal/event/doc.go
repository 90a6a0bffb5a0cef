// Package event is the server's live change feed: a Broker that fans
// change events out to the subscribers of each tenant (the GET /v1/events
// Server-Sent Events stream), and Store, a store.Store decorator that
// publishes an event after every successful mutation.
//
// Every event gets the next number of one server-wide sequence. The
// broker keeps the most recent events in a bounded ring so a client that
// reconnects with the last sequence it saw gets exactly what it missed;
// when the ring no longer holds that point (the server restarted, or too
// much happened meanwhile) the client is told to resync: re-list
// everything, then follow the stream again. A subscriber that does not
// keep up is cut off with ErrLagged rather than ever blocking a publisher,
// so the heartbeat path (thousands of events per second) never waits on
// a slow HTTP client.
//
// Sequence numbers start at the broker's start time in microseconds, not
// at 1, so that numbers handed out by an earlier incarnation of the server
// are always below the current range and a resume across a restart ends
// in a resync instead of a replay of unrelated events.
//
// With several replicas on one PostgreSQL database, a Relay announces
// each broker's events (type, tenant and id; small host patches inline)
// on a notify.Bus and publishes the other replicas' events into its own
// broker after re-reading the objects from the store. Each broker still
// numbers its events itself; a client resuming on another replica is
// answered with resync, and lost notices (Gap) make every client resync.
package event
