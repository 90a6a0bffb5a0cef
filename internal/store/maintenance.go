package store

import (
	"context"
	"time"
)

// RetentionKind names a kind of row that the retention job deletes when
// it is older than the kind's age.
type RetentionKind string

// Retention kinds. The value is the Prometheus label.
const (
	// RetainLogs: execution log lines, by their time.
	RetainLogs RetentionKind = "logs"
	// RetainAudit: audit events, by their time.
	RetainAudit RetentionKind = "audit"
	// RetainPlans: terminal plans by their last update, with their
	// actions, executions and log lines.
	RetainPlans RetentionKind = "plans"
	// RetainIdempotencyKeys: idempotency records, by creation.
	RetainIdempotencyKeys RetentionKind = "idempotency_keys"
	// RetainRevokedAgents: revoked agents by revocation time, with their
	// host, every plan of the agent and the VM records of the host.
	RetainRevokedAgents RetentionKind = "revoked_agents"
)

// RetentionKinds lists every kind, in the order the job visits them:
// plans before log lines, so lines deleted with their plan are not
// deleted one by one first.
var RetentionKinds = []RetentionKind{RetainRevokedAgents, RetainPlans, RetainLogs, RetainAudit, RetainIdempotencyKeys}

// Maintenance is what the retention job needs of a store.
type Maintenance interface {
	// DeleteExpired deletes at most limit rows of kind older than
	// cutoff, oldest first, in one short transaction, and returns how
	// many rows of kind it deleted (rows deleted with them, such as a
	// plan's log lines, are not counted). Fewer than limit means nothing
	// older is left. An unknown kind is ErrInvalid.
	DeleteExpired(ctx context.Context, kind RetentionKind, cutoff time.Time, limit int) (int, error)
	// OldestRetained returns the time of the oldest row of kind, by the
	// same clock DeleteExpired compares, and false when there is none.
	OldestRetained(ctx context.Context, kind RetentionKind) (time.Time, bool, error)
	// ReclaimSpace makes the space of rows DeleteExpired removed reusable
	// at once, so a table under steady ingest and retention stops
	// growing (PostgreSQL: VACUUM of the kind's tables, which blocks no
	// reads or writes; SQLite reuses freed pages by itself).
	ReclaimSpace(ctx context.Context, kind RetentionKind) error
	// TryExclusive runs fn unless another process sharing the database
	// runs an fn under the same name at the moment (PostgreSQL: a session
	// advisory lock, held on its own connection; SQLite has one server
	// per file, so fn always runs). It reports whether fn ran.
	TryExclusive(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error)
}

// StoredCA is the CA that replicas sharing a database issue and trust:
// its certificate (PEM) and its private key sealed with the operator's
// seal key, which the store never sees.
type StoredCA struct {
	CertPEM   []byte
	SealedKey []byte
	CreatedAt time.Time
}

// SharedPKI keeps the one CA of the replicas sharing the database.
type SharedPKI interface {
	// LoadCA returns the stored CA, or ErrNotFound.
	LoadCA(ctx context.Context) (StoredCA, error)
	// StoreCAIfAbsent stores ca unless a CA is stored already, and
	// returns the CA stored afterwards (ca, or the earlier one).
	StoreCAIfAbsent(ctx context.Context, ca StoredCA) (StoredCA, error)
}
