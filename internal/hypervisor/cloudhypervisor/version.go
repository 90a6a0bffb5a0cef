package cloudhypervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// OldestTestedVersion is the oldest Cloud Hypervisor release this agent
// is tested against (the stand-in follows v48.0 through v53.0); `nkudo-agent
// doctor` warns below it.
const OldestTestedVersion = "48.0"

// ErrBadVersion: the output of `cloud-hypervisor --version` holds no
// version this package can read.
var ErrBadVersion = errors.New("unreadable cloud-hypervisor version")

// Version is a Cloud Hypervisor release number.
type Version struct {
	Major, Minor, Patch int
	// Raw is the version as the binary printed it, e.g. "v48.0-12-gabc1234".
	Raw string
}

func (v Version) String() string { return v.Raw }

// Less orders versions by release number.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	return v.Patch < o.Patch
}

// ParseVersion reads the output of `cloud-hypervisor --version` (or a bare
// version). The binary prints "cloud-hypervisor " then its BUILD_VERSION,
// which its build.rs (cloud-hypervisor/cloud-hypervisor, build.rs) sets to
// "v" + CARGO_PKG_VERSION ("v48.0.0"), or to `git describe --dirty`
// ("v48.0", "v48.0-12-gabc1234-dirty") when built from a checkout, plus
// "-" + CH_EXTRA_VERSION when that is set. vmm.ping's "version" field is
// CARGO_PKG_VERSION without the "v" ("48.0.0").
func ParseVersion(out string) (Version, error) {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	raw := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), BinaryName))
	num, _, _ := strings.Cut(strings.TrimPrefix(raw, "v"), "-")
	parts := strings.Split(num, ".")
	if raw == "" || len(parts) < 2 || len(parts) > 3 {
		return Version{}, fmt.Errorf("%w: %q", ErrBadVersion, line)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || p == "" || p[0] == '+' {
			return Version{}, fmt.Errorf("%w: %q", ErrBadVersion, line)
		}
		n[i] = v
	}
	return Version{Major: n[0], Minor: n[1], Patch: n[2], Raw: raw}, nil
}

// ReadVersion runs `binary --version` and parses what it prints.
func ReadVersion(ctx context.Context, binary string) (Version, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, binary, "--version")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Version{}, fmt.Errorf("running %s --version: %w (%s)", binary, err, strings.TrimSpace(stderr.String()))
	}
	v, err := ParseVersion(string(out))
	if err != nil {
		return Version{}, fmt.Errorf("reading version of %s: %w", binary, err)
	}
	return v, nil
}

// BelowTested reports whether v is older than OldestTestedVersion.
func BelowTested(v Version) bool {
	oldest, err := ParseVersion(OldestTestedVersion)
	if err != nil {
		// A constant of this package: a test holds it parseable.
		return false
	}
	return v.Less(oldest)
}
