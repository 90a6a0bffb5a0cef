// Package clienttest runs a real nkudo-server in-process for the tests of
// the API client and the nkudo CLI: SQLite in a temp dir, real TLS with
// the server's own CA, a loopback port. Nothing in it is a mock: tests
// exercise the same code paths production requests do.
package clienttest
