package pki

import (
	"crypto"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeyFileRoundTrip(t *testing.T) {
	t.Parallel()
	p256, err := GenerateKey()
	require.NoError(t, err)
	assert.Equal(t, elliptic.P256(), p256.Curve)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	tests := []struct {
		name string
		key  crypto.Signer
	}{
		{name: "P-256", key: p256},
		{name: "P-384", key: mustKey(t, elliptic.P384())},
		{name: "Ed25519", key: edKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "agent.key")
			// An existing file is replaced whole, and its mode corrected.
			require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
			require.NoError(t, WriteKeyFile(path, tt.key))
			fi, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), fi.Mode())
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Len(t, entries, 1, "no temporary files left behind")

			data, err := os.ReadFile(path)
			require.NoError(t, err)
			block, _ := pem.Decode(data)
			require.NotNil(t, block)
			assert.Equal(t, "PRIVATE KEY", block.Type, "PKCS#8")

			got, err := LoadKeyFile(path)
			require.NoError(t, err)
			assert.True(t, publicKeysEqual(tt.key.Public(), got))
		})
	}
}

func TestLoadKeyFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certPath := filepath.Join(dir, "cert.pem")
	a, _ := newTestAuthority(t, Options{})
	writeFile(t, certPath, a.CACertPEM())
	garbagePath := filepath.Join(dir, "garbage.key")
	writeFile(t, garbagePath, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	tests := []struct {
		name string
		path string
	}{
		{name: "missing", path: filepath.Join(dir, "missing.key")},
		{name: "certificate instead of key", path: certPath},
		{name: "garbage key", path: garbagePath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadKeyFile(tt.path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.path)
		})
	}
	require.Error(t, WriteKeyFile(filepath.Join(dir, "no-such-dir", "k"), mustKey(t, elliptic.P256())))
}

func TestCreateCSR(t *testing.T) {
	t.Parallel()
	key, err := GenerateKey()
	require.NoError(t, err)
	csrPEM, err := CreateCSR(key, "edge-01")
	require.NoError(t, err)
	csr, err := ValidateCSR(csrPEM)
	require.NoError(t, err)
	assert.Equal(t, "edge-01", csr.Subject.CommonName)
	assert.True(t, publicKeysEqual(csr.PublicKey, key))
	_, err = CreateCSR(nil, "x")
	require.Error(t, err)
}

func TestKeyPairAndCertStore(t *testing.T) {
	t.Parallel()
	a, _ := newTestAuthority(t, Options{})
	key, err := GenerateKey()
	require.NoError(t, err)
	csr, err := CreateCSR(key, "edge")
	require.NoError(t, err)
	certPEM, _, _, err := a.SignAgentCSR(csr, newIdentity(), time.Hour)
	require.NoError(t, err)

	pair, err := KeyPair(certPEM, key)
	require.NoError(t, err)
	require.NotNil(t, pair.Leaf)
	_, err = KeyPair(certPEM, mustKey(t, elliptic.P256()))
	require.ErrorIs(t, err, ErrKeyMismatch)
	_, err = KeyPair([]byte("junk"), key)
	require.ErrorIs(t, err, ErrBadPEM)

	var empty CertStore
	assert.Nil(t, empty.Current())
	got, err := empty.GetClientCertificate(nil)
	require.NoError(t, err)
	assert.Empty(t, got.Certificate, "no certificate: handshake proceeds without one")

	store := NewCertStore(pair)
	got, err = store.GetClientCertificate(nil)
	require.NoError(t, err)
	assert.Equal(t, pair.Certificate, got.Certificate)

	keyPEM, err := marshalPrivateKeyPEM(key)
	require.NoError(t, err)
	otherKeyPEM, err := marshalPrivateKeyPEM(mustKey(t, elliptic.P256()))
	require.NoError(t, err)
	tests := []struct {
		name    string
		cert    []byte
		key     []byte
		ca      []byte
		wantErr error
	}{
		{name: "valid", cert: certPEM, key: keyPEM, ca: a.CACertPEM()},
		{name: "mismatched key", cert: certPEM, key: otherKeyPEM, ca: a.CACertPEM(), wantErr: ErrKeyMismatch},
		{name: "garbage key", cert: certPEM, key: []byte("x"), ca: a.CACertPEM(), wantErr: ErrBadPEM},
		{name: "garbage CA", cert: certPEM, key: keyPEM, ca: []byte("x"), wantErr: ErrBadPEM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ClientTLSConfig(tt.cert, tt.key, tt.ca)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, uint16(0x0304), cfg.MinVersion)
			require.NotNil(t, cfg.RootCAs)
			require.NotNil(t, cfg.GetClientCertificate)
			_, err = pair.Leaf.Verify(x509.VerifyOptions{Roots: cfg.RootCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			assert.NoError(t, err, "RootCAs holds the pinned CA")
		})
	}
}
