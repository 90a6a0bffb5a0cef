package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/kubedoio/n-kudo/internal/atomicfile"
)

// ErrNoStoredCA: a CAStore holds no CA yet.
var ErrNoStoredCA = errors.New("no CA stored")

// StoredCA is the CA as a database keeps it: the certificate in PEM and
// the private key sealed by SealKey.
type StoredCA struct {
	CertPEM   []byte
	SealedKey []byte
}

// CAStore is where replicas sharing one database keep their one CA.
type CAStore interface {
	// LoadCA returns the stored CA, or ErrNoStoredCA.
	LoadCA(ctx context.Context) (StoredCA, error)
	// StoreCAIfAbsent stores ca unless a CA is stored already, and
	// returns the CA stored after the call: ca, or the one another
	// replica stored first. It is atomic: of two racing replicas, both
	// get the same answer.
	StoreCAIfAbsent(ctx context.Context, ca StoredCA) (StoredCA, error)
}

// Shared names the database that replicas share their CA through, and the
// key that seals the CA's private key there.
type Shared struct {
	Store   CAStore
	SealKey []byte
}

// LoadShared is LoadOrCreate for replicas that share one database: unless
// CA files are given (they still win), the CA comes from sh.Store, sealed
// with sh.SealKey. The first replica to start stores one — the CA it
// finds in opts.Dir (a single server moving to shared PKI keeps its
// fleet) or a new one — and every other replica loads it, so none needs
// copied files. The CA certificate is written to opts.Dir for clients;
// the key never is. Each replica's server certificate stays in its own
// opts.Dir, signed by the shared CA and naming its ServerNames.
func LoadShared(ctx context.Context, opts Options, sh Shared) (*Authority, error) {
	if len(sh.SealKey) != SealKeySize {
		return nil, fmt.Errorf("loading shared PKI: seal key is %d bytes, want %d", len(sh.SealKey), SealKeySize)
	}
	return load(opts, func(a *Authority, cn string, log *slog.Logger) error {
		return a.resolveSharedCA(ctx, opts.Dir, sh, cn, log)
	})
}

func (a *Authority) resolveSharedCA(ctx context.Context, dir string, sh Shared, cn string, log *slog.Logger) error {
	local, err := a.localCA(dir)
	if err != nil {
		return err
	}
	stored, err := sh.Store.LoadCA(ctx)
	switch {
	case errors.Is(err, ErrNoStoredCA):
		stored, err = a.storeFirstCA(ctx, sh, local, cn, log)
		if err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("loading the shared CA from the database: %w", err)
	}
	cert, key, err := openStoredCA(stored, sh.SealKey)
	if err != nil {
		return err
	}
	if local != nil && !bytes.Equal(local.cert.Raw, cert.Raw) {
		return fmt.Errorf("loading shared CA: %s holds CA %s but the database holds CA %s; "+
			"agents enrolled with one would be refused by the other: remove the local files, or the database's CA, deliberately",
			dir, FingerprintOf(local.cert), FingerprintOf(cert))
	}
	a.setCA(cert, key)
	if err := writeIfChanged(a.caCertPath, a.caPEM); err != nil {
		return fmt.Errorf("writing CA certificate: %w", err)
	}
	return nil
}

// storeFirstCA stores the local CA, or a new one, unless another replica
// stored one first; it returns what the database holds afterwards.
func (a *Authority) storeFirstCA(ctx context.Context, sh Shared, local *caPair, cn string, log *slog.Logger) (StoredCA, error) {
	pair := local
	if pair == nil {
		key, err := GenerateKey()
		if err != nil {
			return StoredCA{}, fmt.Errorf("generating CA key: %w", err)
		}
		cert, err := createCACert(key, cn, a.now())
		if err != nil {
			return StoredCA{}, err
		}
		pair = &caPair{cert: cert, key: key}
	}
	sealed, err := SealKey(sh.SealKey, pair.cert.Raw, pair.key)
	if err != nil {
		return StoredCA{}, err
	}
	stored, err := sh.Store.StoreCAIfAbsent(ctx, StoredCA{CertPEM: encodeCertPEM(pair.cert.Raw), SealedKey: sealed})
	if err != nil {
		return StoredCA{}, fmt.Errorf("storing the shared CA in the database: %w", err)
	}
	if bytes.Equal(stored.CertPEM, encodeCertPEM(pair.cert.Raw)) {
		how := "generated CA"
		if local != nil {
			how = "moved the data dir's CA into the database"
		}
		log.Info(how+" for every replica", logKeyFingerprint, FingerprintOf(pair.cert), logKeyNotAfter, pair.cert.NotAfter)
	}
	return stored, nil
}

