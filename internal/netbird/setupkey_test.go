package netbird

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSetupKeyFileRoundTrip(t *testing.T) {
	t.Parallel()
	f := SetupKeyFile{Path: filepath.Join(t.TempDir(), "netbird-setup-key")}
	require.NoError(t, f.Write(" "+testKey+"\n"))
	st, err := os.Stat(f.Path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	got, err := f.Read()
	require.NoError(t, err)
	require.Equal(t, testKey, got)

	// Replacing a file someone loosened yields 0600 again.
	require.NoError(t, os.Chmod(f.Path, 0o644))
	require.NoError(t, f.Write("other-key"))
	st, err = os.Stat(f.Path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	require.NoError(t, f.Remove())
	require.NoError(t, f.Remove(), "removing twice")
	_, err = f.Read()
	require.ErrorIs(t, err, ErrNoSetupKey)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestSetupKeyFileErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		dir     bool
		want    error
	}{
		{name: "group readable", content: testKey, mode: 0o640, want: ErrInsecureSetupKeyFile},
		{name: "world readable", content: testKey, mode: 0o604, want: ErrInsecureSetupKeyFile},
		{name: "empty", content: "\n", mode: 0o600, want: ErrNoSetupKey},
		{name: "oversized", content: strings.Repeat("k", 2*maxSetupKeyBytes), mode: 0o600, want: ErrNoSetupKey},
		{name: "directory", dir: true, want: ErrInsecureSetupKeyFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "key")
			if tc.dir {
				require.NoError(t, os.Mkdir(path, 0o700))
			} else {
				require.NoError(t, os.WriteFile(path, []byte(tc.content), tc.mode))
				require.NoError(t, os.Chmod(path, tc.mode))
			}
			key, err := SetupKeyFile{Path: path}.Read()
			require.ErrorIs(t, err, tc.want)
			require.Empty(t, key)
			require.NotContains(t, err.Error(), testKey)
		})
	}

	for _, bad := range []string{"", "  ", "two\nlines", strings.Repeat("k", 2*maxSetupKeyBytes)} {
		err := SetupKeyFile{Path: filepath.Join(t.TempDir(), "key")}.Write(bad)
		require.ErrorIs(t, err, ErrNoSetupKey)
	}
	err := SetupKeyFile{Path: filepath.Join(t.TempDir(), "no", "such", "dir", "key")}.Write(testKey)
	require.Error(t, err)
	require.NotContains(t, err.Error(), testKey)
}
