// Package data is the console's data-access layer: the Source interface the
// views read from and act through, and the small view models it returns.
//
// The TUI never talks to the HTTP client directly. Keeping this seam narrow
// (lists, a handful of actions, one event subscription and log tails) lets
// every view and golden test run on fixed data, and lets the adapter over
// internal/client own the wire concerns: pagination, SSE resume and
// reconnect backoff.
package data
