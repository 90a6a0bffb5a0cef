// Package nbtest is a stand-in NetBird Management API for tests of code
// that talks to NetBird (netbirdapi, the server's mesh integration). It
// checks every request against shared/specs/netbird-management.yml (found
// through internal/specfile): the route and method exist, the token is
// sent as "Token <pat>", query parameters are declared, and bodies match
// the operation's schema with no undeclared field. Its own answers are
// validated against the response schemas before they are sent. A request
// that breaks the spec fails the test that made it.
package nbtest
