package cloudhypervisor

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/vmnet"
)

// TestRealNetworkInNamespace runs the provider with the real netlink
// network in a namespace the test creates, so TAPs are real kernel devices
// and the host's namespace is never touched.
func TestRealNetworkInNamespace(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create a network namespace")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("needs /dev/net/tun: %v", err)
	}
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ns, err := netns.New()
		ch <- result{ns, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Skipf("cannot create a network namespace: %v", r.err)
	}
	t.Cleanup(func() { _ = r.ns.Close() })
	nh, err := netlink.NewHandleAt(r.ns)
	require.NoError(t, err)
	t.Cleanup(nh.Close)
	mgr, err := vmnet.New(vmnet.Options{Bridge: "nkbr0", NetNSPath: fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(r.ns))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = mgr.Close() })

	h := newHarness(t)
	opts := h.options()
	opts.Network = mgr
	p, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	ctx := context.Background()
	spec := h.spec("netvm")
	require.NoError(t, p.Create(ctx, spec))
	require.NoError(t, p.Start(ctx, spec.ID))
	requireState(t, p, spec.ID, hypervisor.StateRunning)

	tap, err := nh.LinkByName(vmnet.TAPName(spec.ID))
	require.NoError(t, err)
	br, err := nh.LinkByName("nkbr0")
	require.NoError(t, err)
	assert.Equal(t, br.Attrs().Index, tap.Attrs().MasterIndex)
	tt, ok := tap.(*netlink.Tuntap)
	require.True(t, ok)
	assert.Equal(t, uint32(os.Geteuid()), tt.Owner, "owned by the user the vmm runs as")

	// The TAP is gone (as after a host reboot): the next start makes it
	// again, on the bridge, before the VMM opens it; otherwise the VMM
	// would make one itself, on no bridge.
	require.NoError(t, p.Stop(ctx, spec.ID))
	require.NoError(t, nh.LinkDel(tap))
	require.NoError(t, p.Start(ctx, spec.ID))
	tap, err = nh.LinkByName(vmnet.TAPName(spec.ID))
	require.NoError(t, err, "tap re-created")
	assert.Equal(t, br.Attrs().Index, tap.Attrs().MasterIndex, "re-created on the bridge")

	require.NoError(t, p.Delete(ctx, spec.ID))
	_, err = nh.LinkByName(vmnet.TAPName(spec.ID))
	require.Error(t, err, "tap removed")
	assert.Empty(t, h.alive())
}
