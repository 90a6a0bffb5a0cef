package data

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Sentinel errors a Source reports; views map them to human messages.
var (
	// ErrForbidden means the credentials may not do this (e.g. a viewer key
	// mutating, or a tenant key listing tenants).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound means the object does not exist for this tenant.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable means the server could not be reached.
	ErrUnavailable = errors.New("server unavailable")
)

// Refusal is the server refusing a request it understood: its reason code
// (e.g. vm_not_running) and its message. Views show the code where space
// is short and the message in the message log.
type Refusal struct {
	Code    string
	Message string
	// Err is the underlying client error, for errors.Is.
	Err error
}

func (r *Refusal) Error() string { return r.Message + " (" + r.Code + ")" }

// Unwrap returns the client error.
func (r *Refusal) Unwrap() error { return r.Err }

// Reason is the server's reason code for err, "" when err is no refusal.
func Reason(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Code
	}
	return ""
}

// Refused returns the refusal in err, if any.
func Refused(err error) (*Refusal, bool) {
	var r *Refusal
	ok := errors.As(err, &r)
	return r, ok
}

// VM states, desired and actual, as the API spells them.
const (
	StateRunning  = "running"
	StateStopped  = "stopped"
	StateDeleted  = "deleted"
	StateUnknown  = "unknown"
	StateCreating = "creating"
	StateFailed   = "failed"
)

// Plan and action statuses, as the API spells them.
const (
	StatusPending    = "pending"
	StatusDispatched = "dispatched"
	StatusRunning    = "running"
	StatusSucceeded  = "succeeded"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
)

// Tenant is one tenant, visible to the admin key only.
type Tenant struct {
	ID   string
	Name string
}

// Site is a group of hosts, usually one physical location.
type Site struct {
	ID   string
	Name string
}

// NetBird is the mesh state an agent last reported.
type NetBird struct {
	// State is "connected", "disconnected", "disabled" or "" when unknown.
	State string
	IP    string
}

// Usage is the host load from the latest heartbeat.
type Usage struct {
	CPUPercent       float64
	MemoryUsedBytes  uint64
	MemoryTotalBytes uint64
}

// MemoryFraction is used memory over total, 0 when the total is unknown.
func (u Usage) MemoryFraction() float64 {
	if u.MemoryTotalBytes == 0 {
		return 0
	}
	return float64(u.MemoryUsedBytes) / float64(u.MemoryTotalBytes)
}

// Host is one edge host and its agent's view of it.
type Host struct {
	ID         string
	SiteID     string
	Hostname   string
	AgentID    string
	Online     bool
	LastSeenAt time.Time
	NetBird    NetBird
	// Usage is nil until a heartbeat carried it.
	Usage *Usage
	// Simulated marks hosts whose agent runs the sim hypervisor; every view
	// labels them so nobody mistakes a dev fleet for real machines.
	Simulated bool
	// HypervisorUnavailable says why the host's hypervisor cannot run VMs
	// (binary missing, no /dev/kvm); empty when it can.
	HypervisorUnavailable string
}

// Agent is the agent identity behind a host.
type Agent struct {
	ID      string
	HostID  string
	SiteID  string
	Status  string
	Revoked bool
}

// VM is one microVM with its desired and reported state.
type VM struct {
	ID           string
	Name         string
	SiteID       string
	HostID       string
	DesiredState string
	ActualState  string
	VCPUs        int
	MemoryMiB    int
	// Error is why the VM last failed, as the agent reported it (for a
	// refused boot, the VMM's message and the tail of its log).
	Error string
}

// Drift reports whether the reported state disagrees with the desired one in
// a way an operator should look at. Transitional states (creating) and an
// absent report are not drift.
func (v VM) Drift() bool {
	if v.ActualState == "" || v.ActualState == StateCreating {
		return false
	}
	return v.DesiredState != v.ActualState
}

// Action is one step of a plan.
type Action struct {
	ID          string
	Type        string
	VMID        string
	Status      string
	ExecutionID string
}

// Plan is a batch of actions sent to one site's agent.
type Plan struct {
	ID        string
	SiteID    string
	Status    string
	CreatedAt time.Time
	Actions   []Action
}

// Progress counts finished actions (succeeded, failed or cancelled) against
// all of them.
func (p Plan) Progress() (done, total int) {
	for _, a := range p.Actions {
		if Finished(a.Status) {
			done++
		}
	}
	return done, len(p.Actions)
}

