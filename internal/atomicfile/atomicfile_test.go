package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		existing []byte      // content already at the path; nil for none
		existMod fs.FileMode // mode of the existing file
		data     []byte
		mode     fs.FileMode
	}{
		{name: "new private file", data: []byte("key"), mode: 0o600},
		{name: "new public file", data: []byte("cert"), mode: 0o644},
		{name: "empty data", data: []byte{}, mode: 0o600},
		{name: "replaces content", existing: []byte("old old old old"), existMod: 0o600, data: []byte("new"), mode: 0o600},
		{name: "tightens mode", existing: []byte("{}"), existMod: 0o644, data: []byte("{}"), mode: 0o600},
		{name: "loosens mode", existing: []byte("c"), existMod: 0o600, data: []byte("c"), mode: 0o644},
		{name: "drops non-permission bits", data: []byte("x"), mode: fs.ModeSetuid | 0o640},
		{name: "large", data: []byte(strings.Repeat("0123456789abcdef", 64<<10)), mode: 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if tc.existing != nil {
				require.NoError(t, os.WriteFile(path, tc.existing, tc.existMod))
				require.NoError(t, os.Chmod(path, tc.existMod))
			}
			require.NoError(t, Write(path, tc.data, tc.mode))
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, tc.data, got)
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, tc.mode.Perm(), fi.Mode().Perm())
			require.Zero(t, fi.Mode()&fs.ModeSetuid)
			requireNoTemps(t, dir)
		})
	}
}

func TestWriteFailuresLeaveNothingBehind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, dir string) string // returns the path to write
		wantErr string
		wantIs  error
	}{
		{
			name:    "missing directory",
			setup:   func(_ *testing.T, dir string) string { return filepath.Join(dir, "nope", "f") },
			wantErr: "creating temporary file",
			wantIs:  fs.ErrNotExist,
		},
		{
			name: "target is a directory",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "d")
				require.NoError(t, os.MkdirAll(filepath.Join(p, "child"), 0o700))
				return p
			},
			wantErr: "renaming",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			err := Write(tc.setup(t, dir), []byte("data"), 0o600)
			require.ErrorContains(t, err, tc.wantErr)
			if tc.wantIs != nil {
				require.ErrorIs(t, err, tc.wantIs)
			}
			requireNoTemps(t, dir)
		})
	}
}

func TestCrashLeftovers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		leftovers   []string // temporary files a crashed Write left
		foreign     []string // files that are not leftovers of "state.json"
		wantRemoved int
	}{
		{name: "none", foreign: []string{"state.json.bak"}},
		{name: "one partial write", leftovers: []string{".state.json" + TempMarker + "123456"}, wantRemoved: 1},
		{
			name:        "several crashes",
			leftovers:   []string{".state.json" + TempMarker + "1", ".state.json" + TempMarker + "2", ".state.json" + TempMarker + "3"},
			wantRemoved: 3,
		},
		{
			name:        "other targets' leftovers survive",
			leftovers:   []string{".state.json" + TempMarker + "9"},
			foreign:     []string{".other.json" + TempMarker + "1", ".state.json.bak" + TempMarker + "1", "state.json.bak", ".state.json"},
			wantRemoved: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "state.json")
			require.NoError(t, Write(path, []byte("committed"), 0o600))
			for _, name := range slices.Concat(tc.leftovers, tc.foreign) {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(`{"half-writ`), 0o600))
			}

			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, "committed", string(got), "a leftover never shadows the target")

			n, err := RemoveStale(path)
			require.NoError(t, err)
			require.Equal(t, tc.wantRemoved, n)
			for _, name := range tc.leftovers {
				require.NoFileExists(t, filepath.Join(dir, name))
			}
			for _, name := range tc.foreign {
				require.FileExists(t, filepath.Join(dir, name))
			}
			n, err = RemoveStale(path)
			require.NoError(t, err)
			require.Zero(t, n, "a second sweep finds nothing")

			require.NoError(t, Write(path, []byte("next"), 0o600), "writing after a crash")
			got, err = os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, "next", string(got))
		})
	}
}

func TestRemoveStaleMissingDir(t *testing.T) {
	t.Parallel()
	_, err := RemoveStale(filepath.Join(t.TempDir(), "gone", "s.json"))
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestSyncDir(t *testing.T) {
	t.Parallel()
	require.NoError(t, SyncDir(t.TempDir()))
	require.ErrorIs(t, SyncDir(filepath.Join(t.TempDir(), "gone")), fs.ErrNotExist)
}

func TestRelativePathWritesBesideTarget(t *testing.T) {
	// Changes the working directory: not parallel.
	dir := t.TempDir()
	t.Chdir(dir)
	require.NoError(t, Write("rel", []byte("x"), 0o600))
	got, err := os.ReadFile(filepath.Join(dir, "rel"))
	require.NoError(t, err)
	require.Equal(t, "x", string(got))
	requireNoTemps(t, dir)
}

func requireNoTemps(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NotContains(t, e.Name(), TempMarker, "temporary file left behind")
	}
}

func BenchmarkWrite(b *testing.B) {
	path := filepath.Join(b.TempDir(), "f")
	data := []byte(strings.Repeat("x", 4096))
	for b.Loop() {
		if err := Write(path, data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
}
