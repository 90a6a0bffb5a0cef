package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"
)

// Sentinel errors. Implementations translate driver errors into these once,
// at the store boundary; the API maps them to HTTP statuses in one place.
var (
	// ErrNotFound: the object does not exist, or belongs to another tenant.
	// Callers must not be able to tell the two apart.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a uniqueness constraint was violated (duplicate name, key).
	ErrConflict = errors.New("conflict")
	// ErrTokenInvalid: an enrollment token is unknown, expired or used up.
	ErrTokenInvalid = errors.New("enrollment token invalid")
	// ErrIdempotencyMismatch: an Idempotency-Key was reused with a different
	// request fingerprint.
	ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")
	// ErrUnavailable: the database cannot be reached.
	ErrUnavailable = errors.New("store unavailable")
	// ErrInvalid: an argument the store cannot accept (malformed JSON, an
	// unknown status). The API validates first; this is the backstop.
	ErrInvalid = errors.New("invalid argument")
)

// Roles of a tenant API key.
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleViewer   = "viewer"
)

// NewID returns a new time-ordered id (UUIDv7), so ordering by id is
// ordering by creation and keyset pagination needs no timestamp.
func NewID() uuid.UUID {
	return uuid.Must(uuid.NewV7())
}

// ValidRole reports whether r is a known API key role.
func ValidRole(r string) bool {
	return r == RoleAdmin || r == RoleOperator || r == RoleViewer
}

// VM states. Desired states are running, stopped and deleted; actual states
// add unknown, creating and failed.
const (
	VMRunning  = "running"
	VMStopped  = "stopped"
	VMDeleted  = "deleted"
	VMUnknown  = "unknown"
	VMCreating = "creating"
	VMFailed   = "failed"
	VMPaused   = "paused"
)

// Plan, action and execution statuses.
const (
	StatusPending    = "pending"
	StatusDispatched = "dispatched"
	StatusRunning    = "running"
	StatusSucceeded  = "succeeded"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
)

// Terminal reports whether a plan/action/execution status is final.
func Terminal(status string) bool {
	return status == StatusSucceeded || status == StatusFailed || status == StatusCancelled
}

// Agent statuses.
const (
	AgentOnline  = "online"
	AgentOffline = "offline"
	AgentRevoked = "revoked"
)

// Action types.
const (
	ActionMicroVMCreate = "MicroVMCreate"
	ActionMicroVMStart  = "MicroVMStart"
	ActionMicroVMStop   = "MicroVMStop"
	ActionMicroVMReboot = "MicroVMReboot"
	ActionMicroVMDelete = "MicroVMDelete"
	ActionMicroVMPause  = "MicroVMPause"
	ActionMicroVMResume = "MicroVMResume"
)

// Tenant is the unit of isolation.
type Tenant struct {
	ID        uuid.UUID
	Name      string
	CreatedAt time.Time
}

// APIKey is a tenant API key. The secret itself is never stored: only
// Hash (SHA-256 of the full key) and a short Prefix for display.
type APIKey struct {
	ID         uuid.UUID
	TenantID   uuid.UUID
	Name       string
	Role       string
	Prefix     string
	Hash       []byte
	CreatedAt  time.Time
	LastUsedAt *time.Time
}

