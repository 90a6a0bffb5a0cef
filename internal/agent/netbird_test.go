package agent_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agent"
	"github.com/kubedoio/n-kudo/internal/agentproto"
)

func TestNewNetBirdStates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    agent.NetBirdOptions
		want string
	}{
		{name: "disabled", o: agent.NetBirdOptions{Enabled: false, Bin: "/nonexistent/netbird"}, want: agentproto.NetBirdDisabled},
		{name: "not installed", o: agent.NetBirdOptions{Enabled: true, AutoJoin: true, Bin: filepath.Join(t.TempDir(), "netbird")}, want: agentproto.NetBirdNotInstalled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.o.StateDir = t.TempDir()
			m, err := agent.NewNetBird(tc.o)
			require.NoError(t, err)
			got := m.Reconcile(context.Background())
			require.Equal(t, tc.want, got.State)
			require.Equal(t, tc.want, m.Status(context.Background()).State, "what hello and heartbeats carry")
		})
	}
}
