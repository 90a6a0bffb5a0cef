// Package agentproto holds the wire protocol of the agent channel: the
// versioned JSON messages that nkudo-server and nkudo-agent exchange over the
// mutual-TLS WebSocket at GET /v1/agent/connect (subprotocol
// "nkudo.agent.v1").
//
// It is the only package, besides internal/pki, that the server and the
// agent share, so it holds no behaviour beyond encoding, decoding and
// validating messages: sessions, queues and retries live on either side.
//
// Every WebSocket text message is one JSON envelope:
//
//	{"type":"heartbeat","id":"…","seq":12,"ack":7,"data":{…}}
//
// Type names the message; Data holds its body. ID correlates a reply with a
// request when the sender wants one. Seq numbers the sender's reliable
// messages within one session (1, 2, 3, …; 0 for unsequenced ones) and Ack
// carries the highest peer Seq the sender has processed, so either side can
// piggyback acknowledgements on its own traffic. Durable acknowledgements
// that must survive a reconnect (a plan held, a result or a log line
// stored) are explicit messages (plan_ack, result_ack, log_ack) keyed by
// plan, action and execution ids, because Seq restarts with every session.
//
// Decoding is strict at the envelope level (unknown envelope fields are
// refused) and tolerant inside Data (unknown fields are ignored, so a newer
// peer can add fields without a capability bump), and every decoded message
// is checked with its Validate method before a caller sees it. Errors wrap
// one of ErrTooLarge, ErrMalformed, ErrUnknownType or ErrInvalid so a
// receiver can close the channel with a precise status (see CloseFor).
//
// Durations on the wire are integer milliseconds in fields whose name ends
// in _ms; times are RFC 3339 strings with nanoseconds; ids are UUIDs in
// their canonical string form; byte strings (console data) are base64.
package agentproto
