package specfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPathFindsSharedSpecs(t *testing.T) {
	for _, name := range []string{"cloud-hypervisor.yaml", "netbird-management.yml", "netbird-status.example.json"} {
		t.Run(name, func(t *testing.T) {
			p := Path(t, name)
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			require.NotEmpty(t, b)
		})
	}
}

func TestEnvOverride(t *testing.T) {
	tests := []struct {
		name    string
		dir     func(t *testing.T) string
		wantErr bool
	}{
		{"existing dir", func(t *testing.T) string { return t.TempDir() }, false},
		{"missing dir", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.dir(t)
			t.Setenv(EnvDir, d)
			got, err := find()
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, d, got)
		})
	}
}
