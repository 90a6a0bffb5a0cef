package pki

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
)

// fingerprintPrefix is the optional algorithm label operators may paste in
// front of a fingerprint ("sha256:ab12…").
const fingerprintPrefix = "sha256:"

// FingerprintOf returns the SHA-256 of the certificate's DER encoding as 64
// lowercase hex characters: the form nkudo-server prints and
// `nkudo-agent enroll --ca-fingerprint` accepts.
func FingerprintOf(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// ParseFingerprint decodes a SHA-256 fingerprint written as 64 hex digits in
// either case, optionally colon-separated in byte pairs (the openssl form)
// and optionally prefixed with "sha256:". It returns the 32 raw bytes.
func ParseFingerprint(s string) ([]byte, error) {
	orig := s
	s = strings.TrimSpace(s)
	if len(s) >= len(fingerprintPrefix) && strings.EqualFold(s[:len(fingerprintPrefix)], fingerprintPrefix) {
		s = s[len(fingerprintPrefix):]
	}
	if strings.Contains(s, ":") {
		parts := strings.Split(s, ":")
		for _, p := range parts {
			if len(p) != 2 {
				return nil, fmt.Errorf("%w: %q: colon-separated form needs two hex digits per byte", ErrBadFingerprint, orig)
			}
		}
		s = strings.Join(parts, "")
	}
	if len(s) != 2*sha256.Size {
		return nil, fmt.Errorf("%w: %q: want %d hex digits, got %d", ErrBadFingerprint, orig, 2*sha256.Size, len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrBadFingerprint, orig, err)
	}
	return b, nil
}

// VerifyFingerprint checks that caPEM holds exactly one CA certificate whose
// SHA-256 fingerprint is want. An agent given --ca-fingerprint calls it on
// the CA the server presents before trusting anything that server says; a
// bundle of several certificates is refused because every one of them would
// become a trust anchor while only one was pinned.
func VerifyFingerprint(caPEM []byte, want string) error {
	wantSum, err := ParseFingerprint(want)
	if err != nil {
		return fmt.Errorf("verifying CA fingerprint: %w", err)
	}
	certs, err := parseCertificatesPEM(caPEM)
	if err != nil {
		return fmt.Errorf("verifying CA fingerprint: %w", err)
	}
	if len(certs) != 1 {
		return fmt.Errorf("verifying CA fingerprint: %w: want exactly one CA certificate, got %d", ErrBadPEM, len(certs))
	}
	got := sha256.Sum256(certs[0].Raw)
	if subtle.ConstantTimeCompare(got[:], wantSum) != 1 {
		return fmt.Errorf("verifying CA fingerprint: %w: got %s, want %s", ErrFingerprintMismatch, hex.EncodeToString(got[:]), hex.EncodeToString(wantSum))
	}
	if !certs[0].IsCA {
		return fmt.Errorf("verifying CA fingerprint: %w: certificate %q is not a CA", ErrBadPEM, certs[0].Subject.CommonName)
	}
	return nil
}
