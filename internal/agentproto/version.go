package agentproto

// Subprotocol is the WebSocket subprotocol of the agent channel. A change
// that old peers cannot parse at all gets a new subprotocol; everything else
// is a CapabilityVersion bump.
const Subprotocol = "nkudo.agent.v1"

// CapabilityVersion is the protocol capability this build speaks. The agent
// sends it in hello; the server refuses agents below MinCapabilityVersion
// with CloseCapabilityTooOld. Bump it, with a dated line below, whenever a
// peer needs to know whether the other side understands something new.
//
// History:
//
//	1: 2026-11-27: initial protocol: hello, heartbeat, plans, results, logs, cert renewal, console tail
//	2: 2026-11-28: console_data snapshot_done marker (CapabilityConsoleSnapshotDone)
const CapabilityVersion = 2

// CapabilityConsoleSnapshotDone is the first capability whose server
// accepts console_data's snapshot_done marker; an agent sends it only to
// such a server (an older one refuses a chunk without data).
const CapabilityConsoleSnapshotDone = 2

// MinCapabilityVersion is the oldest agent capability the server accepts.
const MinCapabilityVersion = 1

// Limits of the protocol. The server repeats the ones a sender must respect
// in hello_ack (Limits), so they can be lowered per deployment without a
// new agent build; these are the defaults and the hard upper bounds.
const (
	// MaxFrameBytes bounds one WebSocket message; larger frames are refused
	// before any parsing so a peer cannot make the other side buffer or
	// parse an arbitrary amount of data.
	MaxFrameBytes = 1 << 20
	// MaxLogBatchLines bounds the lines in one log_batch.
	MaxLogBatchLines = 1000
	// MaxLogLineBytes bounds one log line's message (UTF-8 bytes). Longer
	// lines are truncated by the sender (see SanitizeLogMessage).
	MaxLogLineBytes = 16 << 10
	// MaxActionsPerPlan bounds the actions in one plan.
	MaxActionsPerPlan = 64
	// MaxActionParamsBytes bounds the JSON params of one plan action.
	MaxActionParamsBytes = 64 << 10
	// MaxVMsPerHost bounds the VM statuses in one hello or heartbeat.
	MaxVMsPerHost = 1024
	// MaxPendingResults bounds the action ids listed in hello.
	MaxPendingResults = 4096
	// MaxCapabilities bounds the capability names in hello.
	MaxCapabilities = 64
	// MaxDisks bounds the disks in HostFacts.
	MaxDisks = 64
	// MaxConsoleChunkBytes bounds the bytes of one console_data message.
	MaxConsoleChunkBytes = 64 << 10
	// MaxPEMBytes bounds a CSR, certificate or CA bundle in PEM.
	MaxPEMBytes = 64 << 10
	// MaxErrorBytes bounds free-text error and reason fields.
	MaxErrorBytes = 4 << 10
	// MaxNameBytes bounds short identifiers: versions, capability names,
	// states, codes, streams, message ids.
	MaxNameBytes = 128
	// MaxHostnameBytes bounds a host name (the DNS limit).
	MaxHostnameBytes = 253
	// MaxTextBytes bounds descriptive fields such as OS, kernel, CPU model.
	MaxTextBytes = 512

	// MinHeartbeatIntervalMS and MaxHeartbeatIntervalMS bound the interval
	// a server may ask for: faster would melt a 10,000-agent server, slower
	// would make offline detection useless.
	MinHeartbeatIntervalMS = 1_000
	MaxHeartbeatIntervalMS = 10 * 60 * 1_000
	// DefaultHeartbeatIntervalMS is the interval the server asks for
	// unless configured otherwise.
	DefaultHeartbeatIntervalMS = 15_000
)
