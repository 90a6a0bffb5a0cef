package cloudinit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/kubedoio/n-kudo/internal/agent/statefile"
)

// ErrInvalidConfig is returned when a Config cannot produce a usable seed.
var ErrInvalidConfig = errors.New("invalid cloud-init config")

// VolumeID is the label cloud-init's NoCloud datasource looks for.
const VolumeID = "cidata"

// Names of the seed's files, as NoCloud reads them.
const (
	MetaDataFile      = "meta-data"
	UserDataFile      = "user-data"
	NetworkConfigFile = "network-config"
)

// MaxUserData bounds the user data: a seed is a boot-time hint, not a
// payload channel, and the whole image is built in memory.
const MaxUserData = 1 << 20

// InterfaceName is the name the guest NIC is given (set-name) so that
// user data can refer to it regardless of the guest's naming scheme.
const InterfaceName = "eth0"

// Config is what a seed says about one VM.
type Config struct {
	// InstanceID is the VM id; cloud-init reruns its per-instance modules
	// when it changes, so it must be stable for the VM's life.
	InstanceID string
	// Hostname is the guest's host name (local-hostname).
	Hostname string
	// UserData is given to the guest verbatim; empty means a minimal
	// #cloud-config that only sets the host name.
	UserData string
	// MAC is the guest NIC's address; the network config matches on it.
	MAC string
	// Static, when set, replaces DHCP with a fixed address.
	Static *Static
}

// Static is a fixed IPv4 or IPv6 configuration for the guest NIC.
type Static struct {
	// Address in CIDR form, e.g. "10.0.0.5/24".
	Address string
	// Gateway is the default route's next hop; empty means none.
	Gateway string
	// DNS servers.
	DNS []string
}

// Validate checks the config without building anything.
func (c Config) Validate() error {
	var problems []string
	if c.InstanceID == "" {
		problems = append(problems, "instance id is required")
	} else if !printable(c.InstanceID) {
		problems = append(problems, "instance id must be printable")
	}
	if !validHostname(c.Hostname) {
		problems = append(problems, fmt.Sprintf("hostname %q must be 1-63 letters, digits or '-', not starting or ending with '-'", c.Hostname))
	}
	if len(c.UserData) > MaxUserData {
		problems = append(problems, fmt.Sprintf("user data longer than %d bytes", MaxUserData))
	}
	if hw, err := net.ParseMAC(c.MAC); err != nil || len(hw) != 6 {
		problems = append(problems, fmt.Sprintf("mac %q is not a 48-bit MAC address", c.MAC))
	}
	if s := c.Static; s != nil {
		pfx, err := netip.ParsePrefix(s.Address)
		if err != nil {
			problems = append(problems, fmt.Sprintf("static address %q is not in CIDR form", s.Address))
		}
		if s.Gateway != "" {
			gw, err := netip.ParseAddr(s.Gateway)
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("gateway %q is not an IP address", s.Gateway))
			case pfx.IsValid() && gw.Is4() != pfx.Addr().Is4():
				problems = append(problems, fmt.Sprintf("gateway %q is not in the address family of %q", s.Gateway, s.Address))
			}
		}
		for _, d := range s.DNS {
			if _, err := netip.ParseAddr(d); err != nil {
				problems = append(problems, fmt.Sprintf("dns server %q is not an IP address", d))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(problems, "; "))
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func validHostname(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
		default:
			return false
		}
	}
	return true
}

// Hostname turns a VM name into a valid host name: characters a host name
// cannot hold ('_', '.') become '-', and leading or trailing '-' are
// trimmed; an empty result falls back to fallback.
func Hostname(name, fallback string) string {
	b := []byte(name)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			b[i] = '-'
		}
	}
	h := strings.Trim(string(b), "-")
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-")
	}
	if h == "" {
		return fallback
	}
	return h
}

// quote renders s as a YAML double-quoted scalar. JSON string syntax is a
// subset of YAML's double-quoted style, so encoding/json does the escaping.
func quote(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// MetaData renders the meta-data document.
func MetaData(c Config) []byte {
	return fmt.Appendf(nil, "instance-id: %s\nlocal-hostname: %s\n", quote(c.InstanceID), quote(c.Hostname))
}

// UserData renders the user-data document: the given one, or a minimal
// #cloud-config that sets the host name.
func UserData(c Config) []byte {
	if c.UserData != "" {
		return []byte(c.UserData)
	}
	return fmt.Appendf(nil, "#cloud-config\npreserve_hostname: false\nhostname: %s\n", quote(c.Hostname))
}

// NetworkConfig renders the version 2 network-config document: one
// ethernet matched by MAC and renamed to InterfaceName, on DHCP or with the
// static address.
func NetworkConfig(c Config) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "version: 2\nethernets:\n  %s:\n    match:\n      macaddress: %s\n    set-name: %s\n",
		InterfaceName, quote(strings.ToLower(c.MAC)), InterfaceName)
	s := c.Static
	if s == nil {
		b.WriteString("    dhcp4: true\n    dhcp6: false\n")
		return b.Bytes()
	}
	b.WriteString("    dhcp4: false\n    dhcp6: false\n")
	fmt.Fprintf(&b, "    addresses:\n      - %s\n", quote(s.Address))
	if s.Gateway != "" {
		fmt.Fprintf(&b, "    routes:\n      - to: default\n        via: %s\n", quote(s.Gateway))
	}
	if len(s.DNS) > 0 {
		b.WriteString("    nameservers:\n      addresses:\n")
		for _, d := range s.DNS {
			fmt.Fprintf(&b, "        - %s\n", quote(d))
		}
	}
	return b.Bytes()
}

// Files returns the seed's files, in the order the image lists them.
func Files(c Config) []File {
	return []File{
		{Name: MetaDataFile, Data: MetaData(c)},
		{Name: NetworkConfigFile, Data: NetworkConfig(c)},
		{Name: UserDataFile, Data: UserData(c)},
	}
}

// Build validates c and returns the seed image.
func Build(c Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("building seed for %s: %w", c.InstanceID, err)
	}
	var buf bytes.Buffer
	if err := WriteISO(&buf, VolumeID, Files(c)); err != nil {
		return nil, fmt.Errorf("building seed for %s: %w", c.InstanceID, err)
	}
	return buf.Bytes(), nil
}

// WriteFile builds the seed and writes it to path atomically, so a crash
// never leaves a truncated seed for the VMM to attach. The image holds the
// user data, which may carry secrets: statefile creates it private (0600).
func WriteFile(path string, c Config) error {
	img, err := Build(c)
	if err != nil {
		return err
	}
	if err := statefile.WriteBytes(path, img); err != nil {
		return fmt.Errorf("writing seed %s: %w", path, err)
	}
	return nil
}
