package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mustKey(t testing.TB, curve elliptic.Curve) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	require.NoError(t, err)
	return k
}

func TestValidateCSR(t *testing.T) {
	t.Parallel()
	p256 := mustKey(t, elliptic.P256())
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)

	good := mustCSR(t, p256, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "agent-a"}})
	// Tampering with the signed subject keeps the CSR parseable but breaks
	// its self-signature.
	block, _ := pem.Decode(good)
	tamperedDER := bytes.Replace(block.Bytes, []byte("agent-a"), []byte("agent-b"), 1)
	require.NotEqual(t, block.Bytes, tamperedDER)
	tampered := pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: tamperedDER})
	legacy := pem.EncodeToMemory(&pem.Block{Type: pemCSRLegacy, Bytes: block.Bytes})

	tests := []struct {
		name    string
		csr     []byte
		wantErr string // "" means valid
	}{
		{name: "ECDSA P-256", csr: good},
		{name: "ECDSA P-384", csr: mustCSR(t, mustKey(t, elliptic.P384()), nil)},
		{name: "Ed25519", csr: mustCSR(t, edKey, nil)},
		{name: "legacy block type", csr: legacy},
		{name: "surrounding whitespace", csr: append(append([]byte("\n\n"), good...), "\n\n"...)},
		{name: "RSA", csr: mustCSR(t, rsaKey, nil), wantErr: "RSA public key not accepted"},
		{name: "ECDSA P-224", csr: mustCSR(t, mustKey(t, elliptic.P224()), nil), wantErr: "curve P-224 not accepted"},
		{name: "ECDSA P-521", csr: mustCSR(t, mustKey(t, elliptic.P521()), nil), wantErr: "curve P-521 not accepted"},
		{name: "bad signature", csr: tampered, wantErr: "signature"},
		{name: "oversized", csr: append(bytes.Clone(good), bytes.Repeat([]byte(" "), MaxCSRSize)...), wantErr: "exceeds"},
		{name: "not PEM", csr: []byte("hello, I am a CSR"), wantErr: "not PEM"},
		{name: "empty", csr: nil, wantErr: "not PEM"},
		{name: "certificate block", csr: pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: block.Bytes}), wantErr: "PEM block is"},
		{name: "garbage DER", csr: pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: []byte("garbage")}), wantErr: "parsing"},
		{name: "leading data", csr: append([]byte("x\n"), good...), wantErr: "not PEM"},
		{name: "trailing data", csr: append(bytes.Clone(good), "extra"...), wantErr: "data after"},
		{name: "two CSRs", csr: append(bytes.Clone(good), good...), wantErr: "data after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			csr, err := ValidateCSR(tt.csr)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NotNil(t, csr)
				return
			}
			require.ErrorIs(t, err, ErrBadCSR)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Nil(t, csr)
		})
	}
}

func TestSignAgentCSRRefusesBadCSR(t *testing.T) {
	t.Parallel()
	a, _ := newTestAuthority(t, Options{})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	for _, csr := range [][]byte{mustCSR(t, rsaKey, nil), []byte("nope"), mustCSR(t, mustKey(t, elliptic.P224()), nil)} {
		certPEM, serial, _, err := a.SignAgentCSR(csr, newIdentity(), time.Hour)
		require.ErrorIs(t, err, ErrBadCSR)
		assert.Nil(t, certPEM)
		assert.Empty(t, serial)
	}
	// SignAgent, the path of a CSR validated earlier, refuses none.
	certPEM, serial, _, err := a.SignAgent(nil, newIdentity(), time.Hour)
	require.ErrorIs(t, err, ErrBadCSR)
	assert.Nil(t, certPEM)
	assert.Empty(t, serial)
}

