package container_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const adminKey = "container-admin-key-0123456789abcdef"

// waitFor bounds every poll; nothing waits that long unless broken.
const waitFor = 3 * time.Minute

// eventually polls cond until it holds or waitFor passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		<-tick.C
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// container is the server running in Docker, reached through its
// published ports on 127.0.0.1.
type container struct {
	t           *testing.T
	name        string
	apiAddr     string
	metricsAddr string
	caPEM       []byte
	cli         *http.Client
}

// runContainer starts the image with a named volume on /var/lib/nkudo and
// the API and metrics ports published on fixed loopback ports (a restart
// must find the server where the agent left it).
func runContainer(t *testing.T, tag, volume string) *container {
	t.Helper()
	c := &container{t: t, name: uniqueName("nkudo-test-"), apiAddr: freeAddr(t), metricsAddr: freeAddr(t)}
	mustDocker(t, "run", "--detach", "--name", c.name,
		"--env", "NKUDO_ADMIN_KEY="+adminKey,
		"--volume", volume+":/var/lib/nkudo",
		"--publish", c.apiAddr+":8443", "--publish", c.metricsAddr+":9464",
		tag)
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := docker("logs", "--tail", "200", c.name)
			t.Logf("--- container logs (tail) ---\n%s", logs)
		}
		_, _ = docker("rm", "--force", "--volumes", c.name)
	})
	return c
}

func (c *container) url(path string) string { return "https://" + c.apiAddr + path }

// copyCA copies the CA certificate the server wrote to the volume.
func (c *container) copyCA() ([]byte, error) {
	dst := filepath.Join(c.t.TempDir(), "ca.crt")
	if _, err := docker("cp", c.name+":/var/lib/nkudo/pki/ca.crt", dst); err != nil {
		return nil, err
	}
	return os.ReadFile(dst)
}

// waitReady waits for the CA in the volume and /readyz through the
// published port, verified with that CA alone.
func (c *container) waitReady() {
	c.t.Helper()
	eventually(c.t, "server ready in the container", func() bool {
		if running, _ := docker("inspect", "--format", "{{.State.Running}}", c.name); strings.TrimSpace(running) == "false" {
			logs, _ := docker("logs", c.name)
			c.t.Fatalf("container exited:\n%s", logs)
		}
		if c.cli == nil {
			pem, err := c.copyCA()
			if err != nil {
				return false
			}
			pool := x509.NewCertPool()
			require.True(c.t, pool.AppendCertsFromPEM(pem), "ca.crt holds a PEM certificate")
			c.caPEM = pem
			c.cli = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
			}}
		}
		resp, err := c.cli.Get(c.url("/readyz"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// call sends a JSON request and requires the status.
func (c *container) call(want int, method, path, key string, body, out any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(c.t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.url(path), rd)
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.cli.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	require.Equal(c.t, want, resp.StatusCode, "%s %s: %s", method, path, raw)
	if out != nil {
		require.NoError(c.t, json.Unmarshal(raw, out), "%s", raw)
	}
}

// metric reads one sample of the server's Prometheus metrics through the
// published metrics port; -1 when absent or unreachable.
func (c *container) metric(series string) float64 {
	resp, err := http.Get("http://" + c.metricsAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// health is Docker's view of the image's HEALTHCHECK.
func (c *container) health() string {
	out, _ := docker("inspect", "--format", "{{.State.Health.Status}}", c.name)
	return strings.TrimSpace(out)
}

// agentProc is an nkudo-agent process on the host.
type agentProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startAgent(t *testing.T, bin string, args ...string) *agentProc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "agent.log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	a := &agentProc{cmd: exec.Command(bin, args...), log: logPath, done: make(chan struct{})}
	a.cmd.Stdout, a.cmd.Stderr = f, f
	require.NoError(t, a.cmd.Start())
	go func() {
		_ = a.cmd.Wait()
		f.Close()
		close(a.done)
	}()
	t.Cleanup(func() {
		_ = a.cmd.Process.Signal(syscall.SIGKILL)
		<-a.done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- agent log ---\n%s", b)
		}
	})
	return a
}
