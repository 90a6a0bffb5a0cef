// Package executor runs the plans the server sends to an agent: one plan
// at a time, in the order received, each action through the
// hypervisor.Provider.
//
// Running an action at most once, even across crashes, is the point of
// the design. Plans are persisted in a Queue before the agent
// acknowledges them, so a restart resumes them. Each action goes through
// the idempotency cache (internal/agent/actioncache): "started" is
// persisted before the provider is called, the result after it returns.
// An action already finished is never run again, its stored result is
// reported again instead; an action started but never finished (the agent
// died mid-call) is run again, which is safe because every provider
// operation the executor uses is idempotent in its goal state (Create of
// an identical VM, Start of a running one, Delete of a deleted one are
// no-ops).
//
// Before a MicroVMCreate reaches any provider, the host files of its spec
// (disk image, kernel) are confined to the agent's image directories
// (internal/agent/imagedir) and replaced by their real paths, so the sim
// and Cloud Hypervisor providers alike only ever open files an operator
// put there; a refused create leaves the VM "failed" with the reason.
//
// Every execution gets log lines saying what is being done and how it
// ended; they are flushed to the execution log buffer before the result
// is recorded, so the server always has an execution's log before its
// outcome.
package executor