func TestSignAgentCSRIssuesClientCert(t *testing.T) {
	t.Parallel()
	now := time.Now()
	a, _ := newTestAuthority(t, Options{Now: fixedClock(now)})
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	tests := []struct {
		name string
		key  crypto.Signer
		ttl  time.Duration
	}{
		{name: "P-256, 24h", key: mustKey(t, elliptic.P256()), ttl: 24 * time.Hour},
		{name: "P-384, 1h", key: mustKey(t, elliptic.P384()), ttl: time.Hour},
		{name: "Ed25519, 10m", key: edKey, ttl: 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := newIdentity()
			certPEM, serial, notAfter, err := a.SignAgentCSR(mustCSR(t, tt.key, nil), id, tt.ttl)
			require.NoError(t, err)
			certs, err := parseCertificatesPEM(certPEM)
			require.NoError(t, err)
			require.Len(t, certs, 1)
			cert := certs[0]

			_, err = cert.Verify(x509.VerifyOptions{
				Roots:       a.CAPool(),
				CurrentTime: now,
				KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			})
			require.NoError(t, err)
			_, err = cert.Verify(x509.VerifyOptions{Roots: a.CAPool(), CurrentTime: now.Add(tt.ttl + time.Second), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			assert.Error(t, err, "expired after ttl")
			_, err = cert.Verify(x509.VerifyOptions{Roots: a.CAPool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			assert.Error(t, err, "not usable as a server certificate")

			got, err := IdentityFromCert(cert)
			require.NoError(t, err)
			assert.Equal(t, id, got)
			assert.Equal(t, id.AgentID.String(), cert.Subject.CommonName)
			assert.True(t, publicKeysEqual(cert.PublicKey, tt.key))
			assert.Equal(t, cert.SerialNumber.Text(16), serial)
			assert.Equal(t, strings.ToLower(serial), serial)
			assert.Greater(t, cert.SerialNumber.BitLen(), 64, "serial is random 128-bit")
			assert.Equal(t, now.Add(-time.Minute).Truncate(time.Second).UTC(), cert.NotBefore)
			assert.Equal(t, now.Add(tt.ttl).Truncate(time.Second).UTC(), cert.NotAfter)
			assert.Equal(t, cert.NotAfter, notAfter)
			assert.Equal(t, x509.KeyUsageDigitalSignature, cert.KeyUsage)
			assert.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, cert.ExtKeyUsage)
			assert.False(t, cert.IsCA)
		})
	}
}

func TestSignAgentCSRIgnoresRequestedNames(t *testing.T) {
	t.Parallel()
	a, _ := newTestAuthority(t, Options{})
	victim := newIdentity()
	basicCA, err := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{IsCA: true})
	require.NoError(t, err)
	tmpl := &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "admin", Organization: []string{"evil"}},
		DNSNames:       []string{"localhost", "nkudo.example.com"},
		IPAddresses:    []net.IP{net.ParseIP("127.0.0.1")},
		EmailAddresses: []string{"root@example.com"},
		URIs:           []*url.URL{victim.URI()},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: basicCA},
		},
	}
	id := newIdentity()
	certPEM, _, _, err := a.SignAgentCSR(mustCSR(t, mustKey(t, elliptic.P256()), tmpl), id, time.Hour)
	require.NoError(t, err)
	certs, err := parseCertificatesPEM(certPEM)
	require.NoError(t, err)
	cert := certs[0]
	assert.Empty(t, cert.DNSNames)
	assert.Empty(t, cert.IPAddresses)
	assert.Empty(t, cert.EmailAddresses)
	require.Len(t, cert.URIs, 1)
	assert.Equal(t, id.URI().String(), cert.URIs[0].String())
	assert.Equal(t, pkix.Name{CommonName: id.AgentID.String()}.String(), cert.Subject.String())
	assert.False(t, cert.IsCA)
	got, err := IdentityFromCert(cert)
	require.NoError(t, err)
	assert.Equal(t, id, got)
}