// Site groups the hosts of one location.
type Site struct {
	ID          uuid.UUID
	TenantID    uuid.UUID
	Name        string
	Description string
	// NetBird settings for hosts enrolled into this site.
	NetBirdEnabled bool
	NetBirdGroups  []string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// SitePatch holds the fields of a partial site update; nil means unchanged.
type SitePatch struct {
	Name           *string
	Description    *string
	NetBirdEnabled *bool
	NetBirdGroups  *[]string
}

// EnrollmentToken is a per-site secret that lets an agent enroll. Only the
// hash of the secret is stored.
type EnrollmentToken struct {
	ID        uuid.UUID
	TenantID  uuid.UUID
	SiteID    uuid.UUID
	Hash      []byte
	ExpiresAt time.Time
	MaxUses   int
	Uses      int
	CreatedAt time.Time
	// NetBirdSetupKeyID is the id of the setup key minted for this token,
	// empty when NetBird is off for the site.
	NetBirdSetupKeyID string
	// NetBirdSetupKeySealed is the setup key itself, sealed under a key
	// derived from the token secret (which the store never sees), so only
	// the enrolling agent's token opens it; nil when there is none.
	NetBirdSetupKeySealed []byte
}

// Agent is an enrolled nkudo-agent; one per host.
type Agent struct {
	ID            uuid.UUID
	TenantID      uuid.UUID
	SiteID        uuid.UUID
	HostID        uuid.UUID
	Status        string // online, offline
	Version       string
	CertSerial    string // hex serial of the current client certificate
	CertExpiresAt time.Time
	Revoked       bool
	RevokedAt     *time.Time
	LastSeenAt    *time.Time
	CreatedAt     time.Time
}

// Host is an edge machine as its agent reports it.
type Host struct {
	ID         uuid.UUID
	TenantID   uuid.UUID
	SiteID     uuid.UUID
	AgentID    uuid.UUID
	Hostname   string
	Online     bool
	LastSeenAt *time.Time
	Facts      json.RawMessage // JSON object; "{}" when unknown
	NetBird    json.RawMessage // JSON object; "{}" when unknown
	// Usage is the resource usage of the latest heartbeat (CPU, memory,
	// disk, load…) as a JSON object; "{}" when unknown.
	Usage     json.RawMessage
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Enrollment is what the store records when an agent enrolls: the token is
// consumed, the agent (with its first certificate) and its host are
// created and the audit event is recorded in one write transaction, so an
// enrollment costs one commit.
type Enrollment struct {
	TokenHash     []byte
	AgentID       uuid.UUID
	HostID        uuid.UUID
	Hostname      string
	CertSerial    string
	CertExpiresAt time.Time
	Now           time.Time
	// Audit, when non-nil, is recorded in the same transaction; its
	// TenantID is the token's (filled in by the store, since the caller
	// may not know it for certain until the token is consumed).
	Audit *AuditEvent
}

// HostState is one heartbeat's worth of host state, written in batches.
// Facts, NetBird and Usage are written only when non-nil (only what
// changed).
type HostState struct {
	HostID  uuid.UUID
	AgentID uuid.UUID
	// TenantID is the tenant of the host. The store does not need it (the
	// agent owns the host); it lets a decorator scope what it publishes
	// about the write without reading the host back.
	TenantID   uuid.UUID
	LastSeenAt time.Time
	Facts      json.RawMessage
	NetBird    json.RawMessage
	Usage      json.RawMessage
}

// VM is a microVM with its desired and actual state.
type VM struct {
	ID           uuid.UUID
	TenantID     uuid.UUID
	SiteID       uuid.UUID
	HostID       uuid.UUID
	Name         string
	DesiredState string
	ActualState  string
	VCPUs        int
	MemoryMiB    int
	// Spec holds the rest of the create request (kernel, cmdline,
	// disk_image, cloud_init) as a JSON object.
	Spec      json.RawMessage
	Error     string // last failure reported for the VM, if any
	CreatedAt time.Time
	UpdatedAt time.Time
}

// VMStateReport is an agent's report of a VM's actual state.
type VMStateReport struct {
	VMID        uuid.UUID
	ActualState string
	Error       string
}

// Plan is an ordered list of actions for one agent.
type Plan struct {
	ID        uuid.UUID
	TenantID  uuid.UUID
	SiteID    uuid.UUID
	HostID    uuid.UUID
	AgentID   uuid.UUID
	Status    string
	Actions   []PlanAction
	CreatedAt time.Time
	UpdatedAt time.Time
}

// PlanAction is one step of a plan. Each action has one execution, whose
// id is ExecutionID and whose logs are the action's logs.
type PlanAction struct {
	ID          uuid.UUID
	PlanID      uuid.UUID
	Seq         int // 0-based order inside the plan
	Type        string
	VMID        uuid.UUID // uuid.Nil when the action targets no VM
	Params      json.RawMessage
	Status      string
	ExecutionID uuid.UUID
	Error       string
	UpdatedAt   time.Time
}

// ActionResult is an agent's report of one action's outcome.
type ActionResult struct {
	ActionID uuid.UUID
	Status   string // running, succeeded or failed
	Error    string
	// VMState, when set, is the VM's actual state after the action.
	VMState string
	At      time.Time
}

// Execution is the run of one plan action on an agent.
type Execution struct {
	ID         uuid.UUID
	TenantID   uuid.UUID
	PlanID     uuid.UUID
	ActionID   uuid.UUID
	Status     string
	Error      string
	StartedAt  *time.Time
	FinishedAt *time.Time
	CreatedAt  time.Time
}

// LogLine is one line of an execution's log. (ExecutionID, Seq) is unique;
// Seq starts at 1 and has no gaps as written by the agent.
type LogLine struct {
	ExecutionID uuid.UUID
	Seq         int64
	At          time.Time
	Stream      string // stdout, stderr, info…
	Message     string
}

// AuditEvent records one mutating call.
type AuditEvent struct {
	ID        uuid.UUID
	TenantID  uuid.UUID // uuid.Nil for admin calls outside a tenant
	Actor     string    // "admin", "key:<id>", "agent:<id>"
	Action    string    // e.g. "site.create"
	Target    string    // id of the object acted on
	Result    string    // "ok" or an error code
	RequestID string
	At        time.Time
}

// IdempotencyRecord is an Idempotency-Key in the store: the reservation
// of the request that runs under it (Holder set), then that request's
// answer (Status and Response).
type IdempotencyRecord struct {
	TenantID    uuid.UUID // uuid.Nil for admin scope
	Route       string    // method + route pattern
	Key         string
	Fingerprint []byte // hash of the request body and target
	Status      int
	Response    []byte
	CreatedAt   time.Time
	// Holder names the request that reserved the key while it runs;
	// uuid.Nil once its answer is stored.
	Holder uuid.UUID
	// ReservedUntil is when a reservation lapses: a request still holding
	// the key then is presumed dead (its replica stopped), and another may
	// take the key over. Zero once the answer is stored.
	ReservedUntil time.Time
}

// Pending reports whether the record is a reservation whose request has
// not answered yet.
func (r IdempotencyRecord) Pending() bool { return r.Holder != uuid.Nil }

// Page selects a slice of a list ordered by id (ids are UUIDv7, so this is
// creation order). After is the last id of the previous page.
type Page struct {
	Limit int
	After uuid.UUID
}

// VMFilter narrows ListVMs; zero fields match everything.
type VMFilter struct {
	SiteID uuid.UUID
	HostID uuid.UUID
	// IncludeDeleted also lists VMs whose actual state is deleted.
	IncludeDeleted bool
}

// PlanFilter narrows ListPlans; zero fields match everything.
type PlanFilter struct {
	SiteID uuid.UUID
	Status string
}

// Store is the whole domain's persistence. Every tenant-scoped method
// filters by tenantID: an object of another tenant is ErrNotFound.
// List methods return at most Page.Limit items and whether more exist.
// Every multi-row change runs in one transaction.
//
// Times are returned in UTC truncated to microseconds (PostgreSQL's
// precision), so both engines answer the same. JSON columns come back as
// compact JSON objects ("{}" when empty). Nil slices and empty slices are
// equivalent in arguments.
type Store interface {
	// Ping checks that the database answers (for /readyz).
	Ping(ctx context.Context) error
	Close() error

	CreateTenant(ctx context.Context, t Tenant) error
	GetTenant(ctx context.Context, id uuid.UUID) (Tenant, error)
	ListTenants(ctx context.Context, p Page) ([]Tenant, bool, error)

	CreateAPIKey(ctx context.Context, k APIKey) error
	// GetAPIKeyByHash finds a key by the SHA-256 of its secret (any tenant).
	GetAPIKeyByHash(ctx context.Context, hash []byte) (APIKey, error)
	ListAPIKeys(ctx context.Context, tenantID uuid.UUID, p Page) ([]APIKey, bool, error)
	DeleteAPIKey(ctx context.Context, tenantID, id uuid.UUID) error
	TouchAPIKey(ctx context.Context, id uuid.UUID, at time.Time) error

	CreateSite(ctx context.Context, s Site) error
	GetSite(ctx context.Context, tenantID, id uuid.UUID) (Site, error)
	ListSites(ctx context.Context, tenantID uuid.UUID, p Page) ([]Site, bool, error)
	UpdateSite(ctx context.Context, tenantID, id uuid.UUID, patch SitePatch, now time.Time) (Site, error)
	// DeleteSite fails with ErrConflict while the site still has hosts or VMs.
	DeleteSite(ctx context.Context, tenantID, id uuid.UUID) error

	CreateEnrollmentToken(ctx context.Context, t EnrollmentToken) error
	// ConsumeEnrollment atomically takes one use of the token with hash
	// e.TokenHash (ErrTokenInvalid when unknown, expired at e.Now or used
	// up) and creates the agent and its host. Of two concurrent calls with
	// a one-use token exactly one succeeds.
	ConsumeEnrollment(ctx context.Context, e Enrollment) (Agent, Host, EnrollmentToken, error)
	// EnrollmentTokenByHash reads the token with that hash without using
	// it, so the caller can sign the agent's certificate (which names the
	// token's tenant and site) before the single write of
	// ConsumeEnrollment. ErrTokenInvalid when unknown, expired at now or
	// used up; a token valid here may still be used up by the time it is
	// consumed.
	EnrollmentTokenByHash(ctx context.Context, hash []byte, now time.Time) (EnrollmentToken, error)
	// TokensWithStaleSetupKeys lists tokens whose NetBird setup key is
	// done with and is to be deleted: the key id is set and the token
	// expired before unusedBefore when never used, before usedBefore when
	// used at least once (partly or wholly). A key is minted with
	// usage_limit = max_uses, so a partly used token's key admits more
	// peers until deleted; and a host enrolled just before the expiry, or
	// with a used-up token, may not have joined yet, hence the later
	// cutoff. Keys are deleted rather than left revoked so they do not
	// pile up in NetBird, which refuses to delete a group any setup key
	// names. Oldest expiry first; ClearTokenSetupKey forgets the key.
	TokensWithStaleSetupKeys(ctx context.Context, unusedBefore, usedBefore time.Time, limit int) ([]EnrollmentToken, error)
	ClearTokenSetupKey(ctx context.Context, id uuid.UUID) error

	// GetAgent is not tenant-scoped: the agent channel looks agents up by
	// the id in their certificate.
	GetAgent(ctx context.Context, id uuid.UUID) (Agent, error)
	GetTenantAgent(ctx context.Context, tenantID, id uuid.UUID) (Agent, error)
	ListAgents(ctx context.Context, tenantID uuid.UUID, p Page) ([]Agent, bool, error)
	RevokeAgent(ctx context.Context, tenantID, id uuid.UUID, at time.Time) (Agent, error)
	// RotateAgentCert records a renewed client certificate.
	RotateAgentCert(ctx context.Context, id uuid.UUID, serial string, expiresAt time.Time) error
	// SetAgentOnline marks an agent and its host online or offline.
	SetAgentOnline(ctx context.Context, id uuid.UUID, online bool, version string, at time.Time) error
	// MarkStaleAgentsOffline marks offline every online agent (and host)
	// last seen before cutoff, sets the actual state of their VMs to
	// unknown, and returns the agents it changed.
	MarkStaleAgentsOffline(ctx context.Context, cutoff time.Time) ([]Agent, error)

	GetHost(ctx context.Context, tenantID, id uuid.UUID) (Host, error)
	ListHosts(ctx context.Context, tenantID uuid.UUID, siteID uuid.UUID, p Page) ([]Host, bool, error)
	// UpsertHostStates writes a batch of heartbeats in one statement/tx.
	UpsertHostStates(ctx context.Context, states []HostState) error

	// CreateVM fails with ErrConflict when a VM with the same name exists
	// in the tenant and is not deleted.
	CreateVM(ctx context.Context, vm VM) error
	GetVM(ctx context.Context, tenantID, id uuid.UUID) (VM, error)
	ListVMs(ctx context.Context, tenantID uuid.UUID, f VMFilter, p Page) ([]VM, bool, error)
	SetVMDesiredState(ctx context.Context, tenantID, id uuid.UUID, desired string, at time.Time) error
	// ReportVMStates records actual states reported by the agent of hostID;
	// reports for VMs not on that host are ignored. It returns the VMs
	// whose actual state or error actually changed, as stored after the
	// change, so callers can tell the world about exactly those; a report
	// repeating the stored state neither rewrites the row nor is returned.
	ReportVMStates(ctx context.Context, hostID uuid.UUID, reports []VMStateReport, at time.Time) ([]VM, error)
	// CountVMsByHost returns the number of non-deleted VMs per host of a site.
	CountVMsByHost(ctx context.Context, tenantID, siteID uuid.UUID) (map[uuid.UUID]int, error)

	// CreatePlan stores a plan with its actions and one execution per
	// action in one transaction.
	CreatePlan(ctx context.Context, p Plan) error
	// CreateVMWithPlan stores a new VM and the plan that creates it (its
	// actions and one execution per action) in one transaction, so no VM
	// is ever left waiting in "creating" without a plan, whatever fails
	// or crashes. It fails as CreateVM would (ErrConflict for a taken
	// name) or as CreatePlan would, and then nothing is written.
	CreateVMWithPlan(ctx context.Context, vm VM, p Plan) error
	GetPlan(ctx context.Context, tenantID, id uuid.UUID) (Plan, error)
	ListPlans(ctx context.Context, tenantID uuid.UUID, f PlanFilter, p Page) ([]Plan, bool, error)
	// PendingPlans returns the agent's plans that are not terminal, oldest
	// first, with their actions.
	PendingPlans(ctx context.Context, agentID uuid.UUID) ([]Plan, error)
	// PendingPlansOf is PendingPlans for many agents in one query (a
	// reconnect storm's hellos): each agent's plans, oldest first, keyed
	// by agent; agents with none are absent.
	PendingPlansOf(ctx context.Context, agentIDs []uuid.UUID) (map[uuid.UUID][]Plan, error)
	// MarkPlanDispatched moves a pending plan of agentID (and its pending
	// actions and executions) to dispatched in one transaction, and returns
	// the plan with its actions as stored after the change. A plan past
	// pending is left alone and returned as it is, so a repeated
	// acknowledgement is harmless. A plan of another agent, or an unknown
	// plan, is ErrNotFound and nothing changes.
	MarkPlanDispatched(ctx context.Context, agentID, planID uuid.UUID, at time.Time) (Plan, error)
	// ApplyActionResult records an action result reported by agentID:
	// action, execution, VM actual state and the plan's status (succeeded
	// when all actions succeeded, failed when one failed) in one
	// transaction. Results for actions of another agent are ErrNotFound;
	// a result for an action already terminal is ignored.
	ApplyActionResult(ctx context.Context, agentID uuid.UUID, r ActionResult) (Plan, error)

	GetExecution(ctx context.Context, tenantID, id uuid.UUID) (Execution, error)
	// ExecutionAgent returns the agent that owns an execution (for checking
	// that log batches come from the right agent).
	ExecutionAgent(ctx context.Context, id uuid.UUID) (uuid.UUID, error)
	// AppendLogLines inserts a batch; lines whose (execution, seq) already
	// exist are skipped, so retries never duplicate.
	AppendLogLines(ctx context.Context, lines []LogLine) error
	// ListLogLines returns lines with Seq > afterSeq, in order.
	ListLogLines(ctx context.Context, tenantID, executionID uuid.UUID, afterSeq int64, limit int) ([]LogLine, error)

	AppendAudit(ctx context.Context, e AuditEvent) error
	ListAudit(ctx context.Context, tenantID uuid.UUID, p Page) ([]AuditEvent, bool, error)

	// GetIdempotency returns the record of a key, an answer or a
	// reservation; ErrNotFound when none exists.
	GetIdempotency(ctx context.Context, tenantID uuid.UUID, route, key string) (IdempotencyRecord, error)
	// ReserveIdempotency claims a key for the request r describes (its
	// Holder, Fingerprint, CreatedAt and ReservedUntil set). It reports
	// true when r now holds the key: no record existed, or the existing
	// reservation lapsed before r.CreatedAt. Otherwise it reports false
	// and the record that holds the key. Of concurrent callers, on one
	// replica or several, exactly one wins.
	ReserveIdempotency(ctx context.Context, r IdempotencyRecord) (IdempotencyRecord, bool, error)
	// CompleteIdempotency stores the answer (r.Status, r.Response) of the
	// request holding the key (r.Holder) and ends its reservation;
	// ErrNotFound when r.Holder no longer holds the key.
	CompleteIdempotency(ctx context.Context, r IdempotencyRecord) error
	// ReleaseIdempotency deletes the reservation held by holder, so the
	// key is free again; ErrNotFound when holder no longer holds it.
	ReleaseIdempotency(ctx context.Context, tenantID uuid.UUID, route, key string, holder uuid.UUID) error
	Maintenance
	SharedPKI
}
