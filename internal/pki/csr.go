package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net/url"
	"time"
)

// MaxCSRSize bounds a CSR in PEM form. An agent's CSR is well under 1 KiB;
// the bound keeps a hostile enrollment request from costing parse time.
const MaxCSRSize = 16 << 10

// ValidCSR is a CSR that passed ValidateCSR; SignAgent takes it, so the
// self-signature (the costly part) is checked once per enrollment.
type ValidCSR struct{ *x509.CertificateRequest }

// ValidateCSR parses a PEM CSR and checks everything SignAgentCSR will:
// size, a single CERTIFICATE REQUEST block, a valid self-signature and an
// accepted key type (ECDSA P-256 or P-384, or Ed25519). The API calls it
// before consuming an enrollment token, so a bad CSR never burns a token.
// Every failure wraps ErrBadCSR with the reason.
func ValidateCSR(csrPEM []byte) (*ValidCSR, error) {
	if len(csrPEM) > MaxCSRSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d byte limit", ErrBadCSR, len(csrPEM), MaxCSRSize)
	}
	// pem.Decode skips text before a block; a CSR has none, so anything
	// there means the input is not what the agent should have sent.
	if !bytes.HasPrefix(bytes.TrimSpace(csrPEM), []byte("-----BEGIN ")) {
		return nil, fmt.Errorf("%w: not PEM encoded", ErrBadCSR)
	}
	block, rest := pem.Decode(csrPEM)
	if block == nil {
		return nil, fmt.Errorf("%w: not PEM encoded", ErrBadCSR)
	}
	if block.Type != pemCSR && block.Type != pemCSRLegacy {
		return nil, fmt.Errorf("%w: PEM block is %q, want %q", ErrBadCSR, block.Type, pemCSR)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the CSR block", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: parsing: %w", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature: %w", ErrBadCSR, err)
	}
	switch pub := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384() {
			return nil, fmt.Errorf("%w: ECDSA curve %s not accepted, want P-256 or P-384", ErrBadCSR, pub.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%w: %s public key not accepted, want ECDSA P-256/P-384 or Ed25519", ErrBadCSR, csr.PublicKeyAlgorithm)
	}
	return &ValidCSR{csr}, nil
}

// SignAgentCSR issues an agent client certificate for the CSR's public key.
// Everything else the CSR asks for (subject, SANs, extensions) is ignored:
// the certificate says only what the control plane decided — CN = agent id,
// the identity URI SAN, client-auth usage. NotBefore is backdated by a
// minute for clock skew; NotAfter is now+ttl (DefaultAgentCertTTL when ttl
// is zero), capped at the CA's own expiry. It returns the certificate PEM,
// its serial number as lowercase hex and its NotAfter.
func (a *Authority) SignAgentCSR(csrPEM []byte, id AgentIdentity, ttl time.Duration) (certPEM []byte, serial string, notAfter time.Time, err error) {
	csr, err := ValidateCSR(csrPEM)
	if err != nil {
		return nil, "", time.Time{}, fmt.Errorf("signing agent CSR for %s: %w", id.AgentID, err)
	}
	return a.SignAgent(csr, id, ttl)
}

// SignAgent is SignAgentCSR for a CSR already validated.
func (a *Authority) SignAgent(csr *ValidCSR, id AgentIdentity, ttl time.Duration) (certPEM []byte, serial string, notAfter time.Time, err error) {
	if csr == nil {
		return nil, "", time.Time{}, fmt.Errorf("signing agent CSR for %s: %w: none given", id.AgentID, ErrBadCSR)
	}
	if err := id.validate(); err != nil {
		return nil, "", time.Time{}, fmt.Errorf("signing agent CSR: %w", err)
	}
	if ttl < 0 {
		return nil, "", time.Time{}, fmt.Errorf("signing agent CSR for %s: negative ttl %s", id.AgentID, ttl)
	}
	if ttl == 0 {
		ttl = DefaultAgentCertTTL
	}
	now := a.now()
	if !now.Before(a.caCert.NotAfter) {
		return nil, "", time.Time{}, fmt.Errorf("signing agent CSR for %s: CA expired at %s", id.AgentID, a.caCert.NotAfter.Format(time.RFC3339))
	}
	notAfter = now.Add(ttl)
	if notAfter.After(a.caCert.NotAfter) {
		notAfter = a.caCert.NotAfter
	}
	sn, err := randomSerial()
	if err != nil {
		return nil, "", time.Time{}, fmt.Errorf("signing agent CSR for %s: %w", id.AgentID, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: id.AgentID.String()},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.caCert, csr.PublicKey, a.caKey)
	if err != nil {
		return nil, "", time.Time{}, fmt.Errorf("signing agent CSR for %s: %w", id.AgentID, err)
	}
	// x509 truncates NotAfter to whole seconds; report what the
	// certificate actually says.
	return encodeCertPEM(der), fmt.Sprintf("%x", sn), notAfter.UTC().Truncate(time.Second), nil
}
