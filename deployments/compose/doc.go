// Package compose holds no code: its test loads compose.yaml (PostgreSQL
// and two nkudo-server replicas sharing it) with the Compose loader that
// `docker compose` itself uses, so a file that Compose would refuse, or
// that lost a replica's database or secrets, fails `go test`.
package compose
