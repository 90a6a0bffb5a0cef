package hypervisor_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/hypervisor"
)

func TestUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var pv hypervisor.Provider = hypervisor.NewUnavailable(hypervisor.KindCloudHypervisor, "cloud-hypervisor binary not found on PATH")
	caps, err := pv.Capabilities(ctx)
	require.NoError(t, err)
	require.Equal(t, hypervisor.Capabilities{Kind: hypervisor.KindCloudHypervisor, Unavailable: "cloud-hypervisor binary not found on PATH"}, caps)
	id := uuid.New()
	for name, call := range map[string]func() error{
		"create": func() error { return pv.Create(ctx, hypervisor.VMSpec{ID: id}) },
		"start":  func() error { return pv.Start(ctx, id) },
		"stop":   func() error { return pv.Stop(ctx, id) },
		"reboot": func() error { return pv.Reboot(ctx, id) },
		"pause":  func() error { return pv.Pause(ctx, id) },
		"resume": func() error { return pv.Resume(ctx, id) },
		"delete": func() error { return pv.Delete(ctx, id) },
	} {
		err := call()
		require.ErrorIs(t, err, hypervisor.ErrUnavailable, name)
		require.ErrorContains(t, err, "binary not found on PATH", name)
	}
	_, err = pv.State(ctx, id)
	require.ErrorIs(t, err, hypervisor.ErrNotFound)
	vms, err := pv.List(ctx)
	require.NoError(t, err)
	require.Empty(t, vms)
}
