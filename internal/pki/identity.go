package pki

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/uuid"
)

// The agent identity URI: spiffe://nkudo/tenant/<t>/site/<s>/agent/<a>.
// SPIFFE's shape is used so the identity reads naturally to anyone who knows
// service-mesh identities; "nkudo" is the trust domain.
const (
	identityScheme      = "spiffe"
	identityTrustDomain = "nkudo"
)

// AgentIdentity is who an agent client certificate speaks for. It is carried
// as the certificate's single URI SAN, so the server learns tenant, site and
// agent from the verified handshake without a database lookup.
type AgentIdentity struct {
	TenantID uuid.UUID
	SiteID   uuid.UUID
	AgentID  uuid.UUID
}

// URI returns the identity as spiffe://nkudo/tenant/<t>/site/<s>/agent/<a>.
func (id AgentIdentity) URI() *url.URL {
	return &url.URL{
		Scheme: identityScheme,
		Host:   identityTrustDomain,
		Path:   "/tenant/" + id.TenantID.String() + "/site/" + id.SiteID.String() + "/agent/" + id.AgentID.String(),
	}
}

// String returns the URI form.
func (id AgentIdentity) String() string {
	return id.URI().String()
}

// validate refuses the nil UUID anywhere: an identity naming "no tenant"
// must never be signed.
func (id AgentIdentity) validate() error {
	switch {
	case id.TenantID == uuid.Nil:
		return fmt.Errorf("%w: nil tenant id", ErrNotAgentCert)
	case id.SiteID == uuid.Nil:
		return fmt.Errorf("%w: nil site id", ErrNotAgentCert)
	case id.AgentID == uuid.Nil:
		return fmt.Errorf("%w: nil agent id", ErrNotAgentCert)
	}
	return nil
}

// IdentityFromCert extracts the agent identity from a (verified) client
// certificate. The certificate must carry exactly one URI SAN and it must be
// an agent identity URI in canonical form; anything else — extra URIs,
// other schemes or trust domains, query strings, non-canonical UUIDs — is
// ErrNotAgentCert, because a lenient parser is where identity confusion
// starts. CA certificates are refused too.
func IdentityFromCert(cert *x509.Certificate) (AgentIdentity, error) {
	if cert == nil {
		return AgentIdentity{}, fmt.Errorf("%w: no certificate", ErrNotAgentCert)
	}
	if cert.IsCA {
		return AgentIdentity{}, fmt.Errorf("%w: certificate is a CA", ErrNotAgentCert)
	}
	if len(cert.URIs) != 1 {
		return AgentIdentity{}, fmt.Errorf("%w: want exactly one URI SAN, got %d", ErrNotAgentCert, len(cert.URIs))
	}
	return parseIdentityURI(cert.URIs[0])
}

// ParseIdentity parses the string form produced by AgentIdentity.String.
func ParseIdentity(s string) (AgentIdentity, error) {
	u, err := url.Parse(s)
	if err != nil {
		return AgentIdentity{}, fmt.Errorf("%w: %w", ErrNotAgentCert, err)
	}
	return parseIdentityURI(u)
}

func parseIdentityURI(u *url.URL) (AgentIdentity, error) {
	bad := func(reason string) (AgentIdentity, error) {
		return AgentIdentity{}, fmt.Errorf("%w: URI %q: %s", ErrNotAgentCert, u.String(), reason)
	}
	switch {
	case u.Scheme != identityScheme:
		return bad("scheme is not " + identityScheme)
	case u.Host != identityTrustDomain:
		return bad("trust domain is not " + identityTrustDomain)
	case u.User != nil, u.Opaque != "", u.RawQuery != "", u.ForceQuery, u.Fragment != "", u.RawFragment != "":
		return bad("unexpected user info, query or fragment")
	case u.RawPath != "":
		return bad("escaped characters in path")
	}
	parts := strings.Split(u.Path, "/")
	// "", "tenant", t, "site", s, "agent", a
	if len(parts) != 7 || parts[0] != "" || parts[1] != "tenant" || parts[3] != "site" || parts[5] != "agent" {
		return bad("path is not /tenant/<id>/site/<id>/agent/<id>")
	}
	var ids [3]uuid.UUID
	for i, seg := range []string{parts[2], parts[4], parts[6]} {
		id, err := uuid.Parse(seg)
		// uuid.Parse also accepts braces, urn: prefixes and upper case;
		// only the canonical form we issue is accepted.
		if err != nil || id.String() != seg {
			return bad("id " + fmt.Sprintf("%q", seg) + " is not a canonical UUID")
		}
		ids[i] = id
	}
	id := AgentIdentity{TenantID: ids[0], SiteID: ids[1], AgentID: ids[2]}
	if err := id.validate(); err != nil {
		return AgentIdentity{}, err
	}
	return id, nil
}
