// Package hub is the server side of the agent channel: it authenticates
// agents on GET /v1/agent/connect (mutual TLS, one identity per client
// certificate), runs one WebSocket session per agent, and turns the
// agent's messages into store writes.
//
// An idle session costs one goroutine: its reader, started by the HTTP
// handler, which then returns so the handler's stack and net/http's
// per-request state are freed while the hijacked connection lives on. A
// writer goroutine exists only while the session's small bounded outbound
// queue holds frames (each written with a deadline, so a slow agent is
// closed instead of stalling anyone else); pings and the silence check run
// from a per-session timer. Two connections of one agent are ordered by
// accept time: the newer always wins, whatever order their hellos finish
// in. Admission control bounds the handshakes in progress; past it a
// connection is refused with 503 and a jittered Retry-After, so a
// reconnect storm is spread out instead of queueing hellos until agents
// time out. Nothing per message gets a goroutine: heartbeats and log lines from all
// sessions go to two shared batchers owned by Run, which write them with
// one store call per batch, because a per-heartbeat transaction cannot
// reach the thousands of writes per second a large fleet produces.
//
// Plans reach a live agent through DispatchPlan right after the API stores
// them; every non-terminal plan is sent again after each hello, so an agent
// that was offline, or whose queue overflowed, still gets it. Live log
// followers attach with SubscribeLogs and see lines only once they are
// persisted.
//
// Several replicas may share one PostgreSQL database, each with its own
// hub; an agent's session lives on one of them. With Options.Bus set,
// every plan and every revocation is announced (ids only) on the bus, and
// the hub holding the session acts on them: even with a session here,
// since it may be a half-open older one whose agent already reconnected
// elsewhere. After each log flush the hub announces which execution lines
// were stored, and other replicas' hubs re-read them from the store for
// their followers. Everything on the local session keeps its direct path:
// a lone replica pays nothing but one notice per plan and per log flush.
// Lost notices
// (the bus reports gaps) re-send unacknowledged plans, re-check agents
// for revocation and make followers catch up from the store.
//
// Console tails (OpenConsole) are the one exchange the API waits on live:
// the hub sends console_start, relays the agent's console_data chunks to a
// small bounded buffer, and sends console_stop when the reader closes or
// falls behind; a stream ends with its session. A clustered hub relays a
// console whose agent is connected to another replica over the bus
// (consolerelay.go): the holder tails it locally and streams it back in
// numbered notices under NOTIFY's size limit; both ends exchange
// keep-alives, so the death of either replica ends the other's side.
//
// The hub never marks an agent offline when its connection drops: the
// offline sweeper does it from last-seen times, so a quick reconnect racing
// its own disconnect can never leave an online agent recorded offline.
package hub
