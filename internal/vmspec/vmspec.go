package vmspec

import (
	"errors"
	"fmt"
	"net"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Spec limits. They are the bounds a real Cloud Hypervisor host accepts in
// practice; the sim provider enforces the same, so bad input is refused
// the same way in `nkudo dev` as in production.
const (
	MinVCPUs     = 1
	MaxVCPUs     = 64
	MinMemoryMiB = 64
	MaxMemoryMiB = 1 << 20 // 1 TiB
	// MaxNameLen: the name is an RFC 1123 label (a host name in the guest).
	MaxNameLen = 63
	// MaxUserData bounds the cloud-init user data: NoCloud seeds are small.
	MaxUserData   = 64 << 10
	MaxCmdlineLen = 2048
	MaxPathLen    = 4096
)

// Field names, as they appear in the JSON of a VM create request and of
// MicroVMCreate params.
const (
	FieldName      = "name"
	FieldVCPUs     = "vcpus"
	FieldMemoryMiB = "memory_mib"
	FieldKernel    = "kernel"
	FieldInitramfs = "initramfs"
	FieldFirmware  = "firmware"
	FieldCmdline   = "cmdline"
	FieldDiskImage = "disk_image"
	FieldUserData  = "cloud_init.user_data"
	FieldMAC       = "mac"
)

// ErrInvalid is wrapped by every FieldError.
var ErrInvalid = errors.New("invalid vm spec")

// FieldError is one problem of a spec, about one field.
type FieldError struct {
	// Field is the JSON name of the field (FieldName…).
	Field string
	// Msg says what is wrong and what is accepted, without the field name.
	Msg string
}

func (e *FieldError) Error() string { return e.Field + " " + e.Msg }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Spec is a VM's shape and the host files it boots from. Empty optional
// fields (Kernel, Initramfs, Firmware, Cmdline, UserData, MAC) are not
// checked beyond being empty.
type Spec struct {
	Name      string
	VCPUs     int
	MemoryMiB int
	Kernel    string
	Initramfs string
	Firmware  string
	Cmdline   string
	DiskImage string
	UserData  string
	MAC       string
}

// Validate checks the spec without touching any host and returns every
// problem found, each a *FieldError, joined with errors.Join (nil when the
// spec is valid). Use Problems to get them one by one.
func (s Spec) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(CheckName(s.Name))
	add(CheckVCPUs(s.VCPUs))
	add(CheckMemoryMiB(s.MemoryMiB))
	if s.DiskImage == "" {
		add(&FieldError{FieldDiskImage, "is required"})
	} else {
		add(CheckHostPath(FieldDiskImage, s.DiskImage))
	}
	for _, p := range []struct{ field, v string }{
		{FieldKernel, s.Kernel}, {FieldInitramfs, s.Initramfs}, {FieldFirmware, s.Firmware},
	} {
		if p.v != "" {
			add(CheckHostPath(p.field, p.v))
		}
	}
	if s.Kernel == "" && s.Initramfs != "" {
		add(&FieldError{FieldInitramfs, "needs a kernel"})
	}
	if s.Kernel != "" && s.Firmware != "" {
		add(&FieldError{FieldFirmware, "and kernel exclude each other: a VM boots from one of them"})
	}
	add(CheckCmdline(s.Cmdline, s.Kernel != ""))
	if len(s.UserData) > MaxUserData {
		add(&FieldError{FieldUserData, fmt.Sprintf("must be at most %d bytes, not %d", MaxUserData, len(s.UserData))})
	}
	if s.MAC != "" {
		_, err := CanonicalMAC(s.MAC)
		add(err)
	}
	return errors.Join(errs...)
}

// Problems lists the *FieldErrors inside an error Validate returned.
func Problems(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		var fe *FieldError
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		} else if errors.As(err, &fe) {
			out = append(out, fe)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// CheckName accepts an RFC 1123 label: the VM name becomes a host name
// inside the guest (cloud-init) and part of device names on the host.
func CheckName(s string) error {
	if s == "" {
		return &FieldError{FieldName, "is required"}
	}
	ok := len(s) <= MaxNameLen && s[0] != '-' && s[len(s)-1] != '-'
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'
	}
	if !ok {
		return &FieldError{FieldName, fmt.Sprintf("%q must be an RFC 1123 label: 1 to %d lowercase letters, digits or '-', starting and ending with a letter or digit", s, MaxNameLen)}
	}
	return nil
}

