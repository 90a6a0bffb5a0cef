// Package storetest is the conformance suite of store.Store: one set of
// table-driven tests (Exercise) and benchmarks (Benchmark) that every
// engine runs, so SQLite and PostgreSQL answer every call the same way. It
// relies only on the documented contract in package store.
package storetest
