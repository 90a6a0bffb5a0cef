// Package pki holds the control plane's certificate authority and the
// helpers both sides of the agent channel need to use it.
//
// The server side is an Authority: a CA that persists in the data dir (or in
// operator-supplied files) so that a restart never orphans enrolled agents,
// the HTTPS server certificate it signs, and the signing of agent CSRs into
// short-lived client certificates whose single URI SAN names the agent's
// tenant, site and agent ids (see AgentIdentity).
//
// The agent side never lets its private key leave the host: it generates a
// key (GenerateKey), stores it (WriteKeyFile), sends a CSR (CreateCSR) with
// its enrollment token, pins the CA it was given (VerifyFingerprint) and then
// dials with ClientTLSConfig. A CertStore lets a renewed certificate be swapped
// in on a live config, so renewal needs no restart.
//
// Only the standard library's crypto is used.
package pki
