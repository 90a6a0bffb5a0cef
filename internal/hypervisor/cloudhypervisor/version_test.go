package cloudhypervisor_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/hypervisor/cloudhypervisor"
)

func TestParseVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		out                 string
		major, minor, patch int
		raw                 string
		below               bool
		bad                 bool
	}{
		{out: "cloud-hypervisor v48.0.0\n", major: 48, raw: "v48.0.0"},
		{out: "cloud-hypervisor v53.0\n", major: 53, raw: "v53.0"},
		{out: "cloud-hypervisor v48.0-12-gabc1234-dirty", major: 48, raw: "v48.0-12-gabc1234-dirty"},
		{out: "cloud-hypervisor v47.1.2-distro", major: 47, minor: 1, patch: 2, raw: "v47.1.2-distro", below: true},
		{out: "48.0.0", major: 48, raw: "48.0.0"},
		{out: "cloud-hypervisor v40.0", major: 40, raw: "v40.0", below: true},
		{out: "", bad: true},
		{out: "cloud-hypervisor", bad: true},
		{out: "cloud-hypervisor vX.Y", bad: true},
		{out: "cloud-hypervisor v48", bad: true},
		{out: "cloud-hypervisor v+48.0", bad: true},
		{out: "cloud-hypervisor v48.0.0.1", bad: true},
	}
	for _, tt := range tests {
		v, err := cloudhypervisor.ParseVersion(tt.out)
		if tt.bad {
			require.ErrorIs(t, err, cloudhypervisor.ErrBadVersion, "%q", tt.out)
			continue
		}
		require.NoError(t, err, tt.out)
		require.Equal(t, cloudhypervisor.Version{Major: tt.major, Minor: tt.minor, Patch: tt.patch, Raw: tt.raw}, v)
		require.Equal(t, tt.below, cloudhypervisor.BelowTested(v), tt.out)
	}
	_, err := cloudhypervisor.ParseVersion(cloudhypervisor.OldestTestedVersion)
	require.NoError(t, err, "OldestTestedVersion must parse")
}

// TestReadVersion runs a binary that prints what the real one prints for
// --version (src/main.rs: clap's version from BUILD_VERSION, see
// ParseVersion).
func TestReadVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "cloud-hypervisor")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\n[ \"$1\" = --version ] || exit 2\necho 'cloud-hypervisor v49.0.0'\n"), 0o755))
	v, err := cloudhypervisor.ReadVersion(context.Background(), bin)
	require.NoError(t, err)
	require.Equal(t, "v49.0.0", v.String())

	_, err = cloudhypervisor.ReadVersion(context.Background(), filepath.Join(dir, "missing"))
	require.Error(t, err)
}
