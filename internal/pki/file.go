package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// maxPEMFileSize bounds what we read from a PEM file: a certificate chain or
// a key is a few KiB; anything far larger is not what we were pointed at.
const maxPEMFileSize = 1 << 20

// PEM block types.
const (
	pemCertificate   = "CERTIFICATE"
	pemPrivateKey    = "PRIVATE KEY"
	pemECPrivateKey  = "EC PRIVATE KEY"
	pemRSAPrivateKey = "RSA PRIVATE KEY"
	pemCSR           = "CERTIFICATE REQUEST"
	pemCSRLegacy     = "NEW CERTIFICATE REQUEST"
)

// readBoundedFile reads a whole file, refusing anything larger than
// maxPEMFileSize.
func readBoundedFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPEMFileSize {
		return nil, fmt.Errorf("%w: file larger than %d bytes", ErrBadPEM, maxPEMFileSize)
	}
	return data, nil
}

// fileExists reports whether path exists; errors other than "not found"
// (permissions, I/O) are returned so they are not mistaken for absence,
// which would make us generate a new CA over an unreadable one.
func fileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// parseCertificatesPEM decodes every CERTIFICATE block in data, in order.
// Any other block type, or non-whitespace outside blocks, is an error: a
// mislabelled file should fail loudly rather than be half-used.
func parseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != pemCertificate {
			return nil, fmt.Errorf("%w: unexpected PEM block %q, want %q", ErrBadPEM, block.Type, pemCertificate)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: parsing certificate: %w", ErrBadPEM, err)
		}
		certs = append(certs, cert)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data outside PEM blocks", ErrBadPEM)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no %q PEM block found", ErrBadPEM, pemCertificate)
	}
	return certs, nil
}

// parsePrivateKeyPEM decodes exactly one private key block: PKCS#8 (what we
// write), or SEC 1 EC and PKCS#1 RSA keys, which operator-supplied CA and
// server key files commonly use.
func parsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found", ErrBadPEM)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the private key block", ErrBadPEM)
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case pemPrivateKey:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case pemECPrivateKey:
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case pemRSAPrivateKey:
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: unexpected PEM block %q, want a private key", ErrBadPEM, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: parsing %s: %w", ErrBadPEM, block.Type, err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("%w: unsupported private key type %T", ErrBadPEM, key)
	}
}

// marshalPrivateKeyPEM encodes key as a PKCS#8 PEM block.
func marshalPrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshalling private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

func encodeCertPEM(der ...[]byte) []byte {
	var buf bytes.Buffer
	for _, d := range der {
		_ = pem.Encode(&buf, &pem.Block{Type: pemCertificate, Bytes: d})
	}
	return buf.Bytes()
}

// publicKeysEqual reports whether pub is the public half of key.
func publicKeysEqual(pub crypto.PublicKey, key crypto.Signer) bool {
	eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(key.Public())
}

// loadCertFile reads and parses a PEM certificate file; errors name the file.
func loadCertFile(path string) ([]*x509.Certificate, error) {
	data, err := readBoundedFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificate file %s: %w", path, err)
	}
	certs, err := parseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("loading certificate file %s: %w", path, err)
	}
	return certs, nil
}

// loadKeyFile reads and parses a PEM private key file; errors name the file.
func loadKeyFile(path string) (crypto.Signer, error) {
	data, err := readBoundedFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file %s: %w", path, err)
	}
	key, err := parsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("loading key file %s: %w", path, err)
	}
	return key, nil
}
