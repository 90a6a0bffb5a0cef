// Package migrations embeds the SQL migrations of both store engines.
// Files are named NNNNN_name.sql with goose annotations, the same versions
// in both folders, and are never edited once released: append a new file.
package migrations

import "embed"

// SQLite holds the migrations of the embedded SQLite store.
//
//go:embed sqlite/*.sql
var SQLite embed.FS

// Postgres holds the migrations of the PostgreSQL store.
//
//go:embed postgres/*.sql
var Postgres embed.FS
