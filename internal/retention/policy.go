package retention

import "time"

// Policy says how long each kind of row is kept; a zero age keeps that
// kind forever.
type Policy struct {
	// Logs: execution log lines, by the time the agent wrote them.
	Logs time.Duration
	// Audit: audit events, by the time of the call they record.
	Audit time.Duration
	// Plans: finished (succeeded, failed, cancelled) plans with their
	// actions, executions and log lines, by their last update.
	Plans time.Duration
	// IdempotencyKeys: remembered answers to creating POSTs, by creation.
	// A client retries within minutes; a day covers a retry after an
	// outage without keeping every key forever.
	IdempotencyKeys time.Duration
	// RevokedAgents: revoked agents, with their host, plans and the VM
	// records of that host, by the time of revocation. A revoked agent
	// never comes back (its host enrolls anew), so its rows only serve
	// the history views, for as long as finished plans are kept.
	RevokedAgents time.Duration
	// Interval is how often the job looks for expired rows.
	Interval time.Duration
}

// Default ages.
const (
	DefaultLogs            = 7 * 24 * time.Hour
	DefaultAudit           = 90 * 24 * time.Hour
	DefaultPlans           = 30 * 24 * time.Hour
	DefaultIdempotencyKeys = 24 * time.Hour
	DefaultRevokedAgents   = 30 * 24 * time.Hour
	DefaultInterval        = time.Minute
)

// DefaultPolicy is the policy of a server given no retention settings.
func DefaultPolicy() Policy {
	return Policy{
		Logs:            DefaultLogs,
		Audit:           DefaultAudit,
		Plans:           DefaultPlans,
		IdempotencyKeys: DefaultIdempotencyKeys,
		RevokedAgents:   DefaultRevokedAgents,
		Interval:        DefaultInterval,
	}
}