// openStoredCA parses a stored CA and opens its key.
func openStoredCA(stored StoredCA, sealKey []byte) (*x509.Certificate, crypto.Signer, error) {
	certs, err := parseCertificatesPEM(stored.CertPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("loading the shared CA from the database: %w", err)
	}
	key, err := OpenKey(sealKey, certs[0].Raw, stored.SealedKey)
	if err != nil {
		return nil, nil, fmt.Errorf("loading the shared CA %s from the database: %w: NKUDO_PKI_SEAL_KEY must be the value the first replica started with",
			FingerprintOf(certs[0]), err)
	}
	if !publicKeysEqual(certs[0].PublicKey, key) {
		return nil, nil, fmt.Errorf("loading the shared CA from the database: %w", ErrKeyMismatch)
	}
	return certs[0], key, nil
}

// caPair is a CA certificate with its key.
type caPair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// localCA loads the CA pair in dir when both files exist (a server that
// ran before with its CA in the data dir, or a restored backup), nil when
// the key is absent: a certificate alone is only the copy written for
// clients.
func (a *Authority) localCA(dir string) (*caPair, error) {
	certPath, keyPath := filepath.Join(dir, CACertFileName), filepath.Join(dir, CAKeyFileName)
	keyOK, err := fileExists(keyPath)
	if err != nil {
		return nil, fmt.Errorf("checking CA key %s: %w", keyPath, err)
	}
	certOK, err := fileExists(certPath)
	if err != nil {
		return nil, fmt.Errorf("checking CA certificate %s: %w", certPath, err)
	}
	if !keyOK || !certOK {
		return nil, nil
	}
	certs, err := loadCertFile(certPath)
	if err != nil {
		return nil, err
	}
	key, err := loadKeyFile(keyPath)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(certs[0].PublicKey, key) {
		return nil, fmt.Errorf("loading CA: %w: certificate %s, key %s", ErrKeyMismatch, certPath, keyPath)
	}
	return &caPair{cert: certs[0], key: key}, nil
}

// writeIfChanged writes a public file unless it already holds data.
func writeIfChanged(path string, data []byte) error {
	old, err := readBoundedFile(path)
	if err == nil && bytes.Equal(old, data) {
		return nil
	}
	return atomicfile.Write(path, data, certMode)
}

// ExportStoredCA opens a CA stored by LoadShared with the seal key and
// returns its certificate and private key in PEM, for a backup of the PKI
// that does not depend on the seal key.
func ExportStoredCA(stored StoredCA, sealKey []byte) (certPEM, keyPEM []byte, err error) {
	cert, key, err := openStoredCA(stored, sealKey)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = marshalPrivateKeyPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("exporting CA key: %w", err)
	}
	return encodeCertPEM(cert.Raw), keyPEM, nil
}

// CheckCAPair parses a CA certificate and its key (PEM), checks that they
// belong together and that the certificate is a CA, and returns its
// fingerprint.
func CheckCAPair(certPEM, keyPEM []byte) (string, error) {
	certs, err := parseCertificatesPEM(certPEM)
	if err != nil {
		return "", fmt.Errorf("checking CA certificate: %w", err)
	}
	key, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return "", fmt.Errorf("checking CA key: %w", err)
	}
	if !publicKeysEqual(certs[0].PublicKey, key) {
		return "", fmt.Errorf("checking CA: %w", ErrKeyMismatch)
	}
	if !certs[0].IsCA {
		return "", errors.New("checking CA: the certificate is not a CA")
	}
	return FingerprintOf(certs[0]), nil
}
