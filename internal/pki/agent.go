package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"

	"github.com/kubedoio/n-kudo/internal/atomicfile"
)

// WriteKeyFile stores key at path as a PKCS#8 PEM file with mode 0600,
// atomically, so a crash never leaves a truncated key behind. The parent
// directory must exist.
func WriteKeyFile(path string, key crypto.Signer) error {
	if key == nil {
		return fmt.Errorf("writing key file %s: nil key", path)
	}
	data, err := marshalPrivateKeyPEM(key)
	if err != nil {
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	if err := atomicfile.Write(path, data, keyMode); err != nil {
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	return nil
}

// LoadKeyFile reads a PEM private key (PKCS#8, SEC 1 EC or PKCS#1 RSA).
func LoadKeyFile(path string) (crypto.Signer, error) {
	return loadKeyFile(filepath.Clean(path))
}

// CreateCSR returns a PEM CSR for key. The server ignores everything in it
// but the public key and the proof of possession; commonName only helps a
// human reading it (the agent passes its host name).
func CreateCSR(key crypto.Signer, commonName string) ([]byte, error) {
	if key == nil {
		return nil, errors.New("creating CSR: nil key")
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("creating CSR: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: der}), nil
}

// KeyPair combines a PEM certificate chain (leaf first, as SignAgentCSR
// returns it) with the private key held in memory, checking they match.
func KeyPair(certPEM []byte, key crypto.Signer) (tls.Certificate, error) {
	if key == nil {
		return tls.Certificate{}, errors.New("building key pair: nil key")
	}
	certs, err := parseCertificatesPEM(certPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("building key pair: %w", err)
	}
	if !publicKeysEqual(certs[0].PublicKey, key) {
		return tls.Certificate{}, fmt.Errorf("building key pair: %w", ErrKeyMismatch)
	}
	out := tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, c := range certs {
		out.Certificate = append(out.Certificate, c.Raw)
	}
	return out, nil
}

// CertStore holds the agent's current client certificate. A tls.Config
// built by ClientTLSConfig asks it for the certificate at every handshake,
// so a certificate renewed over the live channel is used by the next
// connection without rebuilding the configuration or restarting. Safe for
// concurrent use.
type CertStore struct {
	cur atomic.Pointer[tls.Certificate]
}

// NewCertStore returns a store holding cert.
func NewCertStore(cert tls.Certificate) *CertStore {
	s := &CertStore{}
	s.Set(cert)
	return s
}

// Set replaces the current certificate.
func (s *CertStore) Set(cert tls.Certificate) {
	c := cert
	s.cur.Store(&c)
}

// Current returns the current certificate, or nil if none was set.
func (s *CertStore) Current() *tls.Certificate {
	return s.cur.Load()
}

// GetClientCertificate implements tls.Config.GetClientCertificate. With no
// certificate set it returns an empty one, which makes the handshake
// proceed without a client certificate (and the agent channel refuse it)
// rather than fail in an unexplained way.
func (s *CertStore) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := s.cur.Load(); c != nil {
		return c, nil
	}
	return &tls.Certificate{}, nil
}

// ClientTLSConfig returns a TLS 1.3 client configuration that trusts only
// the CA in caPEM (the one pinned at enrollment, never the system roots)
// and presents the store's current certificate.
func (s *CertStore) ClientTLSConfig(caPEM []byte) (*tls.Config, error) {
	certs, err := parseCertificatesPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("building client TLS config: CA: %w", err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		RootCAs:              pool,
		GetClientCertificate: s.GetClientCertificate,
		NextProtos:           []string{"http/1.1"},
	}, nil
}

// ClientTLSConfig builds a client configuration from PEM certificate, key
// and CA. For renewal without a restart, use a CertStore and its
// ClientTLSConfig instead.
func ClientTLSConfig(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	key, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("building client TLS config: key: %w", err)
	}
	cert, err := KeyPair(certPEM, key)
	if err != nil {
		return nil, fmt.Errorf("building client TLS config: %w", err)
	}
	return NewCertStore(cert).ClientTLSConfig(caPEM)
}
