package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fixedClock returns a Now func that always answers t.
func fixedClock(t time.Time) func() time.Time {
	return func() time.Time { return t }
}

// newTestAuthority creates an authority in a fresh temporary PKI dir.
func newTestAuthority(t testing.TB, opts Options) (*Authority, string) {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = filepath.Join(t.TempDir(), "pki")
	}
	a, err := LoadOrCreate(opts)
	require.NoError(t, err)
	return a, opts.Dir
}

func readCertFile(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	certs, err := loadCertFile(path)
	require.NoError(t, err)
	return certs[0]
}

func newIdentity() AgentIdentity {
	return AgentIdentity{TenantID: uuid.New(), SiteID: uuid.New(), AgentID: uuid.New()}
}

func mustCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: der})
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, data, 0o600))
}
