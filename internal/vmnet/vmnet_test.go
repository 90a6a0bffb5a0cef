package vmnet_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/goleak"

	"github.com/kubedoio/n-kudo/internal/vmnet"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestTAPNameAndMAC(t *testing.T) {
	t.Parallel()
	ids := []uuid.UUID{
		uuid.MustParse("00000000-0000-0000-0000-000000000001"),
		uuid.MustParse("00000000-0000-0000-0000-000000000002"),
		uuid.MustParse("0190f3a2-7b7c-7000-8000-000000000001"), // v7-style shared prefixes
		uuid.MustParse("0190f3a2-7b7c-7000-8000-000000000002"),
	}
	names := map[string]bool{}
	macs := map[string]bool{}
	for _, id := range ids {
		name := vmnet.TAPName(id)
		require.NoError(t, vmnet.ValidName(name))
		assert.Len(t, name, 14)
		assert.Regexp(t, `^nk[0-9a-f]{12}$`, name)
		assert.Equal(t, name, vmnet.TAPName(id), "stable")
		mac := vmnet.MACFor(id)
		require.Len(t, mac, 6)
		assert.Equal(t, byte(0x02), mac[0]&0x02, "locally administered")
		assert.Zero(t, mac[0]&0x01, "unicast")
		assert.Equal(t, mac, vmnet.MACFor(id), "stable")
		names[name], macs[mac.String()] = true, true
	}
	assert.Len(t, names, len(ids), "distinct names")
	assert.Len(t, macs, len(ids), "distinct macs")
	// Pinned: changing the derivation would orphan the TAPs of running VMs.
	assert.Equal(t, vmnet.TAPName(ids[0]), vmnet.TAPName(uuid.MustParse("00000000-0000-0000-0000-000000000001")))
}

func TestValidName(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"nkudo0", true}, {"br-lan.10", true}, {"", false}, {"sixteen-chars-xx", false},
		{"a b", false}, {"a/b", false}, {"a:b", false}, {".", false}, {"é", false},
	} {
		err := vmnet.ValidName(tt.name)
		if tt.ok {
			assert.NoError(t, err, tt.name)
		} else {
			assert.ErrorIs(t, err, vmnet.ErrInvalidName, tt.name)
		}
	}
	_, err := vmnet.New(vmnet.Options{Bridge: "way-too-long-bridge"})
	require.ErrorIs(t, err, vmnet.ErrInvalidName)
}

// testNS creates a network namespace for one test and returns its path and
// a netlink handle bound to it. The namespace is created on a locked
// thread that is then retired, so the test process's own threads never
// leave the host namespace; it lives as long as the returned handle.
func testNS(t *testing.T) (string, *netlink.Handle) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespace tests need root (CAP_SYS_ADMIN and CAP_NET_ADMIN)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("network tests need /dev/net/tun: %v", err)
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
		t.Skipf("cannot create a network namespace (need CAP_SYS_ADMIN): %v", r.err)
	}
	t.Cleanup(func() { _ = r.ns.Close() })
	h, err := netlink.NewHandleAt(r.ns)
	require.NoError(t, err)
	t.Cleanup(h.Close)
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(r.ns)), h
}

func TestManagerInNamespace(t *testing.T) {
	t.Parallel()
	path, h := testNS(t)
	ctx := context.Background()
	m, err := vmnet.New(vmnet.Options{Bridge: "nktest0", NetNSPath: path})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	assert.Equal(t, "nktest0", m.Bridge())

	// The bridge: created, up, and ensuring it again changes nothing.
	for range 2 {
		require.NoError(t, m.EnsureBridge(ctx))
	}
	br, err := h.LinkByName("nktest0")
	require.NoError(t, err)
	assert.Equal(t, "bridge", br.Type())
	assert.NotZero(t, br.Attrs().Flags&net.FlagUp)
	_, err = netlink.LinkByName("nktest0")
	require.Error(t, err, "the host namespace must not see the test bridge")

	id := uuid.New()
	name := vmnet.TAPName(id)
	for range 2 {
		require.NoError(t, m.EnsureTAP(ctx, vmnet.TAP{Name: name, Owner: 1000, Group: 1000}))
	}
	link, err := h.LinkByName(name)
	require.NoError(t, err)
	assert.Equal(t, "tuntap", link.Type())
	assert.Equal(t, br.Attrs().Index, link.Attrs().MasterIndex, "attached to the bridge")
	assert.NotZero(t, link.Attrs().Flags&net.FlagUp)
	tt, ok := link.(*netlink.Tuntap)
	require.True(t, ok)
	assert.Equal(t, netlink.TUNTAP_MODE_TAP, tt.Mode)
	assert.Equal(t, uint32(1000), tt.Owner)
	assert.Equal(t, uint32(1000), tt.Group)
	assert.NotZero(t, tt.Flags&netlink.TUNTAP_VNET_HDR)
	assert.NotZero(t, tt.Flags&netlink.TUNTAP_NO_PI)
	exists, err := m.TAPExists(ctx, name)
	require.NoError(t, err)
	assert.True(t, exists)

	// A TAP detached from the bridge is re-attached by EnsureTAP.
	require.NoError(t, h.LinkSetNoMaster(link))
	require.NoError(t, m.EnsureTAP(ctx, vmnet.TAP{Name: name}))
	link, err = h.LinkByName(name)
	require.NoError(t, err)
	assert.Equal(t, br.Attrs().Index, link.Attrs().MasterIndex)

	for range 2 {
		require.NoError(t, m.DeleteTAP(ctx, name))
	}
	_, err = h.LinkByName(name)
	require.Error(t, err)
	exists, err = m.TAPExists(ctx, name)
	require.NoError(t, err)
	assert.False(t, exists)
}

func TestManagerLeavesOthersDevicesAlone(t *testing.T) {
	t.Parallel()
	path, h := testNS(t)
	ctx := context.Background()
	// A TAP holds the name a Manager wants for its bridge.
	m2, err := vmnet.New(vmnet.Options{NetNSPath: path})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m2.Close()) })
	require.NoError(t, m2.EnsureTAP(ctx, vmnet.TAP{Name: "taken0"}))
	m, err := vmnet.New(vmnet.Options{Bridge: "taken0", NetNSPath: path})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	require.ErrorIs(t, m.EnsureBridge(ctx), vmnet.ErrWrongKind)
	require.ErrorIs(t, m.EnsureTAP(ctx, vmnet.TAP{Name: "nkother"}), vmnet.ErrWrongKind)

	// A bridge holds the name of a TAP.
	require.NoError(t, h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "other0"}}))
	require.ErrorIs(t, m2.EnsureTAP(ctx, vmnet.TAP{Name: "other0"}), vmnet.ErrWrongKind)
	require.ErrorIs(t, m2.DeleteTAP(ctx, "other0"), vmnet.ErrWrongKind)
	link, err := h.LinkByName("other0")
	require.NoError(t, err, "the other bridge survives")
	assert.Equal(t, "bridge", link.Type())
	_, err = h.LinkByName("nkother")
	require.Error(t, err, "no TAP is created when the bridge is unusable")
	require.ErrorIs(t, m2.EnsureTAP(ctx, vmnet.TAP{Name: "bad name"}), vmnet.ErrInvalidName)

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, m2.EnsureBridge(canceled), context.Canceled)
}

func TestNewRejectsMissingNamespace(t *testing.T) {
	t.Parallel()
	_, err := vmnet.New(vmnet.Options{NetNSPath: "/nonexistent/netns"})
	require.Error(t, err)
}
