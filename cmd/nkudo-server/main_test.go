package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store/pgtest"
)

// The test binary doubles as nkudo-server: with this variable set it runs
// main() instead of the tests, so the tests below exercise the real
// program in a real process (signals, exit codes, kill -9) without a
// separate go build.
const runMainEnv = "NKUDO_SERVER_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	pgtest.Main(m)
}

const testAdminKey = "test-admin-key-0123456789abcdef"

// testSealKey is NKUDO_PKI_SEAL_KEY: 32 bytes, base64.
const testSealKey = "dGVzdC1zZWFsLWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE="

// serverProc is one nkudo-server process started by a test.
type serverProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	addr    string
	dataDir string
	stderr  *syncBuffer
	done    chan struct{}
	err     error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// startServer runs `nkudo-server serve` with the given extra environment
// and returns once the process is started (not necessarily ready).
func startServer(t *testing.T, dataDir, addr string, env ...string) *serverProc {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "serve", "--data-dir", dataDir, "--addr", addr, "--metrics-addr", "")
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "NKUDO_ADMIN_KEY="+testAdminKey, "NKUDO_DATABASE_URL=",
		"NKUDO_PKI_SEAL_KEY="+testSealKey)
	cmd.Env = append(cmd.Env, env...)
	p := &serverProc{t: t, cmd: cmd, addr: addr, dataDir: dataDir, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = p.stderr
	cmd.Stderr = p.stderr
	require.NoError(t, cmd.Start())
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("server output:\n%s", p.stderr.String())
		}
	})
	return p
}

func (p *serverProc) client() *http.Client {
	p.t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(p.dataDir, "pki", "ca.crt"))
	require.NoError(p.t, err)
	pool := x509.NewCertPool()
	require.True(p.t, pool.AppendCertsFromPEM(caPEM))
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}},
	}
}

func (p *serverProc) url(path string) string { return "https://" + p.addr + path }

// waitStatus polls path until it answers want or the deadline passes.
func (p *serverProc) waitStatus(path string, want int, within time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			p.t.Fatalf("server exited (%v) while waiting for %s → %d:\n%s", p.err, path, want, p.stderr.String())
		default:
		}
		if _, err := os.Stat(filepath.Join(p.dataDir, "pki", "ca.crt")); err == nil {
			resp, err := p.client().Get(p.url(path))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode == want {
					return
				}
				last = resp.Status
			} else {
				last = err.Error()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("%s did not answer %d within %s (last: %s)", path, want, within, last)
}

func (p *serverProc) do(method, path, key string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.url(path), r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (p *serverProc) mustDo(method, path, key string, body any, want int) map[string]any {
	p.t.Helper()
	status, b, err := p.do(method, path, key, body)
	require.NoError(p.t, err)
	require.Equal(p.t, want, status, "%s %s: %s", method, path, b)
	var out map[string]any
	require.NoError(p.t, json.Unmarshal(b, &out))
	return out
}

// bootstrap creates a tenant and an admin key for it.
func (p *serverProc) bootstrap() (tenantID, key string) {
	p.t.Helper()
	tenant := p.mustDo("POST", "/v1/tenants", testAdminKey, map[string]any{"name": "acme"}, http.StatusCreated)
	tenantID = tenant["id"].(string)
	k := p.mustDo("POST", "/v1/tenants/"+tenantID+"/api-keys", testAdminKey, map[string]any{"name": "ops", "role": "admin"}, http.StatusCreated)
	return tenantID, k["key"].(string)
}

func (p *serverProc) listSiteNames(key string) map[string]bool {
	p.t.Helper()
	names := map[string]bool{}
	cursor := ""
	for {
		out := p.mustDo("GET", "/v1/sites?limit=500&cursor="+cursor, key, nil, http.StatusOK)
		for _, it := range out["items"].([]any) {
			names[it.(map[string]any)["name"].(string)] = true
		}
		cursor, _ = out["next_cursor"].(string)
		if cursor == "" {
			return names
		}
	}
}

func caFingerprintFile(t *testing.T, dataDir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "pki", "ca.crt"))
	require.NoError(t, err)
	return b
}

// TestKillDuringWritesLosesNothing kills the server with SIGKILL in the
// middle of a burst of writes and checks, after a restart on the same
// data, that every write the server acknowledged is there and the CA is
// the same.
func TestKillDuringWritesLosesNothing(t *testing.T) {
	engines := []struct {
		name string
		env  func(t *testing.T) []string
	}{
		{"sqlite", func(*testing.T) []string { return nil }},
		{"postgres", func(t *testing.T) []string { return []string{"NKUDO_DATABASE_URL=" + pgtest.URL(t)} }},
	}
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			env := eng.env(t)
			dataDir := t.TempDir()
			addr := freeAddr(t)
			p := startServer(t, dataDir, addr, env...)
			p.waitStatus("/readyz", http.StatusOK, 60*time.Second)
			caBefore := caFingerprintFile(t, dataDir)
			_, key := p.bootstrap()

			var (
				mu    sync.Mutex
				acked []string
			)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ctx.Err() == nil; i++ {
						name := fmt.Sprintf("site-%d-%d", w, i)
						status, _, err := p.do("POST", "/v1/sites", key, map[string]any{"name": name})
						if err != nil {
							return // the server is gone
						}
						if status == http.StatusCreated {
							mu.Lock()
							acked = append(acked, name)
							mu.Unlock()
						}
					}
				}()
			}
			// Kill once a good number of writes have been acknowledged,
			// while the workers are still writing.
			deadline := time.Now().Add(60 * time.Second)
			for {
				mu.Lock()
				n := len(acked)
				mu.Unlock()
				if n >= 150 {
					break
				}
				require.True(t, time.Now().Before(deadline), "only %d writes acknowledged", n)
				time.Sleep(5 * time.Millisecond)
			}
			require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
			<-p.done
			cancel()
			wg.Wait()

			p2 := startServer(t, dataDir, addr, env...)
			p2.waitStatus("/readyz", http.StatusOK, 60*time.Second)
			require.Equal(t, caBefore, caFingerprintFile(t, dataDir), "the CA changed across a crash")
			got := p2.listSiteNames(key)
			mu.Lock()
			defer mu.Unlock()
			for _, name := range acked {
				require.True(t, got[name], "acknowledged site %s lost after kill -9", name)
			}
			require.Contains(t, p2.stderr.String(), "ca_fingerprint=")
		})
	}
}

