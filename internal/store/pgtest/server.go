package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Errors of the local cluster machinery.
var (
	// ErrNoBinaries: initdb or postgres could not be found.
	ErrNoBinaries = errors.New("postgresql binaries not found")
	// ErrNotRunning: the server process exited or is stopped.
	ErrNotRunning = errors.New("postgresql server not running")
)

const (
	// startTimeout bounds initdb plus the first accepted connection; a
	// loaded 2-core CI machine can take several seconds for initdb alone.
	startTimeout = 90 * time.Second
	// stopTimeout is how long a fast shutdown may take before SIGKILL.
	stopTimeout = 20 * time.Second
)

// binaries are the PostgreSQL programs a local cluster needs.
type binaries struct {
	initdb   string
	postgres string
}

// findBinaries looks in PATH first (a developer's own install wins), then
// in the newest Debian-style /usr/lib/postgresql/<version>/bin, where the
// server binaries live off PATH.
func findBinaries() (binaries, error) {
	var b binaries
	initdb, errI := exec.LookPath("initdb")
	postgres, errP := exec.LookPath("postgres")
	_, errC := exec.LookPath("pg_ctl")
	if errI == nil && errP == nil && errC == nil {
		b.initdb, b.postgres = initdb, postgres
		return b, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		return pgVersion(dirs[i]) > pgVersion(dirs[j])
	})
	for _, d := range dirs {
		i, p := filepath.Join(d, "initdb"), filepath.Join(d, "postgres")
		if isExecutable(i) && isExecutable(p) {
			b.initdb, b.postgres = i, p
			return b, nil
		}
	}
	return b, fmt.Errorf("looking for initdb and postgres in PATH and /usr/lib/postgresql/*/bin: %w", ErrNoBinaries)
}

// pgVersion extracts the numeric version of /usr/lib/postgresql/<v>/bin so
// that 16 sorts after 9.6.
func pgVersion(binDir string) float64 {
	v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	if err != nil {
		return 0
	}
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// server is one local PostgreSQL cluster: its data directory, port and,
// while running, its postmaster process.
type server struct {
	bin  binaries
	base string // temp dir owned by this server: data, socket, log
	data string
	log  string
	port int
	cred *syscall.Credential // nil unless running as root

	mu   sync.Mutex // guards the following
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// newServer creates and initialises a cluster in a fresh temp dir and
// reserves a port for it; it does not start it.
func newServer(ctx context.Context) (*server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	s := &server{bin: bin}
	// initdb and postgres refuse to run as root: run them as the postgres
	// system user, on directories it owns.
	var uid, gid = -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("looking up the postgres user to run the server as (running as root): %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir: its parent is 0700 root-owned, which the postgres
	// user could not traverse. The path is short to fit the unix socket.
	base, err := os.MkdirTemp("", "nkudo-pg-")
	if err != nil {
		return nil, fmt.Errorf("creating cluster dir: %w", err)
	}
	s.base = base
	s.data = filepath.Join(base, "data")
	s.log = filepath.Join(base, "postgres.log")
	if uid >= 0 {
		if err := os.Chown(base, uid, gid); err != nil {
			s.removeDir()
			return nil, fmt.Errorf("handing cluster dir to the postgres user: %w", err)
		}
	}
	port, err := freePort()
	if err != nil {
		s.removeDir()
		return nil, err
	}
	s.port = port

	cmd := exec.CommandContext(ctx, s.bin.initdb,
		"-D", s.data, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync")
	cmd.Dir = base
	cmd.SysProcAttr = s.sysProcAttr()
	if out, err := cmd.CombinedOutput(); err != nil {
		s.removeDir()
		return nil, fmt.Errorf("running initdb: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return s, nil
}

func (s *server) sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Credential: s.cred,
		// Own process group, so a ^C aimed at go test reaches the test
		// binary (which shuts the cluster down) rather than postgres.
		Setpgid: true,
		// If the test binary dies without cleaning up (panic, timeout,
		// SIGKILL) the kernel sends the postmaster SIGQUIT, its
		// immediate-shutdown signal, so no postgres outlives the tests.
		// The Go runtime never retires the OS thread that forked it
		// (only goroutines that lock their thread do that).
		Pdeathsig: syscall.SIGQUIT,
	}
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before postgres binds it; start reports that clearly.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("releasing probe port: %w", err)
	}
	return port, nil
}

// url is the connection URL of database db on this server.
func (s *server) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// start launches the postmaster and waits until it accepts connections.
func (s *server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening server log: %w", err)
	}
	// Not CommandContext: the process must outlive ctx, which only bounds
	// the wait for readiness.
	cmd := exec.Command(s.bin.postgres,
		"-D", s.data,
		"-p", strconv.Itoa(s.port),
		"-h", "127.0.0.1",
		"-k", s.base,
		// Durability is worthless for throwaway test data.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "shared_buffers=32MB",
	)
	cmd.Dir = s.base
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = s.sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("starting postgres: %w", err)
	}
	done := make(chan struct{})
	// The waiter is owned by the server: stop waits for done, so it never
	// outlives the process it reaps.
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	if err := s.waitReady(ctx, done); err != nil {
		s.stopLocked()
		return fmt.Errorf("waiting for postgres on port %d: %w\n%s", s.port, err, s.logTail())
	}
	return nil
}

// waitReady polls until the server accepts a connection, the process
// exits or ctx ends.
func (s *server) waitReady(ctx context.Context, done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, s.url("postgres"))
		ccancel()
		if err == nil {
			return conn.Close(ctx)
		}
		lastErr = err
		select {
		case <-done:
			return fmt.Errorf("%w: exited during startup (last connect error: %v)", ErrNotRunning, lastErr)
		case <-ctx.Done():
			return fmt.Errorf("%w (last connect error: %v)", ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

// stop shuts the server down (fast shutdown: sessions are terminated) and
// waits for the process; it escalates to SIGKILL after stopTimeout.
func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *server) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-s.done:
	case <-timer.C:
		// Kill the whole process group so no backend lingers either.
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// pid is the postmaster's pid, 0 when stopped.
func (s *server) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// destroy stops the server and removes its directory.
func (s *server) destroy() {
	s.stop()
	s.removeDir()
}

func (s *server) removeDir() {
	_ = os.RemoveAll(s.base)
}

// logTail returns the end of the server log for error messages.
func (s *server) logTail() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return ""
	}
	const maxTail = 2000
	if len(b) > maxTail {
		b = b[len(b)-maxTail:]
	}
	return string(b)
}
