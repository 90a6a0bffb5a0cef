package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/cliconfig"
	"github.com/kubedoio/n-kudo/internal/devstack"
)

func TestDevProviderChoice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		lookPath func(string) (string, error)
		want     string
	}{
		{"no cloud-hypervisor", func(string) (string, error) { return "", errors.New("not found") }, "simulated hypervisor"},
		{"cloud-hypervisor on PATH", func(string) (string, error) { return "/usr/bin/cloud-hypervisor", nil }, "cloud-hypervisor /usr/bin/cloud-hypervisor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fn, name := devProvider(tt.lookPath)
			require.NotNil(t, fn)
			require.Equal(t, tt.want, name)
		})
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDevNoTUI runs `nkudo dev --no-tui` in-process, scripts against it
// through the dev context it makes current, and stops it like Ctrl-C.
func TestDevNoTUI(t *testing.T) {
	h := newHarness(t)
	dataDir := t.TempDir()
	// The operator's own context was current before: it is again after.
	prior, err := cliconfig.Load(h.configPath())
	require.NoError(t, err)
	require.NoError(t, prior.Set(cliconfig.Context{Name: "prod", Server: "https://127.0.0.1:1", CA: "ca", APIKey: "nk_x"}))
	require.NoError(t, prior.Use("prod"))
	require.NoError(t, prior.Save(h.configPath()))
	var out, errOut lockedBuffer
	a := newApp(strings.NewReader(""), &out, &errOut, func(k string) string { return h.env[k] })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"dev", "--no-tui", "--agents", "2", "--data-dir", dataDir}) }()

	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "ready") {
		select {
		case code := <-done:
			t.Fatalf("nkudo dev exited %d early: %s", code, errOut.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "nkudo dev not ready: %s", errOut.String())
		time.Sleep(20 * time.Millisecond)
	}

	cfg, err := cliconfig.Load(h.configPath())
	require.NoError(t, err)
	require.Equal(t, devContext, cfg.CurrentContext)

	// context list names the tenant the console's status bar shows.
	require.Regexp(t, `(?m)^\*\s+dev\s+https://\S+\s+`+devstack.TenantName+`\s+`, h.ok("context", "list"))

	// A second stack on the same data dir is refused, naming the first.
	second := h.run("dev", "--no-tui", "--agents", "0", "--data-dir", dataDir)
	require.Equal(t, exitError, second.code, second.stderr)
	require.Contains(t, second.stderr, "used by another nkudo dev (pid ")

	var hosts struct {
		Items []struct {
			Hostname string         `json:"hostname"`
			Online   bool           `json:"online"`
			Facts    map[string]any `json:"facts"`
		} `json:"items"`
	}
	// Facts arrive through the batched heartbeat path: poll for them.
	simulated := func() bool {
		require.NoError(t, json.Unmarshal([]byte(h.ok("get", "hosts", "-o", "json")), &hosts))
		require.Len(t, hosts.Items, 2)
		for _, host := range hosts.Items {
			require.True(t, host.Online, "%s online", host.Hostname)
			hv, _ := host.Facts["hypervisor"].(map[string]any)
			if hv["simulated"] != true {
				return false
			}
		}
		return true
	}
	for !simulated() {
		require.True(t, time.Now().Before(deadline), "dev hosts never reported simulated facts: %+v", hosts.Items)
		time.Sleep(20 * time.Millisecond)
	}

	cancel()
	select {
	case code := <-done:
		require.Equal(t, exitOK, code, "stderr: %s", errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatal("nkudo dev did not stop")
	}
	require.Contains(t, errOut.String(), "stopped")
	cfg, err = cliconfig.Load(h.configPath())
	require.NoError(t, err)
	require.Equal(t, "prod", cfg.CurrentContext, "the previous context is current again")
	_, err = os.Stat(dataDir)
	require.NoError(t, err, "a given data dir is kept")
}
