package pki

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseSealKey(t *testing.T) {
	t.Parallel()
	raw := []byte("0123456789abcdef0123456789abcdef")
	tests := []struct {
		name, in, wantErr string
	}{
		{"standard", base64.StdEncoding.EncodeToString(raw), ""},
		{"unpadded", base64.RawStdEncoding.EncodeToString(raw), ""},
		{"url-safe", base64.URLEncoding.EncodeToString(raw), ""},
		{"surrounding newline", base64.StdEncoding.EncodeToString(raw) + "\n", ""},
		{"too short", base64.StdEncoding.EncodeToString(raw[:16]), "decodes to 16 bytes, want 32"},
		{"too long", base64.StdEncoding.EncodeToString(append(raw, 'x')), "decodes to 33 bytes"},
		{"a passphrase", "correct horse battery staple", "not base64"},
		{"empty", "", "decodes to 0 bytes"},
	}
	for _, tt := range tests {
		got, err := ParseSealKey(tt.in)
		if tt.wantErr != "" {
			require.ErrorContains(t, err, tt.wantErr, tt.name)
			continue
		}
		require.NoError(t, err, tt.name)
		require.Equal(t, raw, got, tt.name)
	}
}

// A sealed CA key opens only with its seal key and for its certificate.
func TestSealOpenKey(t *testing.T) {
	t.Parallel()
	key, err := GenerateKey()
	require.NoError(t, err)
	cert, err := createCACert(key, "test CA", time.Now())
	require.NoError(t, err)
	otherKey, err := GenerateKey()
	require.NoError(t, err)
	otherCert, err := createCACert(otherKey, "other CA", time.Now())
	require.NoError(t, err)
	seal := []byte(strings.Repeat("k", SealKeySize))
	sealed, err := SealKey(seal, cert.Raw, key)
	require.NoError(t, err)
	again, err := SealKey(seal, cert.Raw, key)
	require.NoError(t, err)
	require.NotEqual(t, sealed, again, "a fresh nonce each time")

	opened, err := OpenKey(seal, cert.Raw, sealed)
	require.NoError(t, err)
	require.True(t, publicKeysEqual(cert.PublicKey, opened))

	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name   string
		seal   []byte
		cert   []byte
		sealed []byte
	}{
		{"wrong seal key", []byte(strings.Repeat("x", SealKeySize)), cert.Raw, sealed},
		{"another certificate", seal, otherCert.Raw, sealed},
		{"tampered", seal, cert.Raw, tampered},
		{"truncated", seal, cert.Raw, sealed[:10]},
		{"unknown version", seal, cert.Raw, append([]byte{9}, sealed[1:]...)},
	}
	for _, tt := range tests {
		_, err := OpenKey(tt.seal, tt.cert, tt.sealed)
		require.ErrorIs(t, err, ErrWrongSealKey, tt.name)
	}
	_, err = SealKey(seal[:16], cert.Raw, key)
	require.ErrorContains(t, err, "want 32")
}
