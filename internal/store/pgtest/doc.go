// Package pgtest hands tests real PostgreSQL databases.
//
// URL gives each test a fresh, empty database that is dropped when the test
// ends. The databases live on the cluster named by NKUDO_TEST_DATABASE_URL
// (used as an admin connection) or, when that is unset, on one throwaway
// cluster per test binary started from the local PostgreSQL binaries.
// StartCluster gives a test a cluster of its own that it can stop and start
// again, to exercise what happens to a running server when the database goes
// away and comes back.
//
// When no cluster can be had the test is skipped with the reason, unless
// NKUDO_REQUIRE_POSTGRES=1, in which case it fails: CI sets that so a broken
// PostgreSQL setup can never turn into a silently green run.
//
// Test binaries that use URL must stop the shared cluster on exit, through
// Main or Wrap in TestMain.
package pgtest
