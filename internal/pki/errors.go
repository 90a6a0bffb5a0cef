package pki

import "errors"

// Sentinel errors. Callers match them with errors.Is; the wrapped message
// carries the specific reason and, for files, the path.
var (
	// ErrBadCSR: a certificate signing request is malformed, too large, badly
	// signed or carries a key type the control plane does not accept. The API
	// answers 400 and does not consume the enrollment token.
	ErrBadCSR = errors.New("bad certificate signing request")
	// ErrNotAgentCert: a certificate does not carry exactly one well-formed
	// agent identity URI SAN.
	ErrNotAgentCert = errors.New("not an agent certificate")
	// ErrPersistentPKIRequired: Options.RequirePersistent is set but the CA
	// and server certificate/key files were not all given explicitly.
	ErrPersistentPKIRequired = errors.New("persistent PKI required: CA and server certificate and key files must be given explicitly")
	// ErrBadFingerprint: a CA fingerprint string cannot be parsed.
	ErrBadFingerprint = errors.New("bad certificate fingerprint")
	// ErrFingerprintMismatch: a CA certificate does not match the pinned
	// fingerprint.
	ErrFingerprintMismatch = errors.New("certificate fingerprint mismatch")
	// ErrBadPEM: a PEM file or value cannot be decoded into what was expected.
	ErrBadPEM = errors.New("bad PEM data")
	// ErrKeyMismatch: a certificate and a private key do not belong together.
	ErrKeyMismatch = errors.New("certificate and private key do not match")
)
