// Package nbtest is a stand-in NetBird Management API for tests of code
// that talks to NetBird (netbirdapi, the server's mesh integration). It
// checks every request against shared/specs/netbird-management.yml (found
// through internal/specfile): the route and method exist, the token is
// sent as "Token <pat>", query parameters are declared, and bodies match
// the operation's schema with no undeclared field. Its own answers are
// validated against the response schemas before they are sent. A request
// that breaks the spec fails the test that made it.
//
// Where the real management server's code answers differently from the
// document, the stand-in answers as the code does (repository
// netbirdio/netbird, read at v0.77.1 and older tags where it changed):
//
//   - Authentication (management/server/http/middleware/auth_middleware.go,
//     the auth manager's GetPATInfo): a token that is not
//     "nbp_" + 30 characters + a 6-character base62 CRC32 checksum is 401
//     "token invalid"; a well-formed token the store does not know (never
//     issued, deleted, its user removed) is 404 "resource not found" since
//     v0.60.0, because the middleware wraps the store's NotFound and
//     shared/management/http/util/util.go WriteError maps it to 404.
//   - Error bodies are {"message","code"} (util.go); NotFound is always
//     "resource not found", PreconditionFailed "precondition failed",
//     InvalidArgument 422 with its own message, undecodable JSON 400
//     "couldn't parse JSON request" (handlers/setup_keys).
//   - POST /api/setup-keys (handlers/setup_keys/setupkeys_handler.go,
//     management/server/setupkey.go): expires_in has no minimum or maximum
//     (the document says 86400..31536000; the code refuses only negative
//     values, 422 "expiresIn can not be in the past", and takes 0 as "never
//     expires", since v0.31.0); auto_groups naming an unknown group or the
//     All group is 422 "invalid auto groups: group not found: <id>" /
//     "invalid auto groups: can't add 'All' group to the setup key". PUT
//     validates auto_groups the same way and refuses un-revoking.
//   - DELETE /api/groups/{groupId} (management/server/group.go
//     validateDeleteGroup, handlers/groups): a group named in any setup
//     key's auto_groups, revoked or not, is 400 "group has been linked to
//     setup key: <key name>"; All is 422.
//   - DELETE /api/peers/{peerId} (management/server/peer.go
//     validatePeerDelete): a peer used by a network router or ingress port
//     is 412 "precondition failed".
//   - GET /api/peers (management/server/peer.go GetPeers): a token whose
//     user lacks peers:read gets 200 with only its own peers (setup-key
//     peers belong to no user, so usually []), not 403.
package nbtest
