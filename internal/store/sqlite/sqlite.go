package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/migrations"
)

// ErrInvalidPath is returned for database paths the store cannot use: empty,
// in-memory (readers and the writer would each see a different database), or
// containing '?' (which would be read as DSN parameters).
var ErrInvalidPath = errors.New("invalid sqlite database path")

// ErrInvalidArgument is returned for values the store refuses to write, such
// as malformed JSON or an unknown action result status.
var ErrInvalidArgument = store.ErrInvalid

const (
	// busyTimeoutMillis bounds how long a connection waits for a lock held
	// by another process (a second nkudo-server on the same file, or the
	// migrate command); inside one process writers queue on the single
	// write connection instead.
	busyTimeoutMillis = "10000"
	// defaultPageLimit applies when a Page or log query asks for no limit.
	defaultPageLimit = 100
	// maxReaders caps the read pool: more connections than cores buy nothing
	// but memory with a CPU-bound pure-Go engine.
	maxReaders = 8
)

var _ store.Store = (*Store)(nil)

// Store is the SQLite implementation of store.Store. It is safe for
// concurrent use.
type Store struct {
	w    *sql.DB // the single write connection; every write goes through it
	r    *sql.DB // read-only pool
	path string
}

// Open opens (creating if needed) the database at path, applies pending
// migrations and returns the store.
func Open(ctx context.Context, path string) (*Store, error) {
	w, err := openWriter(path)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, w); err != nil {
		_ = w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(path, url.Values{
		"_busy_timeout": {busyTimeoutMillis},
		"_foreign_keys": {"1"},
		"_query_only":   {"1"},
	}))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("opening sqlite readers for %s: %w", path, err)
	}
	r.SetMaxOpenConns(maxReaders)
	r.SetMaxIdleConns(maxReaders)
	if err := r.PingContext(ctx); err != nil {
		_ = w.Close()
		_ = r.Close()
		return nil, fmt.Errorf("opening sqlite readers for %s: %w", path, translate(err))
	}
	return &Store{w: w, r: r, path: path}, nil
}

// Path is the database file the store was opened on, as given to Open:
// tools and tests that inspect or back up the file need it, and the WAL
// and shared-memory files sit beside it with "-wal" and "-shm" appended.
func (s *Store) Path() string { return s.path }

// Migrate applies pending migrations to the database at path and closes it;
// it backs `nkudo-server migrate`.
func Migrate(ctx context.Context, path string) error {
	w, err := openWriter(path)
	if err != nil {
		return err
	}
	if err := migrate(ctx, w); err != nil {
		_ = w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("closing sqlite database %s: %w", path, err)
	}
	return nil
}

// openWriter opens the single write connection. WAL lets the readers run
// beside it; synchronous=NORMAL in WAL mode syncs at checkpoints only, so a
// committed transaction survives a crash of the process (the WAL is in the
// OS page cache) and can only be lost by a power failure or kernel crash
// before the next checkpoint, at a fraction of FULL's fsync cost.
// _txlock=immediate takes the write lock at BEGIN, so a transaction never
// fails half-way with SQLITE_BUSY when upgrading from a read lock.
func openWriter(path string) (*sql.DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("opening sqlite database %q: %w", path, ErrInvalidPath)
	}
	w, err := sql.Open("sqlite", dsn(path, url.Values{
		"_busy_timeout": {busyTimeoutMillis},
		"_foreign_keys": {"1"},
		"_journal_mode": {"WAL"},
		"_synchronous":  {"NORMAL"},
		"_txlock":       {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("opening sqlite database %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	// The connection is never recycled: it is the only writer.
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	return w, nil
}

func dsn(path string, params url.Values) string {
	return path + "?" + params.Encode()
}

func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations.SQLite, "sqlite")
	if err != nil {
		return fmt.Errorf("loading sqlite migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys)
	if err != nil {
		return fmt.Errorf("loading sqlite migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("applying sqlite migrations: %w", translate(err))
	}
	return nil
}

// Ping checks that both the writer and the readers answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("pinging sqlite writer: %w", translate(err))
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("pinging sqlite readers: %w", translate(err))
	}
	return nil
}

// Close closes both pools. The WAL is checkpointed by SQLite when the last
// connection closes.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// write runs fn in an IMMEDIATE transaction on the write connection. fn must
// use only tx: the write pool has one connection, which tx holds.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return translate(err)
	}
	return nil
}

// read runs fn in a read transaction, so multi-statement reads see one
// snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return translate(err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// execOne runs a single-statement write and fails with store.ErrNotFound when
// it touched no row.
func (s *Store) execOne(ctx context.Context, query string, args ...any) error {
	res, err := s.w.ExecContext(ctx, query, args...)
	if err != nil {
		return translate(err)
	}
	return requireRow(res)
}

func requireRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return translate(err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// translate maps driver errors to the store's sentinels, once, here. The
// driver error stays in the chain for logs.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			// A reference to a parent that does not exist, or exists in
			// another tenant (parents are keyed by tenant): to the caller
			// both are "not found".
			return fmt.Errorf("%w: %w", store.ErrNotFound, err)
		case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL, sqlite3.SQLITE_CONSTRAINT_DATATYPE:
			return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		}
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR,
			sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), "sql: database is closed") {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}
