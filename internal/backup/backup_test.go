package backup_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubedoio/n-kudo/internal/backup"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// live is a data dir with a running store and a PKI, as a server has.
type live struct {
	dir    string
	st     *sqlite.Store
	auth   *pki.Authority
	tenant store.Tenant
}

func newLive(t *testing.T) live {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, backup.DatabaseName))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	auth, err := pki.LoadOrCreate(pki.Options{Dir: filepath.Join(dir, "pki")})
	require.NoError(t, err)
	ten := store.Tenant{ID: store.NewID(), Name: "acme", CreatedAt: time.Now()}
	require.NoError(t, st.CreateTenant(t.Context(), ten))
	return live{dir: dir, st: st, auth: auth, tenant: ten}
}

func (l live) source(t *testing.T, withDB bool) backup.Source {
	t.Helper()
	src := backup.Source{Engine: "sqlite", Version: "test", Now: time.Now(), PKI: map[string][]byte{}}
	for _, name := range []string{backup.CACert, backup.CAKey, backup.ServerCert, backup.ServerKey} {
		raw, err := os.ReadFile(filepath.Join(l.dir, filepath.FromSlash(name)))
		require.NoError(t, err)
		src.PKI[name] = raw
	}
	if withDB {
		src.SQLitePath = l.st.Path()
	}
	return src
}

// A backup of a live store restores into an empty dir with the same
// data and CA, while the store keeps serving.
func TestWriteRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	l := newLive(t)
	archive := filepath.Join(t.TempDir(), "b.tar.gz")
	m, err := backup.Write(t.Context(), archive, l.source(t, true))
	require.NoError(t, err)
	require.Equal(t, l.auth.Fingerprint(), m.CAFingerprint)
	require.Contains(t, m.Files, backup.DatabaseName)
	info, err := os.Stat(archive)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "a backup holds the CA key")
	require.NoError(t, l.st.CreateTenant(t.Context(), store.Tenant{ID: store.NewID(), Name: "later", CreatedAt: time.Now()}))

	_, err = backup.Write(t.Context(), archive, l.source(t, true))
	require.ErrorIs(t, err, os.ErrExist, "an existing backup is never overwritten")

	dst := filepath.Join(t.TempDir(), "restored")
	got, err := backup.Restore(t.Context(), archive, dst)
	require.NoError(t, err)
	require.Equal(t, m.CAFingerprint, got.CAFingerprint)
	st, err := sqlite.Open(t.Context(), filepath.Join(dst, backup.DatabaseName))
	require.NoError(t, err)
	defer st.Close()
	tenants, _, err := st.ListTenants(t.Context(), store.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, tenants, 1, "the snapshot, not what came after")
	require.Equal(t, l.tenant.ID, tenants[0].ID)
	again, err := pki.LoadOrCreate(pki.Options{Dir: filepath.Join(dst, "pki")})
	require.NoError(t, err)
	require.Equal(t, l.auth.Fingerprint(), again.Fingerprint(), "the restored server keeps the fleet's CA")
	key, err := os.Stat(filepath.Join(dst, "pki", "ca.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), key.Mode().Perm())
}

func TestRestoreRefuses(t *testing.T) {
	t.Parallel()
	l := newLive(t)
	good := filepath.Join(t.TempDir(), "b.tar.gz")
	_, err := backup.Write(t.Context(), good, l.source(t, false))
	require.NoError(t, err)
	manifest := func(files ...string) []byte {
		fp := l.auth.Fingerprint()
		raw, err := json.Marshal(backup.Manifest{Format: backup.Format, CAFingerprint: fp, Files: files})
		require.NoError(t, err)
		return raw
	}
	caPEM := l.auth.CACertPEM()
	tests := []struct {
		name    string
		archive func(t *testing.T) string
		prepare func(t *testing.T, dir string)
		want    string
	}{
		{"non-empty data dir", func(*testing.T) string { return good }, func(t *testing.T, dir string) {
			require.NoError(t, os.MkdirAll(dir, 0o700))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "nkudo.db"), []byte("precious"), 0o600))
		}, "not empty"},
		{"path outside the data dir", func(t *testing.T) string {
			return writeTar(t, map[string][]byte{backup.ManifestName: manifest(), "../evil": []byte("x")})
		}, nil, `"../evil" is not part of a backup`},
		{"missing file the manifest lists", func(t *testing.T) string {
			return writeTar(t, map[string][]byte{backup.ManifestName: manifest(backup.CACert, backup.CAKey), backup.CACert: caPEM})
		}, nil, "lacks pki/ca.key"},
		{"unknown format", func(t *testing.T) string {
			return writeTar(t, map[string][]byte{backup.ManifestName: []byte(`{"format":99}`)})
		}, nil, "format 99"},
		{"not an archive", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "x")
			require.NoError(t, os.WriteFile(p, []byte("hello"), 0o600))
			return p
		}, nil, "not a backup archive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := filepath.Join(t.TempDir(), "data")
			if tt.prepare != nil {
				tt.prepare(t, dst)
			}
			before, _ := os.ReadDir(dst)
			_, err := backup.Restore(t.Context(), tt.archive(t), dst)
			require.ErrorContains(t, err, tt.want)
			after, _ := os.ReadDir(dst)
			require.Equal(t, len(before), len(after), "a refused restore leaves the dir as it was")
			require.NoFileExists(t, filepath.Join(filepath.Dir(dst), "evil"))
		})
	}
}

// writeTar writes a gzipped tar with the manifest first.
func writeTar(t *testing.T, files map[string][]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "a.tar.gz")
	f, err := os.Create(p)
	require.NoError(t, err)
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	names := []string{backup.ManifestName}
	for n := range files {
		if n != backup.ManifestName {
			names = append(names, n)
		}
	}
	for _, n := range names {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: n, Mode: 0o600, Size: int64(len(files[n])), Typeflag: tar.TypeReg}))
		_, err := tw.Write(files[n])
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return p
}
