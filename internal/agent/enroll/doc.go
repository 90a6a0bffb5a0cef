// Package enroll is the agent side of POST /v1/enroll: it generates the
// agent's private key on the host (the key never leaves it), sends a CSR
// with the enrollment token, checks what comes back against the CA the
// operator told it to trust, and stores the identity in the state
// directory (internal/agent/identity).
//
// Trust for this first contact comes from the operator: either the server
// CA as a file (--ca-file) or its SHA-256 fingerprint (--ca-fingerprint),
// which nkudo-server prints at start. With a fingerprint the agent has no
// CA to load beforehand, so it accepts the server's chain only if one of
// the presented certificates hashes to the fingerprint and the leaf
// verifies against exactly that certificate: full verification, with a
// pinned anchor instead of a pre-loaded one.
package enroll
