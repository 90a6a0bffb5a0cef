// Package retention keeps the database bounded: a background Job deletes
// execution log lines, audit events, finished plans, idempotency keys and
// revoked agents older than the ages of a Policy, in small batches (each
// its own short transaction, so no long lock blocks the live traffic),
// one replica at a time, and exports what it deleted and the age of the
// oldest row left as Prometheus metrics.
package retention
