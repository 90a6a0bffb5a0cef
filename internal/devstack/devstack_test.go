package devstack

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubedoio/n-kudo/internal/client"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"no data dir", Options{Agents: 1}, "data dir is required"},
		{"negative agents", Options{DataDir: "/tmp/x", Agents: -1}, "between 0 and"},
		{"too many agents", Options{DataDir: "/tmp/x", Agents: MaxAgents + 1}, "between 0 and"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Start(context.Background(), tt.opts)
			require.ErrorIs(t, err, ErrInvalidOptions)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// TestStackRunsAndRestarts starts a stack with two real agents, checks
// they are online through the API and that a plan reaches them, stops
// it, and starts it again on the same data dir: the same tenant and
// agents come back without enrolling again.
func TestStackRunsAndRestarts(t *testing.T) {
	dir := t.TempDir()
	start := func() (*Stack, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := Start(ctx, Options{DataDir: dir, Agents: 2})
		require.NoError(t, err)
		return s, cancel
	}

	s, cancel := start()
	c, err := s.Client()
	require.NoError(t, err)
	ctx := context.Background()
	hosts, err := allHosts(ctx, c)
	require.NoError(t, err)
	require.Len(t, hosts, 2)
	for _, h := range hosts {
		require.True(t, h.Online, "host %s online", h.Hostname)
		require.Contains(t, []string{"dev-agent-1", "dev-agent-2"}, h.Hostname)
	}
	require.Len(t, s.Agents, 2)

	// A VM created on the dev stack boots on a simulated agent and its
	// console can be read through the API (the agent tails the runtime
	// dir the stack gave it).
	// The README's example image: the stack's image dir holds it.
	require.Equal(t, filepath.Join(dir, "images"), s.ImageDir)
	created, err := c.CreateVM(ctx, client.CreateVMRequest{
		Name: "web-1", SiteID: s.SiteID, VCPUs: 1, MemoryMiB: 128, DiskImage: filepath.Join(s.ImageDir, SampleImage),
	})
	require.NoError(t, err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		vm, err := c.GetVM(ctx, created.VM.ID)
		require.NoError(t, err)
		if vm.ActualState == "running" {
			break
		}
		require.True(t, time.Now().Before(deadline), "vm never ran: %+v", vm)
		time.Sleep(20 * time.Millisecond)
	}
	for {
		out, err := c.Console(ctx, created.VM.ID)
		require.NoError(t, err)
		if strings.Contains(string(out), "[simulated]") {
			break
		}
		require.True(t, time.Now().Before(deadline), "console stayed empty: %q", out)
		time.Sleep(20 * time.Millisecond)
	}
	first := s.Agents
	tenant := s.TenantID
	c.Close()
	cancel()
	require.NoError(t, s.Wait())

	s2, cancel2 := start()
	defer func() {
		cancel2()
		require.NoError(t, s2.Wait())
	}()
	require.Equal(t, tenant, s2.TenantID, "the dev tenant is reused")
	require.Equal(t, first, s2.Agents, "agents keep their identity across runs")
	c2, err := s2.Client()
	require.NoError(t, err)
	defer c2.Close()
	deadline = time.Now().Add(30 * time.Second)
	for {
		hosts, err := allHosts(ctx, c2)
		require.NoError(t, err)
		require.Len(t, hosts, 2, "no duplicate hosts after a restart")
		if hosts[0].Online && hosts[1].Online {
			break
		}
		require.True(t, time.Now().Before(deadline), "agents did not come back online")
		time.Sleep(50 * time.Millisecond)
	}
}

func allHosts(ctx context.Context, c *client.Client) ([]client.Host, error) {
	var out []client.Host
	for h, err := range c.AllHosts(ctx, client.Filter{}) {
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}