func TestPostgresDownAtStartFailsClearly(t *testing.T) {
	dead := freeAddr(t) // nothing listens there
	p := startServer(t, t.TempDir(), freeAddr(t), "NKUDO_DATABASE_URL=postgres://nkudo@"+dead+"/nkudo?sslmode=disable&connect_timeout=3")
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("server did not exit with PostgreSQL down")
	}
	var exitErr *exec.ExitError
	require.ErrorAs(t, p.err, &exitErr, "server must exit non-zero")
	require.NotEqual(t, 0, exitErr.ExitCode())
	out := p.stderr.String()
	require.Contains(t, out, "PostgreSQL", "output: %s", out)
	require.Contains(t, out, strings.Split(dead, ":")[1], "the error should name the address it tried: %s", out)
}

func TestPostgresRestartWhileServing(t *testing.T) {
	cluster := pgtest.StartCluster(t)
	dataDir := t.TempDir()
	p := startServer(t, dataDir, freeAddr(t), "NKUDO_DATABASE_URL="+cluster.URL())
	p.waitStatus("/readyz", http.StatusOK, 60*time.Second)
	_, key := p.bootstrap()
	p.mustDo("POST", "/v1/sites", key, map[string]any{"name": "before"}, http.StatusCreated)

	cluster.Stop()
	p.waitStatus("/readyz", http.StatusServiceUnavailable, 30*time.Second)
	p.waitStatus("/healthz", http.StatusOK, 5*time.Second) // alive, just not ready

	cluster.Start()
	p.waitStatus("/readyz", http.StatusOK, 30*time.Second)
	// Requests recover without restarting the server.
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body, err := p.do("POST", "/v1/sites", key, map[string]any{"name": "after"})
		if err == nil && status == http.StatusCreated {
			break
		}
		require.True(t, time.Now().Before(deadline), "writes did not recover: %d %s %v", status, body, err)
		time.Sleep(100 * time.Millisecond)
	}
	names := p.listSiteNames(key)
	require.True(t, names["before"] && names["after"], "sites: %v", names)
}

func TestGracefulShutdownOnSIGTERM(t *testing.T) {
	dataDir := t.TempDir()
	p := startServer(t, dataDir, freeAddr(t))
	p.waitStatus("/healthz", http.StatusOK, 60*time.Second)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop on SIGTERM")
	}
	require.NoError(t, p.err, "clean exit expected:\n%s", p.stderr.String())
	require.Contains(t, p.stderr.String(), "shutting down")
}

func TestStartupRefusals(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"no admin key", []string{"NKUDO_ADMIN_KEY="}, "NKUDO_ADMIN_KEY is required"},
		{"persistent pki without files", []string{"NKUDO_REQUIRE_PERSISTENT_PKI=true"}, "NKUDO_REQUIRE_PERSISTENT_PKI"},
		{"bad duration", []string{"AGENT_CERT_TTL=forever"}, "AGENT_CERT_TTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startServer(t, t.TempDir(), freeAddr(t), tt.env...)
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
				t.Fatal("server did not refuse to start")
			}
			require.Error(t, p.err)
			require.Contains(t, p.stderr.String(), tt.want)
		})
	}
}

func TestRestartKeepsPKIWithExplicitFiles(t *testing.T) {
	// First start generates the PKI; a second start with
	// REQUIRE_PERSISTENT_PKI and the generated files as explicit paths
	// must serve with the same CA.
	dataDir := t.TempDir()
	addr := freeAddr(t)
	p := startServer(t, dataDir, addr)
	p.waitStatus("/healthz", http.StatusOK, 60*time.Second)
	ca := caFingerprintFile(t, dataDir)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	<-p.done

	pkiDir := filepath.Join(dataDir, "pki")
	other := t.TempDir()
	p2 := startServer(t, other, addr,
		"REQUIRE_PERSISTENT_PKI=true",
		"CA_CERT_FILE="+filepath.Join(pkiDir, "ca.crt"), "CA_KEY_FILE="+filepath.Join(pkiDir, "ca.key"),
		"SERVER_CERT_FILE="+filepath.Join(pkiDir, "server.crt"), "SERVER_KEY_FILE="+filepath.Join(pkiDir, "server.key"))
	// The client trusts the CA from the first data dir.
	require.NoError(t, os.MkdirAll(filepath.Join(other, "pki"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(other, "pki", "ca.crt"), ca, 0o644))
	p2.waitStatus("/healthz", http.StatusOK, 60*time.Second)
	// Those are the seed's names: still read, each with one warning line.
	for _, old := range []string{"REQUIRE_PERSISTENT_PKI", "CA_CERT_FILE", "CA_KEY_FILE", "SERVER_CERT_FILE", "SERVER_KEY_FILE"} {
		require.Contains(t, p2.stderr.String(), "environment variable "+old+" is deprecated: use NKUDO_"+old)
	}
}
