package api

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// The JSON shapes of the API. Field names are part of the contract
// (SPEC.md); times are RFC 3339 in UTC.

type tenantView struct {
	ID        uuid.UUID `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

func viewTenant(t store.Tenant) tenantView {
	return tenantView{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt.UTC()}
}

type apiKeyView struct {
	ID         uuid.UUID  `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func viewAPIKey(k store.APIKey) apiKeyView {
	return apiKeyView{ID: k.ID, Name: k.Name, Role: k.Role, Prefix: k.Prefix, CreatedAt: k.CreatedAt.UTC(), LastUsedAt: utcPtr(k.LastUsedAt)}
}

// createdAPIKeyView is the only place a key's secret ever appears.
type createdAPIKeyView struct {
	ID        uuid.UUID `json:"id"`
	Key       string    `json:"key"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
}

type netbirdSettings struct {
	Enabled bool     `json:"enabled"`
	Groups  []string `json:"groups"`
}

type siteView struct {
	ID          uuid.UUID       `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	NetBird     siteNetBirdView `json:"netbird"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

func viewSite(s store.Site) siteView {
	groups := s.NetBirdGroups
	if groups == nil {
		groups = []string{}
	}
	return siteView{
		ID: s.ID, Name: s.Name, Description: s.Description,
		NetBird:   siteNetBirdView{netbirdSettings: netbirdSettings{Enabled: s.NetBirdEnabled, Groups: groups}},
		CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC(),
	}
}

type enrollmentTokenView struct {
	ID        uuid.UUID `json:"id"`
	SiteID    uuid.UUID `json:"site_id"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	MaxUses   int       `json:"max_uses"`
}

type hostView struct {
	ID         uuid.UUID       `json:"id"`
	SiteID     uuid.UUID       `json:"site_id"`
	Hostname   string          `json:"hostname"`
	AgentID    uuid.UUID       `json:"agent_id"`
	Online     bool            `json:"online"`
	LastSeenAt *time.Time      `json:"last_seen_at"`
	Facts      json.RawMessage `json:"facts"`
	NetBird    json.RawMessage `json:"netbird"`
	// Usage is the latest heartbeat's resource usage; omitted until the
	// host reported one.
	Usage     json.RawMessage `json:"usage,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

func viewHost(h store.Host) hostView {
	return hostView{
		ID: h.ID, SiteID: h.SiteID, Hostname: h.Hostname, AgentID: h.AgentID,
		Online: h.Online, LastSeenAt: utcPtr(h.LastSeenAt),
		Facts: jsonObject(h.Facts), NetBird: jsonObject(h.NetBird), Usage: knownObject(h.Usage),
		CreatedAt: h.CreatedAt.UTC(), UpdatedAt: h.UpdatedAt.UTC(),
	}
}

type agentView struct {
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

func viewAgent(g store.Agent) agentView {
	status := g.Status
	if g.Revoked {
		status = store.AgentRevoked
	}
	return agentView{
		ID: g.ID, HostID: g.HostID, SiteID: g.SiteID, Status: status, Version: g.Version,
		CertExpiresAt: g.CertExpiresAt.UTC(), Revoked: g.Revoked, RevokedAt: utcPtr(g.RevokedAt),
		LastSeenAt: utcPtr(g.LastSeenAt), CreatedAt: g.CreatedAt.UTC(),
	}
}

type vmView struct {
	ID           uuid.UUID       `json:"id"`
	Name         string          `json:"name"`
	SiteID       uuid.UUID       `json:"site_id"`
	HostID       uuid.UUID       `json:"host_id"`
	DesiredState string          `json:"desired_state"`
	ActualState  string          `json:"actual_state"`
	Drift        bool            `json:"drift"`
	VCPUs        int             `json:"vcpus"`
	MemoryMiB    int             `json:"memory_mib"`
	Spec         json.RawMessage `json:"spec"`
	Error        string          `json:"error"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

func viewVM(v store.VM) vmView {
	return vmView{
		ID: v.ID, Name: v.Name, SiteID: v.SiteID, HostID: v.HostID,
		DesiredState: v.DesiredState, ActualState: v.ActualState, Drift: drift(v.DesiredState, v.ActualState),
		VCPUs: v.VCPUs, MemoryMiB: v.MemoryMiB, Spec: jsonObject(v.Spec), Error: v.Error,
		CreatedAt: v.CreatedAt.UTC(), UpdatedAt: v.UpdatedAt.UTC(),
	}
}

// drift reports a known disagreement between desired and actual state.
// States that say "on the way" (creating) or "we cannot know" (unknown,
// host offline) are not drift: they resolve by themselves or say nothing
// about the VM.
func drift(desired, actual string) bool {
	switch actual {
	case "", store.VMCreating, store.VMUnknown:
		return false
	}
	return desired != actual
}

type planActionView struct {
	ID          uuid.UUID       `json:"id"`
	Seq         int             `json:"seq"`
	Type        string          `json:"type"`
	VMID        *uuid.UUID      `json:"vm_id"`
	Params      json.RawMessage `json:"params"`
	Status      string          `json:"status"`
	ExecutionID uuid.UUID       `json:"execution_id"`
	Error       string          `json:"error"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

type planView struct {
	ID        uuid.UUID        `json:"id"`
	SiteID    uuid.UUID        `json:"site_id"`
	HostID    uuid.UUID        `json:"host_id"`
	AgentID   uuid.UUID        `json:"agent_id"`
	Status    string           `json:"status"`
	Actions   []planActionView `json:"actions"`
	CreatedAt time.Time        `json:"created_at"`
	UpdatedAt time.Time        `json:"updated_at"`
}

func viewPlan(p store.Plan) planView {
	out := planView{
		ID: p.ID, SiteID: p.SiteID, HostID: p.HostID, AgentID: p.AgentID, Status: p.Status,
		Actions:   make([]planActionView, 0, len(p.Actions)),
		CreatedAt: p.CreatedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC(),
	}
	for _, act := range p.Actions {
		av := planActionView{
			ID: act.ID, Seq: act.Seq, Type: act.Type, Params: jsonObject(act.Params),
			Status: act.Status, ExecutionID: act.ExecutionID, Error: act.Error, UpdatedAt: act.UpdatedAt.UTC(),
		}
		if act.VMID != uuid.Nil {
			id := act.VMID
			av.VMID = &id
		}
		out.Actions = append(out.Actions, av)
	}
	return out
}

type executionView struct {
	ID         uuid.UUID  `json:"id"`
	PlanID     uuid.UUID  `json:"plan_id"`
	ActionID   uuid.UUID  `json:"action_id"`
	Status     string     `json:"status"`
	Error      string     `json:"error"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	CreatedAt  time.Time  `json:"created_at"`
}

func viewExecution(e store.Execution) executionView {
	return executionView{
		ID: e.ID, PlanID: e.PlanID, ActionID: e.ActionID, Status: e.Status, Error: e.Error,
		StartedAt: utcPtr(e.StartedAt), FinishedAt: utcPtr(e.FinishedAt), CreatedAt: e.CreatedAt.UTC(),
	}
}

type auditEventView struct {
	ID        uuid.UUID `json:"id"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	Result    string    `json:"result"`
	RequestID string    `json:"request_id"`
	At        time.Time `json:"at"`
}

func viewAuditEvent(e store.AuditEvent) auditEventView {
	return auditEventView{ID: e.ID, Actor: e.Actor, Action: e.Action, Target: e.Target, Result: e.Result, RequestID: e.RequestID, At: e.At.UTC()}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// knownObject is nil (so omitted) for a JSON object that is absent or
// empty, the store's way of saying "unknown".
func knownObject(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "{}" || string(raw) == "null" {
		return nil
	}
	return raw
}

// jsonObject makes sure a JSON column is emitted as an object, never null.
func jsonObject(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("{}")
	}
	return raw
}
