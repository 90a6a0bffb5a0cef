package vmnet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"runtime"

	"github.com/google/uuid"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// DefaultBridge is the bridge VMs attach to unless configured otherwise.
const DefaultBridge = "nkudo0"

// MaxNameLen is the kernel's limit on an interface name (IFNAMSIZ - 1).
const MaxNameLen = 15

// tapPrefix starts every TAP name, so operators can tell n-kudo's devices
// from others at a glance.
const tapPrefix = "nk"

// Sentinel errors.
var (
	// ErrInvalidName: an interface name the kernel would refuse.
	ErrInvalidName = errors.New("invalid interface name")
	// ErrWrongKind: a device of that name exists but is not the kind
	// asked for (a bridge name held by a veth, a TAP name held by a
	// bridge); it belongs to someone else and is left alone.
	ErrWrongKind = errors.New("interface exists with another kind")
)

// TAPName is the TAP device name of a VM: "nk" and 12 hex digits of a hash
// of the id. Hashing rather than taking the id's first digits keeps names
// distinct for time-ordered ids (UUIDv7) that share a prefix.
func TAPName(id uuid.UUID) string {
	sum := sha256.Sum256([]byte("nkudo-tap:" + id.String()))
	return tapPrefix + hex.EncodeToString(sum[:6])
}

// MACFor is the guest MAC of a VM: stable across restarts, locally
// administered (bit 1 of the first octet set) and unicast (bit 0 clear), so
// it never collides with a vendor-assigned address.
func MACFor(id uuid.UUID) net.HardwareAddr {
	sum := sha256.Sum256([]byte("nkudo-mac:" + id.String()))
	mac := net.HardwareAddr(sum[:6:6])
	mac[0] = (mac[0] | 0x02) &^ 0x01
	return mac
}

// ValidName reports whether name is usable as an interface name.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLen || name == "." || name == ".." {
		return fmt.Errorf("%w: %q must be 1-%d characters", ErrInvalidName, name, MaxNameLen)
	}
	for _, r := range name {
		if r <= ' ' || r == '/' || r == ':' || r > '~' {
			return fmt.Errorf("%w: %q holds %q", ErrInvalidName, name, r)
		}
	}
	return nil
}

// TAP describes a VM's TAP device.
type TAP struct {
	Name string
	// Owner and Group are the uid and gid allowed to attach to the device
	// (the VMM's); 0 is root.
	Owner, Group uint32
}

// Options configures a Manager.
type Options struct {
	// Bridge is the bridge name; empty means DefaultBridge.
	Bridge string
	// NetNSPath, when set, is a network namespace file (e.g.
	// /run/netns/x or /proc/PID/ns/net) every operation runs in; empty
	// means the agent's own namespace.
	NetNSPath string
}

// Manager creates and removes the bridge and TAP devices. It is safe for
// concurrent use: every operation is a few netlink calls that the kernel
// serialises.
type Manager struct {
	bridge string
	ns     netns.NsHandle // -1 means the caller's namespace
}

// New returns a Manager. Close it to release the namespace handle.
func New(opts Options) (*Manager, error) {
	m := &Manager{bridge: opts.Bridge, ns: netns.None()}
	if m.bridge == "" {
		m.bridge = DefaultBridge
	}
	if err := ValidName(m.bridge); err != nil {
		return nil, fmt.Errorf("configuring bridge: %w", err)
	}
	if opts.NetNSPath != "" {
		ns, err := netns.GetFromPath(opts.NetNSPath)
		if err != nil {
			return nil, fmt.Errorf("opening network namespace %s: %w", opts.NetNSPath, err)
		}
		m.ns = ns
	}
	return m, nil
}

// Bridge is the name of the bridge VMs attach to.
func (m *Manager) Bridge() string { return m.bridge }

// Close releases the namespace handle, if any.
func (m *Manager) Close() error {
	if !m.ns.IsOpen() {
		return nil
	}
	err := m.ns.Close()
	m.ns = netns.None()
	if err != nil {
		return fmt.Errorf("closing network namespace handle: %w", err)
	}
	return nil
}

