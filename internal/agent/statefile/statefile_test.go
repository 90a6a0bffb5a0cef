package statefile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/atomicfile"
)

type record struct {
	Name  string            `json:"name"`
	Count int               `json:"count"`
	Tags  map[string]string `json:"tags,omitempty"`
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   record
	}{
		{"zero", record{}},
		{"simple", record{Name: "vm-1", Count: 3}},
		{"nested", record{Name: "x", Tags: map[string]string{"a": "b", "c": ""}}},
		{"unicode", record{Name: "héllo ✓ \u2028"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "state.json")
			require.NoError(t, Write(path, tt.in))
			var out record
			require.NoError(t, Read(path, &out))
			require.Equal(t, tt.in, out)

			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, Mode, fi.Mode().Perm())
			requireNoTemps(t, filepath.Dir(path))
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) string
		write   any // written with Write when non-nil
		wantIs  error
		wantErr string
	}{
		{
			name:   "read missing file wraps ErrNotExist",
			setup:  func(t *testing.T, dir string) string { return filepath.Join(dir, "missing.json") },
			wantIs: os.ErrNotExist,
		},
		{
			name: "read corrupt file",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "c.json")
				require.NoError(t, os.WriteFile(p, []byte(`{"name":`), 0o600))
				return p
			},
			wantIs: ErrCorrupt,
		},
		{
			name: "read wrong shape",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "w.json")
				require.NoError(t, os.WriteFile(p, []byte(`[1,2]`), 0o600))
				return p
			},
			wantIs: ErrCorrupt,
		},
		{
			name:    "write into missing directory",
			setup:   func(t *testing.T, dir string) string { return filepath.Join(dir, "nope", "s.json") },
			write:   record{Name: "x"},
			wantErr: "creating temporary file",
		},
		{
			name:    "write unencodable value leaves nothing",
			setup:   func(t *testing.T, dir string) string { return filepath.Join(dir, "u.json") },
			write:   map[string]any{"ch": make(chan int)},
			wantErr: "encoding state",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := tt.setup(t, dir)
			var err error
			if tt.write != nil {
				err = Write(path, tt.write)
			} else {
				var r record
				err = Read(path, &r)
			}
			require.Error(t, err)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
			}
			requireNoTemps(t, dir)
		})
	}
}

func TestWriteTightensModeOfExistingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "s.json")
	require.NoError(t, os.WriteFile(path, []byte(`{}`), 0o644))
	require.NoError(t, Write(path, record{Name: "a"}))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, Mode, fi.Mode().Perm())
}

// snapshot is self-checking: Sum is the hash of Body, so a reader can tell a
// torn or mixed file from a complete one.
type snapshot struct {
	Writer int    `json:"writer"`
	Seq    int    `json:"seq"`
	Body   string `json:"body"`
	Sum    string `json:"sum"`
}

func newSnapshot(writer, seq int) snapshot {
	// Large enough that a non-atomic write would be observable as a partial
	// file (several pages).
	body := strings.Repeat(fmt.Sprintf("w%d-s%d;", writer, seq), 2000)
	h := sha256.Sum256([]byte(body))
	return snapshot{Writer: writer, Seq: seq, Body: body, Sum: hex.EncodeToString(h[:])}
}

func TestConcurrentWritersNeverExposePartialFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	require.NoError(t, Write(path, newSnapshot(-1, 0)))

	const writers, writes, readers = 4, 40, 4
	done := make(chan struct{})
	var writersWG, readersWG sync.WaitGroup
	errs := make(chan error, writers+readers)

	for w := range writers {
		writersWG.Add(1)
		go func() {
			defer writersWG.Done()
			for s := range writes {
				if err := Write(path, newSnapshot(w, s)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var reads sync.Map
	for r := range readers {
		readersWG.Add(1)
		go func() {
			defer readersWG.Done()
			n := 0
			defer func() { reads.Store(r, n) }()
			for {
				select {
				case <-done:
					return
				default:
				}
				var snap snapshot
				if err := Read(path, &snap); err != nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
				h := sha256.Sum256([]byte(snap.Body))
				if hex.EncodeToString(h[:]) != snap.Sum || snap.Body != newSnapshot(snap.Writer, snap.Seq).Body {
					errs <- fmt.Errorf("reader %d saw a mixed file (writer %d seq %d)", r, snap.Writer, snap.Seq)
					return
				}
				n++
			}
		}()
	}
	writersWG.Wait()
	close(done)
	readersWG.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var final snapshot
	require.NoError(t, Read(path, &final))
	require.Equal(t, writes-1, final.Seq, "the last write of some writer wins")
	requireNoTemps(t, dir)
}

func TestLeftoverTempFromCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	require.NoError(t, Write(path, record{Name: "committed", Count: 1}))

	// A crash after CreateTemp and a partial write, before the rename.
	crashed := filepath.Join(dir, ".state.json"+atomicfile.TempMarker+"123456")
	require.NoError(t, os.WriteFile(crashed, []byte(`{"name":"half-writ`), 0o600))
	// Files that are not ours must survive the cleanup.
	other := filepath.Join(dir, ".other.json"+atomicfile.TempMarker+"1")
	require.NoError(t, os.WriteFile(other, []byte(`x`), 0o600))
	sibling := filepath.Join(dir, "state.json.bak")
	require.NoError(t, os.WriteFile(sibling, []byte(`x`), 0o600))

	var got record
	require.NoError(t, Read(path, &got), "the leftover is ignored")
	require.Equal(t, record{Name: "committed", Count: 1}, got)

	n, err := RemoveStale(path)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.NoFileExists(t, crashed)
	require.FileExists(t, other)
	require.FileExists(t, sibling)

	n, err = RemoveStale(path)
	require.NoError(t, err)
	require.Zero(t, n)

	// Writing after the crash works and replaces the committed content.
	require.NoError(t, Write(path, record{Name: "next", Count: 2}))
	require.NoError(t, Read(path, &got))
	require.Equal(t, record{Name: "next", Count: 2}, got)
}

func TestRemoveStaleMissingDir(t *testing.T) {
	t.Parallel()
	_, err := RemoveStale(filepath.Join(t.TempDir(), "gone", "s.json"))
	require.True(t, errors.Is(err, os.ErrNotExist))
}

func requireNoTemps(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	require.NoError(t, err)
	for _, e := range entries {
		require.NotContains(t, e.Name(), atomicfile.TempMarker, "temporary file left behind")
	}
}

func BenchmarkWrite(b *testing.B) {
	path := filepath.Join(b.TempDir(), "s.json")
	snap := newSnapshot(0, 0)
	for b.Loop() {
		if err := Write(path, snap); err != nil {
			b.Fatal(err)
		}
	}
}
