package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/cliconfig"
)

func TestCheckLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:0", true}, {"[::1]:8443", true}, {"localhost:0", true}, {"127.0.0.2:1", true},
		{"0.0.0.0:0", false}, {"[::]:0", false}, {"192.168.1.5:443", false}, {"nohost", false},
	}
	for _, tt := range tests {
		err := checkLoopback(tt.addr)
		if tt.ok {
			require.NoError(t, err, tt.addr)
			continue
		}
		require.Error(t, err, tt.addr)
		require.Equal(t, exitUsage, exitCode(err), tt.addr)
	}
	require.ErrorContains(t, checkLoopback("0.0.0.0:0"), "must be loopback")
}

// TestLockDataDir: a second stack on the same data dir is refused and
// told the first one's pid; the lock goes when released.
func TestLockDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	release, err := lockDataDir(dir)
	require.NoError(t, err)
	_, err = lockDataDir(dir)
	require.ErrorIs(t, err, errDataDirBusy)
	require.ErrorContains(t, err, "pid "+strconv.Itoa(os.Getpid()))
	release()
	release, err = lockDataDir(dir)
	require.NoError(t, err, "released locks can be taken again")
	release()
}

// TestDevContextName: "dev" unless a running stack (a server that answers)
// holds it; a stale dev context is reused.
func TestDevContextName(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadURL := "https://" + dead.Addr().String()
	require.NoError(t, dead.Close())
	live := "https://" + ln.Addr().String()
	ctx := func(name, server string) cliconfig.Context {
		return cliconfig.Context{Name: name, Server: server, CA: "ca", APIKey: "nk_x"}
	}
	tests := []struct {
		name string
		ctxs []cliconfig.Context
		want string
	}{
		{"no dev context", nil, "dev"},
		{"stale dev context", []cliconfig.Context{ctx("dev", deadURL)}, "dev"},
		{"dev running", []cliconfig.Context{ctx("dev", live)}, "dev-2"},
		{"dev and dev-2 running", []cliconfig.Context{ctx("dev", live), ctx("dev-2", live)}, "dev-3"},
	}
	for _, tt := range tests {
		cfg, err := cliconfig.Load(filepath.Join(t.TempDir(), "config.yaml"))
		require.NoError(t, err)
		for _, c := range tt.ctxs {
			require.NoError(t, cfg.Set(c))
		}
		require.Equal(t, tt.want, devContextName(cfg), tt.name)
	}
}
