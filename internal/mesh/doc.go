// Package mesh ties the NetBird mesh into the control plane. It sits
// between the store and the NetBird Management API adapter (netbirdapi):
//
//   - when an enrollment token is issued for a NetBird-enabled site it
//     mints a one-use setup key and seals it under a key derived from the
//     token secret (Seal), so the database holds nothing an attacker with
//     a copy of it could join the mesh with, and only the enrolling agent,
//     which presents the token, can have it opened (Open);
//   - each key expires with its token plus JoinGrace, and a background
//     sweep deletes the keys of tokens that are done with (expired, or
//     used and past the grace), so keys do not pile up in NetBird and the
//     site's groups stay deletable;
//   - it removes the NetBird peer of a revoked agent;
//   - it keeps a cached copy of the account's peer list, refreshed in the
//     background, so host views show the management side of each host
//     without a NetBird call on the request path.
//
// Since NetBird v0.60.0 an unknown or deleted API token is answered 404
// like a missing object, so no 404 is taken as "gone" before the token is
// proven to work; the token's state (Credential) feeds /readyz, the
// nkudo_netbird_api_token_ok gauge and each site's NetBird state
// (SiteState), which also tells when the token cannot see the site's
// peers.
//
// Setup keys are secrets: no log line or error of this package carries one.
package mesh
