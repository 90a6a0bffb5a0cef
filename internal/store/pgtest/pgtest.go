package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables that choose and police the cluster source.
const (
	// EnvURL names an existing cluster, used as an admin connection that
	// may CREATE DATABASE.
	EnvURL = "NKUDO_TEST_DATABASE_URL"
	// EnvRequire, set to 1, turns "no PostgreSQL available" from a skip
	// into a failure.
	EnvRequire = "NKUDO_REQUIRE_POSTGRES"
)

// adminTimeout bounds each CREATE/DROP DATABASE round trip.
const adminTimeout = 60 * time.Second

// shared is the per-process throwaway cluster, started on first use and
// stopped by Main/Wrap when the test binary exits.
var shared struct {
	mu  sync.Mutex // guards the following
	srv *server
	err error // sticky: a cluster that failed to start is not retried per test
}

// sharedServer returns the running shared cluster, starting it once.
func sharedServer() (*server, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil || shared.err != nil {
		return shared.srv, shared.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := newServer(ctx)
	if err == nil {
		if err = srv.start(ctx); err != nil {
			srv.destroy()
		}
	}
	if err != nil {
		shared.err = fmt.Errorf("starting a throwaway postgresql cluster: %w", err)
		return nil, shared.err
	}
	shared.srv = srv
	return srv, nil
}

// stopShared stops and removes the shared cluster, if one was started.
func stopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.destroy()
		shared.srv = nil
	}
}

// Main runs the tests and stops the shared cluster before exiting. Use it
// as the whole body of TestMain.
func Main(m *testing.M) {
	os.Exit(Wrap(m).Run())
}

// Wrap returns m with a Run that stops the shared cluster once the tests
// are done, for TestMains that hand m to something else, such as
// goleak.VerifyTestMain(pgtest.Wrap(m)).
func Wrap(m interface{ Run() int }) interface{ Run() int } {
	return wrapped{m}
}

type wrapped struct{ m interface{ Run() int } }

func (w wrapped) Run() int {
	defer stopShared()
	return w.m.Run()
}

// unavailable skips t because no PostgreSQL can be had, or fails it when
// EnvRequire demands one.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("postgresql required (%s=1) but unavailable: %v", EnvRequire, err)
	}
	t.Skipf("postgresql unavailable (set %s, or install initdb/postgres): %v", EnvURL, err)
}

// URL returns the URL of a fresh, empty database for t, dropped when t
// ends. It skips t when no PostgreSQL is available (see the package doc).
func URL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvURL)
	if admin == "" {
		srv, err := sharedServer()
		if err != nil {
			unavailable(t, err)
		}
		admin = srv.url("postgres")
	}
	u, err := CreateDatabase(t, admin)
	if err != nil {
		if os.Getenv(EnvURL) != "" {
			// An explicitly configured cluster that does not work is a
			// broken setup, never a reason to skip.
			t.Fatalf("creating a test database on %s: %v", EnvURL, err)
		}
		unavailable(t, err)
	}
	return u
}

// CreateDatabase creates a uniquely named database through the admin URL
// and drops it (terminating its sessions) when t ends. It returns the new
// database's URL.
func CreateDatabase(t testing.TB, adminURL string) (string, error) {
	t.Helper()
	name, err := databaseName()
	if err != nil {
		return "", err
	}
	dbURL, err := withDatabase(adminURL, name)
	if err != nil {
		return "", err
	}
	if err := adminExec(adminURL, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	t.Cleanup(func() {
		// FORCE: a pool the test forgot to close must not keep the
		// database (and the cluster's connection slots) alive.
		q := "DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"
		if err := adminExec(adminURL, q); err != nil {
			t.Errorf("dropping test database %s: %v", name, err)
		}
	})
	return dbURL, nil
}

func adminExec(adminURL, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connecting as admin: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("executing %q: %w", sql, err)
	}
	return nil
}

func databaseName() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating database name: %w", err)
	}
	return "nkudo_test_" + hex.EncodeToString(b[:]), nil
}

// withDatabase returns adminURL pointing at database name instead.
func withDatabase(adminURL, name string) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("parsing %s: want a postgres:// URL, got %q", EnvURL, redact(adminURL))
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

// redact hides a password in a URL for error messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.Index(s, "@"); i >= 0 {
			return "…" + s[i:]
		}
		return s
	}
	return u.Redacted()
}

// Cluster is a PostgreSQL cluster owned by one test. The test can stop it
// and start it again (same port, same data) to see how a running server
// copes with the database going away.
type Cluster struct {
	t   testing.TB
	srv *server
}

// StartCluster starts a dedicated local cluster, stopped and removed when
// t ends. It needs the local PostgreSQL binaries: without them t is
// skipped (or fails under NKUDO_REQUIRE_POSTGRES=1).
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := newServer(ctx)
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(srv.destroy)
	if err := srv.start(ctx); err != nil {
		unavailable(t, err)
	}
	return &Cluster{t: t, srv: srv}
}

// URL is the URL of the cluster's postgres database. It stays the same
// across Stop and Start.
func (c *Cluster) URL() string {
	return c.srv.url("postgres")
}

// Stop shuts the cluster down (terminating every session) and waits for
// it. Stopping a stopped cluster does nothing.
func (c *Cluster) Stop() {
	c.srv.stop()
}

// Start brings a stopped cluster back on the same port with the same data
// and waits until it accepts connections. Call it from the test goroutine:
// it fails the test when the cluster cannot start.
func (c *Cluster) Start() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := c.srv.start(ctx); err != nil {
		c.t.Fatalf("restarting postgresql cluster: %v", err)
	}
}
