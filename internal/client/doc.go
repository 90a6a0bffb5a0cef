// Package client is the typed Go client of the n-kudo JSON API, shared by
// the nkudo CLI, the TUI and anyone scripting against a control plane.
//
// It owns the parts every caller would otherwise get subtly wrong: TLS 1.3
// trusting only the control plane's CA, the admin key's tenant header,
// an Idempotency-Key on every creating POST, cursor pagination (List… for
// one page, All… to follow next_cursor), a single error type (*APIError)
// that errors.Is matches against the package sentinels, and the
// Server-Sent Event streams (execution logs, VM consoles and the live
// event stream) with reconnects that resume where they stopped, reporting
// their health through Config.OnStreamState.
package client
