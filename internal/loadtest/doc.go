// Package loadtest holds the load harness behind nkudo-load: a fleet of
// simulated agents that speak the agent channel (internal/agentproto) over
// real mutual-TLS WebSockets, and the scenarios that measure a running
// nkudo-server against the targets of the spec's "What it must sustain"
// section: enrollment rate, memory per session, heartbeats persisted per
// second, plan dispatch latency, log ingestion and recovery after a server
// restart.
//
// The simulated agents are deliberately thin (one goroutine each, heartbeats
// sent by a few shared pacers from hand-assembled frames) so that the
// harness can share one small machine with the server it measures; the
// numbers they produce are about the server, not about the harness.
//
// Every loop is bounded in count and time, every address is loopback and
// Run stops by itself after the configured duration.
package loadtest
