package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
)

// Restore unpacks the archive at path into dataDir, which must be absent
// or empty, and checks what it wrote: every file the manifest lists, a CA
// pair matching its fingerprint, a sound database. On failure it removes
// what it wrote, leaving dataDir as it found it.
func Restore(ctx context.Context, path, dataDir string) (m Manifest, err error) {
	created, err := prepareEmptyDir(dataDir)
	if err != nil {
		return m, err
	}
	defer func() {
		if err != nil {
			cleanup(dataDir, created)
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		return m, fmt.Errorf("opening backup: %w", err)
	}
	defer f.Close()
	m, err = unpack(f, dataDir)
	if err != nil {
		return m, fmt.Errorf("restoring %s: %w", path, err)
	}
	if err := check(ctx, m, dataDir); err != nil {
		return m, fmt.Errorf("restoring %s: %w", path, err)
	}
	return m, nil
}

// prepareEmptyDir creates dataDir or checks that it is empty, and reports
// whether it created it.
func prepareEmptyDir(dataDir string) (bool, error) {
	entries, err := os.ReadDir(dataDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dataDir, directoryMode); err != nil {
			return false, fmt.Errorf("creating data dir %s: %w", dataDir, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading data dir %s: %w", dataDir, err)
	case len(entries) > 0:
		return false, fmt.Errorf("restoring into %s: %w (it holds %s…); restore into a new or empty directory", dataDir, errNotEmpty, entries[0].Name())
	}
	return false, nil
}

func cleanup(dataDir string, created bool) {
	if created {
		_ = os.RemoveAll(dataDir)
		return
	}
	entries, _ := os.ReadDir(dataDir)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(dataDir, e.Name()))
	}
}

// unpack reads the manifest (the first entry) and writes every other
// entry, refusing names the format does not have.
func unpack(r io.Reader, dataDir string) (Manifest, error) {
	var m Manifest
	gz, err := gzip.NewReader(r)
	if err != nil {
		return m, fmt.Errorf("not a backup archive: %w", err)
	}
	tr := tar.NewReader(gz)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != ManifestName {
		return m, fmt.Errorf("not a backup archive: the first entry must be %s", ManifestName)
	}
	if err := json.NewDecoder(io.LimitReader(tr, maxManifest)).Decode(&m); err != nil {
		return m, fmt.Errorf("reading manifest: %w", err)
	}
	if m.Format != Format {
		return m, fmt.Errorf("backup format %d is not supported (this nkudo-server reads format %d)", m.Format, Format)
	}
	seen := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, fmt.Errorf("reading archive: %w", err)
		}
		mode, ok := allowed[hdr.Name]
		if !ok || hdr.Typeflag != tar.TypeReg || seen[hdr.Name] {
			return m, fmt.Errorf("archive entry %q is not part of a backup", hdr.Name)
		}
		seen[hdr.Name] = true
		if err := extract(tr, hdr, filepath.Join(dataDir, filepath.FromSlash(hdr.Name)), mode); err != nil {
			return m, err
		}
	}
	for _, name := range m.Files {
		if !seen[name] {
			return m, fmt.Errorf("archive lacks %s, which its manifest lists", name)
		}
	}
	return m, nil
}

func extract(tr *tar.Reader, hdr *tar.Header, dst string, mode os.FileMode) error {
	if hdr.Name != DatabaseName && hdr.Size > maxPKIFile {
		return fmt.Errorf("archive entry %s is too large", hdr.Name)
	}
	if err := os.MkdirAll(filepath.Dir(dst), directoryMode); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(dst), err)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if _, err := io.Copy(out, tr); err != nil {
		_ = out.Close()
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	return nil
}

// check verifies the restored files against the manifest.
func check(ctx context.Context, m Manifest, dataDir string) error {
	certPEM, err := os.ReadFile(filepath.Join(dataDir, filepath.FromSlash(CACert)))
	if err != nil {
		return fmt.Errorf("reading restored CA: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dataDir, filepath.FromSlash(CAKey)))
	if err != nil {
		return fmt.Errorf("reading restored CA key: %w", err)
	}
	fp, err := pki.CheckCAPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	if fp != m.CAFingerprint {
		return fmt.Errorf("restored CA %s is not the CA %s the manifest names", fp, m.CAFingerprint)
	}
	if slices.Contains(m.Files, DatabaseName) {
		if err := sqlite.Verify(ctx, filepath.Join(dataDir, DatabaseName)); err != nil {
			return err
		}
	}
	return nil
}
