// Package notify carries small notifications between the nkudo-server
// replicas that share one database, so that a change made on one replica
// reaches the replica that can act on it: the one holding an agent's
// session, or serving a log follower or an event stream.
//
// A Bus has named topics. Publish sends a payload (at most
// MaxPayloadBytes: send ids, not bodies; receivers re-read the store) to
// every subscriber of the topic on every replica, the publishing one
// included. Delivery is best effort and at most once: each subscription
// has a bounded queue drained by its own goroutine, so a slow handler
// never blocks a publisher or another topic. When notifications may have
// been lost (a full queue, or the database connection dropped and was
// re-established), the handler is called with a nil payload: the
// subscriber must then re-read what it cares about from the store.
//
// Local serves a single replica (SQLite) in process. Postgres uses
// LISTEN/NOTIFY on the shared PostgreSQL database: one dedicated
// connection LISTENs on every subscribed topic and is re-established with
// backoff when it drops; publishing runs pg_notify through a small pool.
package notify
