package client

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// The JSON shapes of the API (SPEC.md "Contract details"). Unknown fields
// are ignored so that an older client keeps working against a newer
// server.

// Roles of a tenant API key.
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleViewer   = "viewer"
)

// VM states.
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

// Terminal reports whether a plan, action or execution status is final.
func Terminal(status string) bool {
	return status == StatusSucceeded || status == StatusFailed || status == StatusCancelled
}

// Action types of a plan.
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
	ID        uuid.UUID `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// APIKey is a tenant API key as listed; the secret is never shown again.
type APIKey struct {
	ID         uuid.UUID  `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// CreatedAPIKey is the answer to creating a key: the only time Key, the
// secret, is available.
type CreatedAPIKey struct {
	ID        uuid.UUID `json:"id"`
	Key       string    `json:"key"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
}

// SiteNetBird holds a site's NetBird settings.
type SiteNetBird struct {
	Enabled bool     `json:"enabled"`
	Groups  []string `json:"groups"`
}

// Site groups the hosts of one location.
type Site struct {
	ID          uuid.UUID   `json:"id"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	NetBird     SiteNetBird `json:"netbird"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
}

// CreateSiteRequest is the body of CreateSite.
type CreateSiteRequest struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	NetBird     *SiteNetBird `json:"netbird,omitempty"`
}

// UpdateSiteRequest is a partial update: nil fields are left unchanged.
type UpdateSiteRequest struct {
	Name        *string           `json:"name,omitempty"`
	Description *string           `json:"description,omitempty"`
	NetBird     *SiteNetBirdPatch `json:"netbird,omitempty"`
}

// SiteNetBirdPatch is the NetBird part of UpdateSiteRequest.
type SiteNetBirdPatch struct {
	Enabled *bool     `json:"enabled,omitempty"`
	Groups  *[]string `json:"groups,omitempty"`
}

// CreateEnrollmentTokenRequest tunes a new token; zero fields take the
// server's defaults (15 minutes, one use).
type CreateEnrollmentTokenRequest struct {
	TTL     time.Duration
	MaxUses int
}

// MarshalJSON sends the TTL as the Go duration string the API expects.
func (r CreateEnrollmentTokenRequest) MarshalJSON() ([]byte, error) {
	var body struct {
		TTL     string `json:"ttl,omitempty"`
		MaxUses *int   `json:"max_uses,omitempty"`
	}
	if r.TTL != 0 {
		body.TTL = r.TTL.String()
	}
	if r.MaxUses != 0 {
		n := r.MaxUses
		body.MaxUses = &n
	}
	return json.Marshal(body)
}

// EnrollmentToken is a new per-site token; Token is shown only once.
type EnrollmentToken struct {
	ID        uuid.UUID `json:"id"`
	SiteID    uuid.UUID `json:"site_id"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	MaxUses   int       `json:"max_uses"`
}

