package client_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agent"
	"github.com/kubedoio/n-kudo/internal/agent/enroll"
	"github.com/kubedoio/n-kudo/internal/agent/hostfacts"
	"github.com/kubedoio/n-kudo/internal/agent/identity"
	"github.com/kubedoio/n-kudo/internal/agent/imagedir"
	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/internal/devstack"
	"github.com/kubedoio/n-kudo/internal/version"
)

// streamStates records OnStreamState calls.
type streamStates struct {
	mu    sync.Mutex // guards calls
	calls []streamState
}

type streamState struct {
	stream    string
	connected bool
	err       error
}

func (s *streamStates) record(stream string, connected bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, streamState{stream, connected, err})
}

func (s *streamStates) snapshot() []streamState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]streamState(nil), s.calls...)
}

// startDevStack runs a real server (the dev stack without its own agents)
// and one real agent on the simulated hypervisor, enrolled through the
// real enrollment route, until the test ends. The agent is started here
// rather than by the stack so that its console tails read the provider's
// runtime dir.
func startDevStack(t *testing.T) *devstack.Stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	// The offline sweeper marks a host offline, and closes its session,
	// after three heartbeat intervals without a stored heartbeat: at 1 s
	// a loaded machine got a running VM's console refused as host_offline.
	s, err := devstack.Start(ctx, devstack.Options{DataDir: dir, Agents: 0, HeartbeatInterval: 10 * time.Second})
	if err != nil {
		cancel()
		require.NoError(t, err)
	}
	agentDone := make(chan error, 1)
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-agentDone)
		require.NoError(t, s.Wait())
	})
	c, err := s.Client()
	require.NoError(t, err)
	defer c.Close()
	tok, err := c.CreateEnrollmentToken(ctx, s.SiteID, client.CreateEnrollmentTokenRequest{})
	require.NoError(t, err)
	stateDir := filepath.Join(dir, "agent")
	_, err = enroll.Enroll(ctx, enroll.Options{Server: s.URL, Token: tok.Token, StateDir: stateDir, CAFile: s.CAFile, Hostname: "console-agent"})
	require.NoError(t, err)
	id, err := identity.Load(stateDir)
	require.NoError(t, err)
	runtimeDir := filepath.Join(stateDir, "runtime")
	pv, err := devstack.SimProvider(ctx, runtimeDir, nil)
	require.NoError(t, err)
	caps, err := pv.Capabilities(ctx)
	require.NoError(t, err)
	images, err := imagedir.New([]string{s.ImageDir})
	require.NoError(t, err)
	a, err := agent.New(agent.Options{
		StateDir: stateDir, Identity: id, Provider: pv, Images: images, RuntimeDir: runtimeDir, AgentVersion: version.Version,
		Facts: agent.NewHostFacts(hostfacts.Options{Mounts: []string{runtimeDir}, Hostname: "console-agent", Hypervisor: caps, AgentVersion: version.Version}),
	})
	require.NoError(t, err)
	go func() {
		err := a.Run(ctx)
		if ctx.Err() != nil {
			err = nil
		}
		agentDone <- err
	}()
	waitFor(ctx, t, func() bool {
		h, err := c.GetHost(ctx, id.Info.HostID)
		return err == nil && h.Online
	}, "the agent to come online")
	return s
}

// waitVM polls the VM until its actual state is want.
func waitVM(ctx context.Context, t *testing.T, c *client.Client, id uuid.UUID, want string) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		v, err := c.GetVM(ctx, id)
		require.NoError(t, err)
		if v.ActualState == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("vm %s is %s, never %s: %v", id, v.ActualState, want, ctx.Err())
		case <-tick.C:
		}
	}
}

func TestConsoleAgainstAgent(t *testing.T) {
	t.Parallel()
	stack := startDevStack(t)
	states := &streamStates{}
	c, err := client.New(client.Config{BaseURL: stack.URL, CAPEM: stack.CAPEM, APIKey: stack.APIKey,
		ReconnectBase: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond, OnStreamState: states.record})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	// No host: the server places the VM on the site's only online host.
	created, err := c.CreateVM(ctx, client.CreateVMRequest{Name: "con-1", SiteID: stack.SiteID, VCPUs: 1, MemoryMiB: 128, DiskImage: filepath.Join(stack.ImageDir, devstack.SampleImage)})
	require.NoError(t, err)
	vm := created.VM
	require.NotEqual(t, uuid.Nil, vm.HostID, "the server chose a host")
	waitVM(ctx, t, c, vm.ID, "running")

	t.Run("one shot", func(t *testing.T) {
		out, err := c.Console(ctx, vm.ID)
		require.NoError(t, err)
		require.Contains(t, string(out), "[simulated] nkudo sim guest")
	})

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name string
			call func() error
		}{
			{"one shot unknown vm", func() error { _, err := c.Console(ctx, uuid.New()); return err }},
			{"follow unknown vm", func() error {
				return c.FollowConsole(ctx, uuid.New(), func([]byte) error { return nil })
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				require.ErrorIs(t, tt.call(), client.ErrNotFound)
			})
		}
	})

	t.Run("follow", func(t *testing.T) {
		fctx, stop := context.WithCancel(ctx)
		defer stop()
		var mu sync.Mutex // guards got
		var got bytes.Buffer
		errc := make(chan error, 1)
		go func() {
			errc <- c.FollowConsole(fctx, vm.ID, func(b []byte) error {
				mu.Lock()
				defer mu.Unlock()
				got.Write(b)
				return nil
			})
		}()
		has := func(s string) bool {
			mu.Lock()
			defer mu.Unlock()
			return bytes.Contains(got.Bytes(), []byte(s))
		}
		waitFor(ctx, t, func() bool { return has("login: ") }, "the snapshot")
		// New output arrives on the open stream: stop the guest.
		_, err := c.StopVM(ctx, vm.ID)
		require.NoError(t, err)
		waitFor(ctx, t, func() bool { return has("power down") }, "the stop's output")
		stop()
		require.ErrorIs(t, <-errc, context.Canceled)
		mu.Lock()
		require.Equal(t, 1, bytes.Count(got.Bytes(), []byte("welcome to the simulated guest")), "the boot is shown once")
		mu.Unlock()
		var connected bool
		for _, s := range states.snapshot() {
			if s.stream == "/v1/vms/"+vm.ID.String()+"/console" && s.connected {
				connected = true
			}
		}
		require.True(t, connected, "OnStreamState saw the console connect")
	})

	t.Run("callback error ends the stream", func(t *testing.T) {
		errStop := errors.New("enough")
		err := c.FollowConsole(ctx, vm.ID, func([]byte) error { return errStop })
		require.ErrorIs(t, err, errStop)
	})
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, t *testing.T, cond func() bool, what string) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}
