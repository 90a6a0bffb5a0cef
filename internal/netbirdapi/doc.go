// Package netbirdapi is the server's adapter for the NetBird Management
// REST API (shared/specs/netbird-management.yml): it mints and revokes the
// setup keys that let an enrolling edge host join a site's NetBird mesh,
// lists peers and deletes the peer of a decommissioned agent.
//
// Client speaks the API with a personal access token ("Authorization:
// Token <pat>"), retries 5xx and 429 answers with capped exponential
// backoff and jitter (honouring Retry-After), and turns 4xx answers into
// typed errors carrying NetBird's message. Setup ties the calls together
// the way enrollment and revocation need them.
//
// The token and plaintext setup keys are secrets: they never appear in a
// log line or an error of this package.
package netbirdapi
