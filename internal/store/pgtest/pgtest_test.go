package pgtest

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	Main(m)
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func TestURLGivesFreshDatabasesDroppedAtCleanup(t *testing.T) {
	t.Parallel()
	var names []string
	for _, name := range []string{"first", "second"} {
		t.Run(name, func(t *testing.T) {
			u := URL(t)
			conn := connect(t, u)
			ctx := context.Background()
			var db string
			require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&db))
			var tables int
			require.NoError(t, conn.QueryRow(ctx,
				"SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&tables))
			require.Zero(t, tables, "a fresh database must be empty")
			_, err := conn.Exec(ctx, "CREATE TABLE leftover (id int)")
			require.NoError(t, err)
			names = append(names, db)
		})
	}
	require.Len(t, names, 2)
	require.NotEqual(t, names[0], names[1])

	// The subtests' cleanups have run: their databases must be gone.
	admin := URL(t)
	conn := connect(t, admin)
	for _, db := range names {
		var n int
		require.NoError(t, conn.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_database WHERE datname = $1", db).Scan(&n))
		require.Zero(t, n, "database %s not dropped", db)
	}
}

func TestClusterStopStart(t *testing.T) {
	t.Parallel()
	c := StartCluster(t)
	ctx := context.Background()
	url := c.URL()

	conn := connect(t, url)
	_, err := conn.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))

	pid := c.srv.pid()
	require.NotZero(t, pid)
	c.Stop()
	require.Zero(t, c.srv.pid())
	require.True(t, processGone(pid), "postmaster %d still running after Stop", pid)

	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = pgx.Connect(cctx, url)
	require.Error(t, err, "connecting to a stopped cluster must fail")

	c.Stop() // idempotent
	c.Start()
	require.Equal(t, url, c.URL(), "the URL must survive a restart")

	conn = connect(t, url)
	var v int
	require.NoError(t, conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v))
	require.Equal(t, 42, v, "data must survive a restart")
}

func TestClusterCleanupLeavesNoProcess(t *testing.T) {
	t.Parallel()
	var pid int
	var base string
	t.Run("owner", func(t *testing.T) {
		c := StartCluster(t)
		pid = c.srv.pid()
		base = c.srv.base
		require.NotZero(t, pid)
	})
	if pid == 0 {
		t.Skip("cluster unavailable")
	}
	require.True(t, processGone(pid), "postmaster %d outlived its test", pid)
	require.NoDirExists(t, base)
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{"plain", "postgres://u:p@h:5432/postgres?sslmode=disable", "postgres://u:p@h:5432/x?sslmode=disable", false},
		{"no path", "postgresql://h", "postgresql://h/x", false},
		{"keyword dsn", "host=h user=u", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := withDatabase(tt.in, "x")
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestFindBinariesErrorIsSentinel(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findBinaries()
	if err == nil {
		t.Skip("binaries found outside PATH (/usr/lib/postgresql)")
	}
	require.True(t, errors.Is(err, ErrNoBinaries))
}

// processGone reports whether pid no longer exists (it was reaped).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