// CheckVCPUs bounds the vCPU count.
func CheckVCPUs(n int) error {
	if n < MinVCPUs || n > MaxVCPUs {
		return &FieldError{FieldVCPUs, fmt.Sprintf("must be %d to %d, not %d", MinVCPUs, MaxVCPUs, n)}
	}
	return nil
}

// CheckMemoryMiB bounds the memory size.
func CheckMemoryMiB(n int) error {
	if n < MinMemoryMiB || n > MaxMemoryMiB {
		return &FieldError{FieldMemoryMiB, fmt.Sprintf("must be %d to %d (1 TiB), not %d", MinMemoryMiB, MaxMemoryMiB, n)}
	}
	return nil
}

// CheckCmdline accepts one line of at most MaxCmdlineLen bytes, and only
// with a kernel: a firmware boot reads its command line from the disk.
func CheckCmdline(s string, hasKernel bool) error {
	switch {
	case s == "":
		return nil
	case !hasKernel:
		return &FieldError{FieldCmdline, "needs a kernel: a firmware boot reads its command line from the disk"}
	case len(s) > MaxCmdlineLen || strings.ContainsAny(s, "\x00\n\r") || !utf8.ValidString(s):
		return &FieldError{FieldCmdline, fmt.Sprintf("must be one line of at most %d bytes of UTF-8", MaxCmdlineLen)}
	}
	return nil
}

// CheckHostPath accepts a clean absolute path on the edge host: the agent
// opens it as is (after checking it lies in one of its image directories),
// so relative paths and ".." are refused, control characters too (they
// would forge log lines), and ',' because Cloud Hypervisor's option parser
// splits values on it (--disk path=…,readonly=on).
func CheckHostPath(field, p string) error {
	bad := func(msg string) error { return &FieldError{field, msg} }
	switch {
	case p == "":
		return bad("is required")
	case len(p) > MaxPathLen:
		return bad(fmt.Sprintf("must be at most %d bytes", MaxPathLen))
	case !utf8.ValidString(p):
		return bad("must be valid UTF-8")
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return bad("must not contain control characters")
	case strings.Contains(p, ","):
		return bad(fmt.Sprintf("%q must not contain ',': the VMM splits its options on commas", p))
	case !strings.HasPrefix(p, "/"):
		return bad(fmt.Sprintf("%q must be an absolute path on the host", p))
	case hasDotDot(p):
		return bad(fmt.Sprintf("%q must not contain '..'", p))
	case p == "/" || path.Clean(p) != p:
		return bad(fmt.Sprintf("%q must be a clean path naming a file (no '.', '//' or trailing '/')", p))
	}
	return nil
}

func hasDotDot(p string) bool {
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return true
		}
	}
	return false
}

// CanonicalMAC checks a MAC address in the one form Cloud Hypervisor
// accepts — six colon-separated two-digit hex octets, aa:bb:cc:dd:ee:ff —
// and returns it in lower case. net.ParseMAC alone would also take
// "52-54-00-12-34-56" and "5254.0012.3456", which the VMM refuses with
// 400 (net_util/src/mac.rs in cloud-hypervisor/cloud-hypervisor:
// MacAddr::parse_str splits on ':' and wants two digits per octet). A multicast address
// cannot be a NIC's.
func CanonicalMAC(s string) (string, error) {
	bad := &FieldError{FieldMAC, fmt.Sprintf("%q must be six colon-separated two-digit hex octets, like 52:54:00:12:34:56", s)}
	if len(s) != 17 {
		return "", bad
	}
	for i := 2; i < len(s); i += 3 {
		if s[i] != ':' {
			return "", bad
		}
	}
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", bad
	}
	if hw[0]&1 == 1 {
		return "", &FieldError{FieldMAC, fmt.Sprintf("%q is a multicast address; a NIC needs a unicast one", s)}
	}
	return hw.String(), nil
}
