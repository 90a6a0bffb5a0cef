package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestProbeURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr, path, want, err string
	}{
		{"0.0.0.0:8443", "/readyz", "https://127.0.0.1:8443/readyz", ""},
		{":8443", "/healthz", "https://127.0.0.1:8443/healthz", ""},
		{"[::]:9443", "/readyz", "https://[::1]:9443/readyz", ""},
		{"127.0.0.1:8443", "/readyz", "https://127.0.0.1:8443/readyz", ""},
		{"10.1.2.3:8443", "/readyz", "https://10.1.2.3:8443/readyz", ""},
		{"nkudo.example.com:443", "/readyz", "https://nkudo.example.com:443/readyz", ""},
		{"8443", "/readyz", "", "not host:port"},
		{"0.0.0.0:8443", "readyz", "", "must start with /"},
	}
	for _, tt := range tests {
		t.Run(tt.addr+tt.path, func(t *testing.T) {
			got, err := probeURL(tt.addr, tt.path)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// runHealthcheck runs `nkudo-server healthcheck` as its own process, as a
// container runtime does, and returns its exit error and output.
func runHealthcheck(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, append([]string{"healthcheck", "--timeout", "20s"}, args...)...)
	cmd.Env = append(os.Environ(), append([]string{runMainEnv + "=1"}, env...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestHealthcheck probes a real server process the way the container's
// HEALTHCHECK does: from the environment the server runs with, over HTTPS
// verified against the CA it wrote.
func TestHealthcheck(t *testing.T) {
	dataDir := t.TempDir()
	addr := freeAddr(t)
	p := startServer(t, dataDir, addr)
	p.waitStatus("/readyz", http.StatusOK, 60*time.Second)
	env := []string{"NKUDO_ADDR=" + addr, "NKUDO_DATA_DIR=" + dataDir, "CA_CERT_FILE="}

	otherCA := filepath.Join(t.TempDir(), "other-ca.crt")
	other := startServer(t, t.TempDir(), freeAddr(t))
	other.waitStatus("/healthz", http.StatusOK, 60*time.Second)
	require.NoError(t, os.WriteFile(otherCA, caFingerprintFile(t, other.dataDir), 0o600))

	tests := []struct {
		name string
		env  []string
		args []string
		want string // in the output; "" means success
	}{
		{"readyz from the environment", env, nil, ""},
		{"healthz by path", env, []string{"--path", "/healthz"}, ""},
		{"explicit url and ca", nil, []string{"--url", "https://" + addr + "/readyz", "--ca-file", filepath.Join(dataDir, "pki", "ca.crt")}, ""},
		{"CA_CERT_FILE wins over the data dir", append(env, "CA_CERT_FILE="+otherCA), nil, "certificate"},
		{"another CA is refused", env, []string{"--ca-file", otherCA}, "certificate"},
		{"missing CA file", env, []string{"--data-dir", t.TempDir()}, "reading CA certificate"},
		{"not found is unhealthy", env, []string{"--path", "/nope"}, "404"},
		{"plain http is refused", nil, []string{"--url", "http://" + addr + "/readyz"}, "must be https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runHealthcheck(t, tt.env, tt.args...)
			if tt.want == "" {
				require.NoError(t, err, "%s", out)
				require.Contains(t, out, "ok https://")
				return
			}
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "%s", out)
			require.Equal(t, 1, exit.ExitCode(), "%s", out)
			require.Contains(t, out, tt.want)
		})
	}

	// A stopped server is unhealthy.
	require.NoError(t, p.cmd.Process.Kill())
	<-p.done
	out, err := runHealthcheck(t, env)
	require.Error(t, err, "%s", out)
	require.Contains(t, out, "probing https://"+addr+"/readyz")
}