// Host is an edge machine as its agent reports it.
type Host struct {
	ID         uuid.UUID     `json:"id"`
	SiteID     uuid.UUID     `json:"site_id"`
	Hostname   string        `json:"hostname"`
	AgentID    uuid.UUID     `json:"agent_id"`
	Online     bool          `json:"online"`
	LastSeenAt *time.Time    `json:"last_seen_at"`
	Facts      HostFacts     `json:"facts"`
	NetBird    NetBirdStatus `json:"netbird"`
	// Usage is present in live events when the host reported it.
	Usage     *HostUsage `json:"usage,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// Simulated reports whether the host runs the sim hypervisor: no real VM
// exists behind its VMs, and every view must say so.
func (h Host) Simulated() bool {
	return h.Facts.Hypervisor.Simulated || h.Facts.Hypervisor.Kind == HypervisorSim
}

// Hypervisor kinds.
const (
	HypervisorCloudHypervisor = "cloud-hypervisor"
	HypervisorSim             = "sim"
)

// HostFacts describes an edge host; zero when the agent never reported.
type HostFacts struct {
	Hostname         string         `json:"hostname"`
	OS               string         `json:"os"`
	Kernel           string         `json:"kernel"`
	Arch             string         `json:"arch"`
	CPUModel         string         `json:"cpu_model"`
	CPUCores         int            `json:"cpu_cores"`
	MemoryTotalBytes int64          `json:"memory_total_bytes"`
	Disks            []Disk         `json:"disks"`
	KVM              bool           `json:"kvm"`
	Hypervisor       HypervisorInfo `json:"hypervisor"`
	NetBirdVersion   string         `json:"netbird_version,omitempty"`
	AgentVersion     string         `json:"agent_version"`
}

// Disk is one mounted filesystem of a host.
type Disk struct {
	Mount      string `json:"mount"`
	Device     string `json:"device"`
	FSType     string `json:"fs_type"`
	TotalBytes int64  `json:"total_bytes"`
	FreeBytes  int64  `json:"free_bytes"`
}

// HypervisorInfo names the VMM a host's agent drives.
type HypervisorInfo struct {
	Kind      string `json:"kind"`
	Version   string `json:"version,omitempty"`
	Simulated bool   `json:"simulated"`
	// Unavailable says why the host's hypervisor cannot run VMs; empty
	// when it can.
	Unavailable string `json:"unavailable,omitempty"`
}

// NetBirdStatus is a host's NetBird mesh state; State is empty when the
// agent never reported one.
type NetBirdStatus struct {
	State               string        `json:"state"`
	IP                  string        `json:"ip,omitempty"`
	FQDN                string        `json:"fqdn,omitempty"`
	PeersConnected      int           `json:"peers_connected"`
	PeersTotal          int           `json:"peers_total"`
	ManagementConnected bool          `json:"management_connected"`
	SignalConnected     bool          `json:"signal_connected"`
	Probe               *NetBirdProbe `json:"probe,omitempty"`
	Error               string        `json:"error,omitempty"`
}

// NetBirdProbe is the result of the agent's reachability probe.
type NetBirdProbe struct {
	OK        bool    `json:"ok"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

// HostUsage is a host's resource usage from its last heartbeat.
type HostUsage struct {
	CPUPercent      float64 `json:"cpu_percent"`
	MemoryUsedBytes int64   `json:"memory_used_bytes"`
	DiskUsedBytes   int64   `json:"disk_used_bytes"`
	Load1           float64 `json:"load1"`
	UptimeSeconds   int64   `json:"uptime_seconds"`
	VMsRunning      int     `json:"vms_running"`
}

// Agent is an enrolled nkudo-agent.
type Agent struct {
	ID            uuid.UUID  `json:"id"`
	HostID        uuid.UUID  `json:"host_id"`
	SiteID        uuid.UUID  `json:"site_id"`
	Status        string     `json:"status"`
	Version       string     `json:"version"`
	CertExpiresAt time.Time  `json:"cert_expires_at"`
	Revoked       bool       `json:"revoked"`
	RevokedAt     *time.Time `json:"revoked_at"`
	LastSeenAt    *time.Time `json:"last_seen_at"`
	CreatedAt     time.Time  `json:"created_at"`
}

// VM is a microVM with its desired and actual state.
type VM struct {
	ID           uuid.UUID       `json:"id"`
	Name         string          `json:"name"`
	SiteID       uuid.UUID       `json:"site_id"`
	HostID       uuid.UUID       `json:"host_id"`
	DesiredState string          `json:"desired_state"`
	ActualState  string          `json:"actual_state"`
	Drift        bool            `json:"drift"`
	VCPUs        int             `json:"vcpus"`
	MemoryMiB    int             `json:"memory_mib"`
	Spec         json.RawMessage `json:"spec,omitempty"`
	Error        string          `json:"error"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

// CreateVMRequest is the body of CreateVM. Start nil means the server's
// default: the VM is booted after it is created.
type CreateVMRequest struct {
	Name      string     `json:"name"`
	SiteID    uuid.UUID  `json:"site_id"`
	HostID    *uuid.UUID `json:"host_id,omitempty"`
	VCPUs     int        `json:"vcpus"`
	MemoryMiB int        `json:"memory_mib"`
	Kernel    string     `json:"kernel,omitempty"`
	Cmdline   string     `json:"cmdline,omitempty"`
	DiskImage string     `json:"disk_image"`
	CloudInit *CloudInit `json:"cloud_init,omitempty"`
	Start     *bool      `json:"start,omitempty"`
}

// CloudInit is the NoCloud user data of a new VM.
type CloudInit struct {
	UserData string `json:"user_data"`
}

// CreatedVM is the answer to CreateVM: the VM and, when the server
// returned it, the plan that creates it.
type CreatedVM struct {
	VM
	Plan *Plan `json:"plan,omitempty"`
}

// Plan is an ordered list of actions for one host's agent.
type Plan struct {
	ID        uuid.UUID `json:"id"`
	SiteID    uuid.UUID `json:"site_id"`
	HostID    uuid.UUID `json:"host_id"`
	AgentID   uuid.UUID `json:"agent_id"`
	Status    string    `json:"status"`
	Actions   []Action  `json:"actions"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Action is one step of a plan; its execution holds its logs.
type Action struct {
	ID          uuid.UUID       `json:"id"`
	Seq         int             `json:"seq"`
	Type        string          `json:"type"`
	VMID        *uuid.UUID      `json:"vm_id"`
	Params      json.RawMessage `json:"params,omitempty"`
	Status      string          `json:"status"`
	ExecutionID uuid.UUID       `json:"execution_id"`
	Error       string          `json:"error"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// CreatePlanRequest is the body of CreatePlan.
type CreatePlanRequest struct {
	HostID  uuid.UUID          `json:"host_id"`
	Actions []PlanActionSubmit `json:"actions"`
}

// PlanActionSubmit is one action of a new plan.
type PlanActionSubmit struct {
	Type   string          `json:"type"`
	VMID   *uuid.UUID      `json:"vm_id,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
}

// Execution is the run of one plan action.
type Execution struct {
	ID         uuid.UUID  `json:"id"`
	PlanID     uuid.UUID  `json:"plan_id"`
	ActionID   uuid.UUID  `json:"action_id"`
	Status     string     `json:"status"`
	Error      string     `json:"error"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	CreatedAt  time.Time  `json:"created_at"`
}

// LogLine is one line of an execution's log; Seq starts at 1 with no gaps.
type LogLine struct {
	Seq     int64     `json:"seq"`
	At      time.Time `json:"at"`
	Stream  string    `json:"stream"`
	Message string    `json:"message"`
}

// AuditEvent records one mutating call.
type AuditEvent struct {
	ID        uuid.UUID `json:"id"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	Result    string    `json:"result"`
	RequestID string    `json:"request_id"`
	At        time.Time `json:"at"`
}