// do runs f in the Manager's namespace. Namespaces are per OS thread, so
// f runs on a goroutine locked to a fresh thread that is switched into the
// namespace and never unlocked: Go then retires the thread when the
// goroutine ends, so no other goroutine is ever scheduled on a thread left
// in the wrong namespace. TUNSETIFF (TAP creation) in particular acts in
// the calling thread's namespace, not a netlink handle's, which is why a
// handle bound to the namespace is not enough.
func (m *Manager) do(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !m.ns.IsOpen() {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(m.ns); err != nil {
			errc <- fmt.Errorf("entering network namespace: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// EnsureBridge creates the bridge if it is missing and brings it up.
func (m *Manager) EnsureBridge(ctx context.Context) error {
	err := m.do(ctx, func() error {
		_, err := m.ensureBridge()
		return err
	})
	if err != nil {
		return fmt.Errorf("ensuring bridge %s: %w", m.bridge, err)
	}
	return nil
}

func (m *Manager) ensureBridge() (netlink.Link, error) {
	link, err := netlink.LinkByName(m.bridge)
	switch {
	case isNotFound(err):
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: m.bridge}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, errExist) {
			return nil, fmt.Errorf("adding bridge: %w", err)
		}
		// Read it back: a concurrent creator may have won the race, and
		// the kernel fills in the index.
		if link, err = netlink.LinkByName(m.bridge); err != nil {
			return nil, fmt.Errorf("reading bridge back: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("looking up bridge: %w", err)
	}
	if link.Type() != "bridge" {
		return nil, fmt.Errorf("%w: %s is a %s, not a bridge", ErrWrongKind, m.bridge, link.Type())
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(link); err != nil {
			return nil, fmt.Errorf("bringing bridge up: %w", err)
		}
	}
	return link, nil
}

// EnsureTAP creates the TAP device if it is missing, attaches it to the
// bridge (creating the bridge if needed) and brings it up. A TAP that
// already exists is kept: a running VMM may hold it open.
func (m *Manager) EnsureTAP(ctx context.Context, tap TAP) error {
	if err := ValidName(tap.Name); err != nil {
		return fmt.Errorf("ensuring tap: %w", err)
	}
	err := m.do(ctx, func() error {
		br, err := m.ensureBridge()
		if err != nil {
			return err
		}
		link, err := netlink.LinkByName(tap.Name)
		switch {
		case isNotFound(err):
			t := &netlink.Tuntap{
				LinkAttrs: netlink.LinkAttrs{Name: tap.Name},
				Mode:      netlink.TUNTAP_MODE_TAP,
				// Cloud Hypervisor opens its TAP with IFF_NO_PI and
				// IFF_VNET_HDR and one queue pair; a persistent device
				// must have matching flags or the VMM's TUNSETIFF fails.
				Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR,
				Owner: tap.Owner,
				Group: tap.Group,
			}
			if err := netlink.LinkAdd(t); err != nil {
				return fmt.Errorf("adding tap: %w", err)
			}
			if link, err = netlink.LinkByName(tap.Name); err != nil {
				return fmt.Errorf("reading tap back: %w", err)
			}
		case err != nil:
			return fmt.Errorf("looking up tap: %w", err)
		}
		if link.Type() != "tuntap" {
			return fmt.Errorf("%w: %s is a %s, not a tap", ErrWrongKind, tap.Name, link.Type())
		}
		if link.Attrs().MasterIndex != br.Attrs().Index {
			if err := netlink.LinkSetMasterByIndex(link, br.Attrs().Index); err != nil {
				return fmt.Errorf("attaching to bridge %s: %w", m.bridge, err)
			}
		}
		if link.Attrs().Flags&net.FlagUp == 0 {
			if err := netlink.LinkSetUp(link); err != nil {
				return fmt.Errorf("bringing up: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ensuring tap %s: %w", tap.Name, err)
	}
	return nil
}

// DeleteTAP removes the TAP device; a missing one is not an error. A
// device of that name that is not a TAP is left alone (ErrWrongKind).
func (m *Manager) DeleteTAP(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return fmt.Errorf("deleting tap: %w", err)
	}
	err := m.do(ctx, func() error {
		link, err := netlink.LinkByName(name)
		switch {
		case isNotFound(err):
			return nil
		case err != nil:
			return fmt.Errorf("looking up: %w", err)
		}
		if link.Type() != "tuntap" {
			return fmt.Errorf("%w: %s is a %s, not a tap", ErrWrongKind, name, link.Type())
		}
		if err := netlink.LinkDel(link); err != nil && !isNotFound(err) {
			return fmt.Errorf("removing: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("deleting tap %s: %w", name, err)
	}
	return nil
}

// TAPExists reports whether a device of that name exists.
func (m *Manager) TAPExists(ctx context.Context, name string) (bool, error) {
	var exists bool
	err := m.do(ctx, func() error {
		_, err := netlink.LinkByName(name)
		switch {
		case isNotFound(err):
			return nil
		case err != nil:
			return err
		}
		exists = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("looking up tap %s: %w", name, err)
	}
	return exists, nil
}
