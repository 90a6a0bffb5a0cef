// Package postgres is the PostgreSQL implementation of store.Store, for
// production and for several nkudo-server replicas sharing one database.
//
// It runs on a pgx/v5 pool. Schema changes are the embedded goose
// migrations of migrations/postgres, applied by Open (and Migrate) under a
// PostgreSQL advisory lock so replicas starting together migrate once.
// The hot paths (heartbeats, VM state reports, log lines) are written as
// one statement per batch over unnest'ed arrays: PostgreSQL takes roughly
// seven times more rows per second that way than as single-row upserts.
package postgres
