// Package sqlite is the embedded SQLite implementation of store.Store, the
// zero-setup default of nkudo-server. It uses modernc.org/sqlite (pure Go,
// no cgo), one write connection so writers queue in Go instead of failing
// with SQLITE_BUSY, and a pool of read-only connections that WAL mode lets
// run beside the writer. All SQL lives in queries.go; the schema lives in
// migrations/sqlite and is applied with goose on Open.
package sqlite
