package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
)

// Snapshot writes a consistent copy of the live database at path to dst
// with VACUUM INTO: it reads one snapshot of the database (WAL readers do
// not block the server's writer, nor it them), and the copy is compacted
// and holds no WAL. dst must not exist. It backs `nkudo-server backup`
// while the server runs.
func Snapshot(ctx context.Context, path, dst string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("snapshotting sqlite database %s: %w", path, err)
	}
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("snapshotting sqlite database to %s: %w", dst, os.ErrExist)
	}
	db, err := sql.Open("sqlite", dsn(path, url.Values{"_busy_timeout": {busyTimeoutMillis}}))
	if err != nil {
		return fmt.Errorf("opening sqlite database %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("snapshotting sqlite database %s: %w", path, translate(err))
	}
	return nil
}

// Verify checks that the file at path is a sound SQLite database of this
// product (PRAGMA quick_check, and the migrations' version table), before
// a restore puts it in place.
func Verify(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", dsn(path, url.Values{"_query_only": {"1"}}))
	if err != nil {
		return fmt.Errorf("opening sqlite database %s: %w", path, err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&res); err != nil {
		return fmt.Errorf("checking sqlite database %s: %w", path, translate(err))
	}
	if res != "ok" {
		return fmt.Errorf("checking sqlite database %s: %s", path, res)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM goose_db_version`).Scan(&n); err != nil || n == 0 {
		return errors.Join(fmt.Errorf("checking sqlite database %s: no migration history, not an nkudo database", path), err)
	}
	return nil
}
