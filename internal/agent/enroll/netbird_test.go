package enroll

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agent/identity"
	"github.com/kubedoio/n-kudo/internal/netbird"
)

var identityExists = identity.Exists

func TestEnrollStoresNetBirdSetupKey(t *testing.T) {
	t.Parallel()
	const key = "A616097E-FCF0-48FA-9354-000000000001"
	tests := []struct {
		name     string
		answer   *netbirdAnswer
		wantKey  bool
		wantMgmt string
		wantErr  error
		// fresh: the state directory does not exist yet, as on a host's
		// first enrollment.
		fresh bool
	}{
		{name: "key and management url", answer: &netbirdAnswer{SetupKey: key, ManagementURL: "https://nb.example.test:443"},
			wantKey: true, wantMgmt: "https://nb.example.test:443\n"},
		{name: "key only", answer: &netbirdAnswer{SetupKey: key}, wantKey: true},
		{name: "no state directory yet", answer: &netbirdAnswer{SetupKey: key, ManagementURL: "https://nb.example.test:443"},
			wantKey: true, wantMgmt: "https://nb.example.test:443\n", fresh: true},
		{name: "netbird off", answer: nil},
		// Refused before an identity is stored.
		{name: "bad management url", answer: &netbirdAnswer{SetupKey: key, ManagementURL: "ftp://x"}, wantErr: ErrBadResponse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			ts.netbird = tc.answer
			dir := t.TempDir()
			if tc.fresh {
				dir = filepath.Join(dir, "state", "nkudo")
			}
			_, err := Enroll(context.Background(), Options{
				Server: ts.URL, Token: "good-token", StateDir: dir, CAFile: writeCAFile(t, ts.auth), Hostname: "edge-1",
			})
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				exists, xerr := identityExists(dir)
				require.NoError(t, xerr)
				require.False(t, exists, "no identity left behind")
				return
			}
			require.NoError(t, err)
			keyPath := filepath.Join(dir, NetBirdSetupKeyFile)
			st, statErr := os.Stat(keyPath)
			if !tc.wantKey {
				require.ErrorIs(t, statErr, os.ErrNotExist)
				return
			}
			require.NoError(t, statErr)
			require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the setup key is a secret")
			got, err := netbird.SetupKeyFile{Path: keyPath}.Read()
			require.NoError(t, err)
			require.Equal(t, key, got)
			mgmt, err := os.ReadFile(filepath.Join(dir, NetBirdManagementFile))
			if tc.wantMgmt == "" {
				require.ErrorIs(t, err, os.ErrNotExist)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantMgmt, string(mgmt))
		})
	}
}
