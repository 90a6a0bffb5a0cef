// Package store defines the persistence contract of nkudo-server: the
// domain types and the Store interface, implemented by store/sqlite (the
// embedded default) and store/postgres, and checked against both engines
// by the conformance suite in store/storetest.
package store
