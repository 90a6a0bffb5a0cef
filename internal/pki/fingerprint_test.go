package pki

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFingerprint(t *testing.T) {
	t.Parallel()
	const fp = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	want, err := hex.DecodeString(fp)
	require.NoError(t, err)
	colons := func(s string) string {
		var parts []string
		for i := 0; i < len(s); i += 2 {
			parts = append(parts, s[i:i+2])
		}
		return strings.Join(parts, ":")
	}
	tests := []struct {
		name  string
		in    string
		valid bool
	}{
		{name: "lower case", in: fp, valid: true},
		{name: "upper case", in: strings.ToUpper(fp), valid: true},
		{name: "colon separated", in: colons(fp), valid: true},
		{name: "upper case colon separated", in: colons(strings.ToUpper(fp)), valid: true},
		{name: "sha256 prefix", in: "sha256:" + fp, valid: true},
		{name: "SHA256 prefix with colons", in: "SHA256:" + colons(strings.ToUpper(fp)), valid: true},
		{name: "surrounding space", in: "  " + fp + "\n", valid: true},
		{name: "empty"},
		{name: "prefix only", in: "sha256:"},
		{name: "too short", in: fp[:62]},
		{name: "too long", in: fp + "00"},
		{name: "not hex", in: strings.Replace(fp, "0", "g", 1)},
		{name: "odd colon grouping", in: "0:" + fp[1:]},
		{name: "trailing colon", in: colons(fp) + ":"},
		{name: "other algorithm", in: "sha1:" + fp},
		{name: "SHA-1 length", in: fp[:40]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseFingerprint(tt.in)
			if !tt.valid {
				require.ErrorIs(t, err, ErrBadFingerprint)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
}

func TestVerifyFingerprint(t *testing.T) {
	t.Parallel()
	a, dir := newTestAuthority(t, Options{})
	other, _ := newTestAuthority(t, Options{})
	assert.Equal(t, a.Fingerprint(), FingerprintOf(a.CACert()))
	serverPEM, err := os.ReadFile(filepath.Join(dir, ServerCertFileName))
	require.NoError(t, err)
	serverFP := FingerprintOf(a.ServerCertificate().Leaf)

	tests := []struct {
		name    string
		caPEM   []byte
		want    string
		wantErr error
	}{
		{name: "match", caPEM: a.CACertPEM(), want: a.Fingerprint()},
		{name: "match upper case with prefix", caPEM: a.CACertPEM(), want: "SHA256:" + strings.ToUpper(a.Fingerprint())},
		{name: "other CA", caPEM: other.CACertPEM(), want: a.Fingerprint(), wantErr: ErrFingerprintMismatch},
		{name: "bad fingerprint", caPEM: a.CACertPEM(), want: "abc", wantErr: ErrBadFingerprint},
		{name: "garbage PEM", caPEM: []byte("garbage"), want: a.Fingerprint(), wantErr: ErrBadPEM},
		{name: "bundle of two", caPEM: append(a.CACertPEM(), other.CACertPEM()...), want: a.Fingerprint(), wantErr: ErrBadPEM},
		{name: "matching but not a CA", caPEM: serverPEM, want: serverFP, wantErr: ErrBadPEM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := VerifyFingerprint(tt.caPEM, tt.want)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
		})
	}
}
