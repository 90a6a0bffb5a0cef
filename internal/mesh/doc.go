// Package mesh ties the NetBird mesh into the control plane. It sits
// between the store and the NetBird Management API adapter (netbirdapi):
//
//   - when an enrollment token is issued for a NetBird-enabled site it
//     mints a one-use setup key and seals it under a key derived from the
//     token secret (Seal), so the database holds nothing an attacker with
//     a copy of it could join the mesh with, and only the enrolling agent,
//     which presents the token, can have it opened (Open);
//   - a background sweep revokes the setup keys of tokens that expired
//     unused, because NetBird keys live at least a day while tokens live
//     minutes;
//   - it removes the NetBird peer of a revoked agent;
//   - it keeps a cached copy of the account's peer list, refreshed in the
//     background, so host views show the management side of each host
//     without a NetBird call on the request path.
//
// Setup keys are secrets: no log line or error of this package carries one.
package mesh
