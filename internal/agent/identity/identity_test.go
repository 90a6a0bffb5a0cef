package identity

import (
	"crypto"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/pki"
)

func sign(t *testing.T, auth *pki.Authority, id pki.AgentIdentity) (crypto.Signer, []byte) {
	t.Helper()
	key, err := pki.GenerateKey()
	require.NoError(t, err)
	csr, err := pki.CreateCSR(key, "h")
	require.NoError(t, err)
	certPEM, _, _, err := auth.SignAgentCSR(csr, id, time.Hour)
	require.NoError(t, err)
	return key, certPEM
}

func TestSaveLoadRenew(t *testing.T) {
	t.Parallel()
	auth, err := pki.LoadOrCreate(pki.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	id := pki.AgentIdentity{TenantID: uuid.New(), SiteID: uuid.New(), AgentID: uuid.New()}
	info := Info{AgentID: id.AgentID, HostID: uuid.New(), SiteID: id.SiteID, TenantID: id.TenantID, Server: "https://127.0.0.1:1"}

	tests := []struct {
		name string
		// crash leaves the directory as an interrupted renewal would.
		crash func(t *testing.T, dir string, key crypto.Signer, certPEM []byte)
	}{
		{"renewal completed", func(t *testing.T, dir string, key crypto.Signer, certPEM []byte) {
			_, err := SaveRenewed(dir, key, certPEM)
			require.NoError(t, err)
		}},
		{"crash after the certificate was written", func(t *testing.T, dir string, key crypto.Signer, certPEM []byte) {
			require.NoError(t, pki.WriteKeyFile(filepath.Join(dir, nextKeyFile), key))
			require.NoError(t, os.WriteFile(filepath.Join(dir, CertFile), certPEM, 0o600))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			key, certPEM := sign(t, auth, id)
			require.NoError(t, Save(dir, info, key, certPEM, auth.CACertPEM(), false))
			require.ErrorIs(t, Save(dir, info, key, certPEM, auth.CACertPEM(), false), ErrExists)

			newKey, newCert := sign(t, auth, id)
			tt.crash(t, dir, newKey, newCert)
			got, err := Load(dir)
			require.NoError(t, err)
			assert.Equal(t, info.AgentID, got.Info.AgentID)
			want, err := pki.KeyPair(newCert, newKey)
			require.NoError(t, err)
			assert.True(t, want.Leaf.Equal(got.Cert.Leaf), "the renewed certificate is in use")
			require.NoError(t, VerifyClientCert(got.Cert, got.CAPEM))
			_, err = os.Stat(filepath.Join(dir, nextKeyFile))
			assert.ErrorIs(t, err, os.ErrNotExist, "the renewal was completed")
		})
	}
}

func TestLoadNotEnrolled(t *testing.T) {
	t.Parallel()
	_, err := Load(t.TempDir())
	require.ErrorIs(t, err, ErrNotEnrolled)
}
