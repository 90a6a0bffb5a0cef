package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kubedoio/n-kudo/internal/atomicfile"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
)

// Format is the archive format version this package writes and reads.
const Format = 1

// Names inside the archive, which are also the paths a restore writes
// under the data dir.
const (
	ManifestName = "nkudo-backup.json"
	// DatabaseName is the SQLite file, as the server names it in its
	// data dir.
	DatabaseName  = "nkudo.db"
	CACert        = "pki/" + pki.CACertFileName
	CAKey         = "pki/" + pki.CAKeyFileName
	ServerCert    = "pki/" + pki.ServerCertFileName
	ServerKey     = "pki/" + pki.ServerKeyFileName
	maxPKIFile    = 1 << 20
	maxManifest   = 1 << 20
	privateMode   = 0o600
	publicMode    = 0o644
	directoryMode = 0o700
)

// allowed maps every name an archive may hold to the mode it is restored
// with; anything else in an archive is refused.
var allowed = map[string]os.FileMode{
	DatabaseName: privateMode,
	CACert:       publicMode,
	CAKey:        privateMode,
	ServerCert:   publicMode,
	ServerKey:    privateMode,
}

// Manifest describes an archive; it is its first entry.
type Manifest struct {
	Format    int       `json:"format"`
	CreatedAt time.Time `json:"created_at"`
	// Version is the nkudo-server that wrote it.
	Version string `json:"version"`
	// Engine is "sqlite" or "postgres".
	Engine string `json:"engine"`
	// PKIOnly archives hold no database (PostgreSQL: use pg_dump).
	PKIOnly       bool     `json:"pki_only"`
	CAFingerprint string   `json:"ca_fingerprint"`
	Files         []string `json:"files"`
}

// Source is what Write puts in an archive.
type Source struct {
	Engine string
	// SQLitePath is the live database to snapshot; empty for a PKI-only
	// archive.
	SQLitePath string
	// PKI maps archive names (CACert, CAKey, ServerCert, ServerKey) to
	// their PEM contents; the CA pair is required.
	PKI     map[string][]byte
	Version string
	Now     time.Time
}

// Write writes an archive of src to path, which must not exist; the file
// appears complete or not at all.
func Write(ctx context.Context, path string, src Source) (Manifest, error) {
	m, err := manifestOf(src)
	if err != nil {
		return m, err
	}
	if _, err := os.Lstat(path); err == nil {
		return m, fmt.Errorf("writing backup %s: %w (choose a new file name)", path, os.ErrExist)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return m, fmt.Errorf("writing backup %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	defer tmp.Close()
	if err := tmp.Chmod(privateMode); err != nil {
		return m, fmt.Errorf("writing backup %s: %w", path, err)
	}
	if err := writeArchive(ctx, tmp, m, src); err != nil {
		return m, fmt.Errorf("writing backup %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return m, fmt.Errorf("writing backup %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return m, fmt.Errorf("writing backup %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return m, fmt.Errorf("writing backup %s: %w", path, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return m, fmt.Errorf("writing backup %s: %w", path, err)
	}
	return m, nil
}

func manifestOf(src Source) (Manifest, error) {
	fp, err := pki.CheckCAPair(src.PKI[CACert], src.PKI[CAKey])
	if err != nil {
		return Manifest{}, fmt.Errorf("backing up the PKI: %w", err)
	}
	m := Manifest{Format: Format, CreatedAt: src.Now.UTC(), Version: src.Version, Engine: src.Engine,
		PKIOnly: src.SQLitePath == "", CAFingerprint: fp}
	for _, name := range []string{CACert, CAKey, ServerCert, ServerKey} {
		if _, ok := src.PKI[name]; ok {
			m.Files = append(m.Files, name)
		}
	}
	if !m.PKIOnly {
		m.Files = append(m.Files, DatabaseName)
	}
	return m, nil
}

// writeArchive streams the manifest, the PKI and the database snapshot.
func writeArchive(ctx context.Context, w io.Writer, m Manifest, src Source) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding manifest: %w", err)
	}
	if err := addBytes(tw, ManifestName, raw, m.CreatedAt); err != nil {
		return err
	}
	for _, name := range m.Files {
		if name == DatabaseName {
			continue
		}
		if err := addBytes(tw, name, src.PKI[name], m.CreatedAt); err != nil {
			return err
		}
	}
	if !m.PKIOnly {
		if err := addSnapshot(ctx, tw, src.SQLitePath, m.CreatedAt); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("closing archive: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("closing archive: %w", err)
	}
	return nil
}

func addBytes(tw *tar.Writer, name string, data []byte, at time.Time) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: int64(allowedMode(name)), Size: int64(len(data)), ModTime: at, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("adding %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("adding %s: %w", name, err)
	}
	return nil
}

// addSnapshot snapshots the live database into a private temporary dir
// and streams the copy into the archive.
func addSnapshot(ctx context.Context, tw *tar.Writer, dbPath string, at time.Time) error {
	tmpDir, err := os.MkdirTemp(filepath.Dir(dbPath), ".backup-")
	if err != nil {
		return fmt.Errorf("snapshotting the database: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmpDir) }()
	snap := filepath.Join(tmpDir, DatabaseName)
	if err := sqlite.Snapshot(ctx, dbPath, snap); err != nil {
		return err
	}
	f, err := os.Open(snap)
	if err != nil {
		return fmt.Errorf("reading the snapshot: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("reading the snapshot: %w", err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: DatabaseName, Mode: privateMode, Size: st.Size(), ModTime: at, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("adding the database: %w", err)
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("adding the database: %w", err)
	}
	return nil
}

func allowedMode(name string) os.FileMode {
	if m, ok := allowed[name]; ok {
		return m
	}
	if name == ManifestName {
		return publicMode
	}
	return privateMode
}

// errNotEmpty: restore refuses a data dir that holds anything.
var errNotEmpty = errors.New("the data dir is not empty")
