package pki

import (
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// certWithURIs builds a self-signed certificate carrying the given URI SANs;
// IdentityFromCert is a parser and does not care who signed it.
func certWithURIs(t *testing.T, isCA bool, uris ...string) *x509.Certificate {
	t.Helper()
	key := mustKey(t, elliptic.P256())
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  isCA,
		BasicConstraintsValid: true,
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		require.NoError(t, err)
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}

func TestAgentIdentityURI(t *testing.T) {
	t.Parallel()
	id := AgentIdentity{
		TenantID: uuid.MustParse("11111111-1111-4111-8111-111111111111"),
		SiteID:   uuid.MustParse("22222222-2222-4222-8222-222222222222"),
		AgentID:  uuid.MustParse("33333333-3333-4333-8333-333333333333"),
	}
	want := "spiffe://nkudo/tenant/11111111-1111-4111-8111-111111111111/site/22222222-2222-4222-8222-222222222222/agent/33333333-3333-4333-8333-333333333333"
	assert.Equal(t, want, id.URI().String())
	assert.Equal(t, want, id.String())
	got, err := ParseIdentity(want)
	require.NoError(t, err)
	assert.Equal(t, id, got)
	got, err = IdentityFromCert(certWithURIs(t, false, want))
	require.NoError(t, err)
	assert.Equal(t, id, got)
}

func TestIdentityFromCertStrict(t *testing.T) {
	t.Parallel()
	tn, sn, an := uuid.New().String(), uuid.New().String(), uuid.New().String()
	valid := "spiffe://nkudo/tenant/" + tn + "/site/" + sn + "/agent/" + an
	tests := []struct {
		name string
		isCA bool
		uris []string
	}{
		{name: "no URI SAN"},
		{name: "two identities", uris: []string{valid, "spiffe://nkudo/tenant/" + tn + "/site/" + sn + "/agent/" + uuid.New().String()}},
		{name: "identity plus another URI", uris: []string{valid, "https://example.com/"}},
		{name: "CA certificate", isCA: true, uris: []string{valid}},
		{name: "other scheme", uris: []string{strings.Replace(valid, "spiffe://", "https://", 1)}},
		{name: "other trust domain", uris: []string{strings.Replace(valid, "//nkudo/", "//nkudo.evil/", 1)}},
		{name: "port", uris: []string{strings.Replace(valid, "//nkudo/", "//nkudo:1/", 1)}},
		{name: "user info", uris: []string{strings.Replace(valid, "//nkudo/", "//x@nkudo/", 1)}},
		{name: "query", uris: []string{valid + "?x=1"}},
		{name: "fragment", uris: []string{valid + "#x"}},
		{name: "trailing slash", uris: []string{valid + "/"}},
		{name: "extra segment", uris: []string{valid + "/vm/" + uuid.New().String()}},
		{name: "swapped labels", uris: []string{"spiffe://nkudo/site/" + sn + "/tenant/" + tn + "/agent/" + an}},
		{name: "upper-case UUID", uris: []string{strings.Replace(valid, an, strings.ToUpper(an), 1)}},
		{name: "UUID without hyphens", uris: []string{strings.Replace(valid, an, strings.ReplaceAll(an, "-", ""), 1)}},
		{name: "escaped slash", uris: []string{strings.Replace(valid, "/site/", "%2Fsite/", 1)}},
		{name: "nil tenant", uris: []string{strings.Replace(valid, tn, uuid.Nil.String(), 1)}},
		{name: "not a UUID", uris: []string{strings.Replace(valid, sn, "site-one", 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := IdentityFromCert(certWithURIs(t, tt.isCA, tt.uris...))
			require.ErrorIs(t, err, ErrNotAgentCert)
		})
	}
	_, err := IdentityFromCert(nil)
	require.ErrorIs(t, err, ErrNotAgentCert)
}