func TestSignAgentCSRLifetime(t *testing.T) {
	t.Parallel()
	a, _ := newTestAuthority(t, Options{})
	caNotAfter := a.CACert().NotAfter
	csr := mustCSR(t, mustKey(t, elliptic.P256()), nil)
	tests := []struct {
		name         string
		now          time.Time
		ttl          time.Duration
		id           AgentIdentity
		wantNotAfter time.Time
		wantErr      error
		wantMsg      string
	}{
		{name: "zero ttl means default", now: caNotAfter.AddDate(-1, 0, 0), ttl: 0, id: newIdentity(), wantNotAfter: caNotAfter.AddDate(-1, 0, 0).Add(DefaultAgentCertTTL)},
		{name: "capped at CA expiry", now: caNotAfter.Add(-time.Hour), ttl: 24 * time.Hour, id: newIdentity(), wantNotAfter: caNotAfter},
		{name: "CA expired", now: caNotAfter.Add(time.Second), ttl: time.Hour, id: newIdentity(), wantMsg: "CA expired"},
		{name: "negative ttl", now: time.Now(), ttl: -time.Hour, id: newIdentity(), wantMsg: "negative ttl"},
		{name: "nil tenant", now: time.Now(), ttl: time.Hour, id: AgentIdentity{SiteID: uuid.New(), AgentID: uuid.New()}, wantErr: ErrNotAgentCert},
		{name: "nil agent", now: time.Now(), ttl: time.Hour, id: AgentIdentity{TenantID: uuid.New(), SiteID: uuid.New()}, wantErr: ErrNotAgentCert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A shallow copy with its own clock; the CA material is shared
			// read-only, as in production.
			b := *a
			b.now = fixedClock(tt.now)
			certPEM, _, notAfter, err := b.SignAgentCSR(csr, tt.id, tt.ttl)
			if tt.wantErr != nil || tt.wantMsg != "" {
				require.Error(t, err)
				if tt.wantErr != nil {
					assert.ErrorIs(t, err, tt.wantErr)
				}
				assert.Contains(t, err.Error(), tt.wantMsg)
				return
			}
			require.NoError(t, err)
			certs, err := parseCertificatesPEM(certPEM)
			require.NoError(t, err)
			assert.Equal(t, tt.wantNotAfter.Truncate(time.Second).UTC(), certs[0].NotAfter)
			assert.Equal(t, certs[0].NotAfter, notAfter)
		})
	}
}

func TestAgentCertFromAnotherCAFailsVerification(t *testing.T) {
	t.Parallel()
	ours, _ := newTestAuthority(t, Options{})
	theirs, _ := newTestAuthority(t, Options{})
	certPEM, _, _, err := theirs.SignAgentCSR(mustCSR(t, mustKey(t, elliptic.P256()), nil), newIdentity(), time.Hour)
	require.NoError(t, err)
	certs, err := parseCertificatesPEM(certPEM)
	require.NoError(t, err)
	_, err = certs[0].Verify(x509.VerifyOptions{Roots: ours.CAPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown)
}

func BenchmarkSignAgentCSR(b *testing.B) {
	a, _ := newTestAuthority(b, Options{})
	csr := mustCSR(b, mustKey(b, elliptic.P256()), nil)
	id := newIdentity()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, _, err := a.SignAgentCSR(csr, id, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Enrollment runs on every core at once; this is the throughput the
	// 500/s target is measured against.
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, _, err := a.SignAgentCSR(csr, id, time.Hour); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkEnrollmentCSR is the CSR work of one enrollment: the API checks
// the CSR before touching the token, then signs. Signing the validated CSR
// skips the second self-signature check SignAgentCSR would make.
func BenchmarkEnrollmentCSR(b *testing.B) {
	a, _ := newTestAuthority(b, Options{})
	csrPEM := mustCSR(b, mustKey(b, elliptic.P256()), nil)
	id := newIdentity()
	for _, bc := range []struct {
		name string
		sign func(*ValidCSR) error
	}{
		{"validate then SignAgentCSR (checks twice)", func(*ValidCSR) error {
			_, _, _, err := a.SignAgentCSR(csrPEM, id, time.Hour)
			return err
		}},
		{"validate then SignAgent (checks once)", func(csr *ValidCSR) error {
			_, _, _, err := a.SignAgent(csr, id, time.Hour)
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				csr, err := ValidateCSR(csrPEM)
				if err != nil {
					b.Fatal(err)
				}
				if err := bc.sign(csr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
