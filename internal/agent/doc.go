// Package agent is the nkudo-agent runtime: it keeps one mutual-TLS
// WebSocket session to nkudo-server, runs the plans it receives through the
// executor, and reports host state, results and execution logs.
//
// It follows the split of tailscale's controlclient: a session is a
// one-shot layer (dial, hello, serve until the connection ends; like
// Direct), and Agent.Run is the loop on top that reconnects with capped
// exponential backoff and full jitter and decides when to give up for
// good (like Auto). Everything that must survive a reconnect or a restart
// lives outside the session, in the state directory: the plan queue, the
// idempotency cache and the execution log buffer. A session only sends
// what they hold and records the server's acknowledgements, which is why
// a reconnect replays exactly what was not acknowledged.
//
// The wire rules are those of internal/agentproto; the channel's
// behaviour is specified in the project's channel notes (hello within 10
// s, plan_ack once a plan is persisted, result_ack and log_ack, cert
// renewal at two thirds of the certificate's lifetime, permanent close
// codes).
//
// Console tails are per session too: on console_start the agent sends the
// last 64 KiB of <runtime-dir>/<vm-id>/console.log in one chunk, then
// follows the file, rate-limited, until console_stop or the session ends.
package agent
