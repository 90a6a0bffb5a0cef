package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kubedoio/n-kudo/internal/backup"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store/postgres"
	"github.com/kubedoio/n-kudo/internal/version"
)

// Backup writes a backup of the server described by cfg to path while it
// runs: with SQLite, a snapshot of the live database and the PKI; with
// PostgreSQL, only the PKI (pkiOnly must be set: the data is pg_dump's
// job). The CA comes from where the server takes it: the CA files, the
// database (opened with NKUDO_PKI_SEAL_KEY), or the data dir.
func Backup(ctx context.Context, cfg Config, path string, pkiOnly bool) (backup.Manifest, error) {
	src := backup.Source{Engine: "sqlite", Version: version.String("nkudo-server"), Now: time.Now(), PKI: map[string][]byte{}}
	if cfg.DatabaseURL != "" {
		src.Engine = "postgres"
		if !pkiOnly {
			return backup.Manifest{}, errors.New("with PostgreSQL, back the database up with pg_dump and the PKI with `nkudo-server backup --pki-only`")
		}
	}
	if !pkiOnly {
		src.SQLitePath = filepath.Join(cfg.DataDir, SQLiteFile)
		if _, err := os.Stat(src.SQLitePath); err != nil {
			return backup.Manifest{}, fmt.Errorf("backing up %s: %w (is --data-dir right?)", src.SQLitePath, err)
		}
	}
	if err := collectPKI(ctx, cfg, src.PKI); err != nil {
		return backup.Manifest{}, err
	}
	return backup.Write(ctx, path, src)
}

// collectPKI reads the CA pair and, when the data dir holds them, the
// server certificate and key.
func collectPKI(ctx context.Context, cfg Config, out map[string][]byte) error {
	dir := filepath.Join(cfg.DataDir, "pki")
	files := map[string]string{
		backup.CACert: filepath.Join(dir, pki.CACertFileName), backup.CAKey: filepath.Join(dir, pki.CAKeyFileName),
		backup.ServerCert: filepath.Join(dir, pki.ServerCertFileName), backup.ServerKey: filepath.Join(dir, pki.ServerKeyFileName),
	}
	if cfg.CACertFile != "" {
		files[backup.CACert], files[backup.CAKey] = cfg.CACertFile, cfg.CAKeyFile
	}
	for name, p := range files {
		data, err := os.ReadFile(p)
		switch {
		case err == nil:
			out[name] = data
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("reading %s: %w", p, err)
		}
	}
	if !cfg.SharedPKI() {
		if out[backup.CAKey] == nil {
			return fmt.Errorf("backing up the PKI: no CA key in %s", files[backup.CAKey])
		}
		return nil
	}
	certPEM, keyPEM, err := sharedCA(ctx, cfg)
	if err != nil {
		return err
	}
	out[backup.CACert], out[backup.CAKey] = certPEM, keyPEM
	return nil
}

// sharedCA reads the CA the replicas share from the database.
func sharedCA(ctx context.Context, cfg Config) (certPEM, keyPEM []byte, err error) {
	sealKey, err := pki.ParseSealKey(cfg.PKISealKey)
	if err != nil {
		return nil, nil, fmt.Errorf("NKUDO_PKI_SEAL_KEY (needed to read the CA the replicas share): %w", err)
	}
	st, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("opening PostgreSQL (NKUDO_DATABASE_URL): %w", err)
	}
	defer st.Close()
	stored, err := caStore{st}.LoadCA(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the shared CA: %w", err)
	}
	return pki.ExportStoredCA(stored, sealKey)
}

// Restore unpacks a backup into cfg's data dir, which must be absent or
// empty. A SQLite server started on it has its state back; a PostgreSQL
// one finds its CA there (the database itself comes back with pg_restore).
func Restore(ctx context.Context, cfg Config, path string) (backup.Manifest, error) {
	if cfg.DataDir == "" {
		return backup.Manifest{}, errors.New("--data-dir is required")
	}
	return backup.Restore(ctx, path, cfg.DataDir)
}
