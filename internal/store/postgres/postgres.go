package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/migrations"
)

// ErrInvalidArgument is returned for values the store refuses to write,
// such as malformed JSON or an unknown action result status.
var ErrInvalidArgument = store.ErrInvalid

const (
	// defaultPageLimit applies when a Page or log query asks for no limit.
	defaultPageLimit = 100
	// defaultConnectTimeout makes an unreachable database fail fast
	// instead of hanging on the OS TCP timeout; a URL's connect_timeout
	// wins.
	defaultConnectTimeout = 5 * time.Second
	// defaultMaxConns replaces pgxpool's max(4, NumCPU), which is too few
	// for a server; a URL's pool_max_conns wins.
	defaultMaxConns = 16
	// migrationLockRetries × 1s bounds how long a replica waits for
	// another replica's migration.
	migrationLockRetries = 300
)

var _ store.Store = (*Store)(nil)

// Store is the PostgreSQL implementation of store.Store. It is safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// enrollments group concurrent enrollments into shared commits.
	enrollments enrollGroup
}

// Open connects to the database at url, applies pending migrations and
// returns the store. An unreachable database is store.ErrUnavailable.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := parseConfig(url)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, cfg.ConnConfig); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening postgresql pool: %w", translate(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("opening postgresql pool: %w", translate(err))
	}
	return &Store{pool: pool}, nil
}

// Migrate applies pending migrations to the database at url and returns;
// it backs `nkudo-server migrate`.
func Migrate(ctx context.Context, url string) error {
	cfg, err := parseConfig(url)
	if err != nil {
		return err
	}
	return migrate(ctx, cfg.ConnConfig)
}

func parseConfig(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message can quote the URL, password included: keep only
		// the kind of mistake.
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) && pe.Unwrap() != nil {
			return nil, fmt.Errorf("parsing database url: %w", pe.Unwrap())
		}
		return nil, errors.New("parsing database url: malformed")
	}
	if !hasParam(url, "connect_timeout") {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if !hasParam(url, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	return cfg, nil
}

// hasParam reports whether a URL or keyword/value DSN sets key.
func hasParam(url, key string) bool {
	return strings.Contains(url, key+"=")
}

// migrate applies the embedded migrations through a database/sql handle
// (goose needs one), holding a session advisory lock for the duration.
func migrate(ctx context.Context, cc *pgx.ConnConfig) error {
	db := stdlib.OpenDB(*cc)
	defer func() { _ = db.Close() }()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("migrating postgresql: %w", translate(err))
	}
	fsys, err := fs.Sub(migrations.Postgres, "postgres")
	if err != nil {
		return fmt.Errorf("migrating postgresql: opening embedded migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, migrationLockRetries))
	if err != nil {
		return fmt.Errorf("migrating postgresql: creating migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migrating postgresql: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrating postgresql: %w", translate(err))
	}
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pinging postgresql: %w", translate(err))
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be released.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// inTx runs fn in one transaction, committed when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// translate maps driver errors to the store's sentinels, once, at the
// store boundary. Errors it does not know pass through unchanged.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505": // unique_violation
			return fmt.Errorf("%w: %s", store.ErrConflict, pgErr.ConstraintName)
		case pgErr.Code == "23503": // foreign_key_violation: the parent is missing
			return fmt.Errorf("%w: %s", store.ErrNotFound, pgErr.ConstraintName)
		case pgErr.Code == "23514" || pgErr.Code == "22P02" || pgErr.Code == "22023" || pgErr.Code == "22001":
			// check_violation, invalid_text_representation (bad JSON),
			// invalid_parameter_value, string_data_right_truncation.
			return fmt.Errorf("%w: %s", ErrInvalidArgument, pgErr.Message)
		case strings.HasPrefix(pgErr.Code, "08"), // connection_exception
			pgErr.Code == "57P01", // admin_shutdown
			pgErr.Code == "57P02", // crash_shutdown
			pgErr.Code == "57P03", // cannot_connect_now
			pgErr.Code == "53300": // too_many_connections
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return err
	}
	if unreachable(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

// unreachable reports whether err means the database could not be talked
// to at all (as opposed to refusing a statement).
func unreachable(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr),
		errors.As(err, &netErr),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		pgconn.SafeToRetry(err):
		return true
	}
	// pgx reports a connection that died under a query this way.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "connection reset")
}