// Finished reports whether a plan or action status is terminal.
func Finished(status string) bool {
	switch status {
	case StatusSucceeded, StatusFailed, StatusCancelled:
		return true
	}
	return false
}

// Verb is the short human name of an action type ("MicroVMStop" → "stop").
func Verb(actionType string) string {
	return strings.ToLower(strings.TrimPrefix(actionType, "MicroVM"))
}

// VMOp is a lifecycle operation on an existing VM.
type VMOp string

// The operations the console offers on a VM.
const (
	OpStart  VMOp = "start"
	OpStop   VMOp = "stop"
	OpReboot VMOp = "reboot"
	OpDelete VMOp = "delete"
)

// VMSpec is what the create form collects.
type VMSpec struct {
	Name      string
	SiteID    string
	HostID    string
	VCPUs     int
	MemoryMiB int
	DiskImage string
}

// Token is an enrollment token, shown once.
type Token struct {
	Token     string
	ExpiresAt time.Time
}

// LogKind says what a log tail follows.
type LogKind int

// Log tail kinds.
const (
	LogExecution LogKind = iota
	LogConsole
)

// LogTarget names one log stream: an execution's log or a VM's console.
type LogTarget struct {
	Kind LogKind
	ID   string
}

// LogLine is one line of a log or console tail.
type LogLine struct {
	At     time.Time
	Stream string
	Text   string
	// Partial marks a line that is not finished yet (a console prompt
	// waiting for input): the first line of the next batch is the same
	// line, completed or grown, and replaces it.
	Partial bool
}

// LogBatch is what a tail delivers: lines, or the error that ended it.
type LogBatch struct {
	Lines []LogLine
	Err   error
}

// ConnState is the health of the live event stream.
type ConnState int

// Connection states, in the order a fresh session passes through them.
const (
	Connecting ConnState = iota
	Connected
	Reconnecting
	Offline
)

// String is the word the status line shows.
func (c ConnState) String() string {
	switch c {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Reconnecting:
		return "reconnecting"
	case Offline:
		return "offline"
	}
	return "unknown"
}

// EventType is the SSE event name, plus two local kinds for the stream's own
// health.
type EventType string

// Event types from GET /v1/events, and the local connection events.
const (
	EventHostUpdated  EventType = "host.updated"
	EventAgentUpdated EventType = "agent.updated"
	EventVMUpdated    EventType = "vm.updated"
	EventVMDeleted    EventType = "vm.deleted"
	EventPlanUpdated  EventType = "plan.updated"
	EventSiteUpdated  EventType = "site.updated"
	EventSiteDeleted  EventType = "site.deleted"
	// EventResync means events were lost: everything must be re-listed.
	EventResync EventType = "resync"
	// EventConn reports a change of connection state (Conn, and Err when the
	// stream broke).
	EventConn EventType = "conn"
)

// Event is one change pushed by the server, or a connection change. Exactly
// the field matching Type is set.
type Event struct {
	Seq   uint64
	Type  EventType
	At    time.Time
	ID    string
	Host  *Host
	Agent *Agent
	VM    *VM
	Plan  *Plan
	Site  *Site
	Conn  ConnState
	Err   error
}

// Source is everything the console reads and does. Implementations must be
// safe for concurrent use: the TUI calls them from tea.Cmd goroutines.
type Source interface {
	// Tenants lists tenants; ErrForbidden for non-admin credentials.
	Tenants(ctx context.Context) ([]Tenant, error)
	Sites(ctx context.Context) ([]Site, error)
	Hosts(ctx context.Context) ([]Host, error)
	VMs(ctx context.Context) ([]VM, error)
	Plans(ctx context.Context) ([]Plan, error)

	// VMAction asks for op on a VM and returns the plan that will carry it.
	VMAction(ctx context.Context, vmID string, op VMOp) (Plan, error)
	// CreateVM creates (and boots) a VM.
	CreateVM(ctx context.Context, spec VMSpec) (VM, error)
	// CreateEnrollmentToken mints a token for a site.
	CreateEnrollmentToken(ctx context.Context, siteID string) (Token, error)

	// FollowLogs tails a log until ctx ends. The channel is closed when the
	// tail ends; a batch with Err set is the last one.
	FollowLogs(ctx context.Context, target LogTarget) <-chan LogBatch
	// Subscribe streams changes until ctx ends, then closes the channel.
	// The Source owns resuming and reconnecting: it reports its state with
	// EventConn events and lost events with EventResync.
	Subscribe(ctx context.Context) <-chan Event
}
