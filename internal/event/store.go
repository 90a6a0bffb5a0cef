package event

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// HostPatch is the object of a host.updated event that carries only what
// one write changed about a host: heartbeats (10,000 a second at full
// scale) and online/offline transitions are published from what was
// written, without reading the host back. Zero fields are unknown, not
// empty: a receiver merges the patch into the host it holds (in JSON,
// absent fields are left as they are). Online is always meaningful.
type HostPatch struct {
	ID       uuid.UUID
	TenantID uuid.UUID
	AgentID  uuid.UUID
	Online   bool
	// LastSeenAt is zero when the write did not change it.
	LastSeenAt time.Time
	// Facts, NetBird and Usage are nil when the write did not change them.
	Facts   json.RawMessage
	NetBird json.RawMessage
	Usage   json.RawMessage
}

// rereadTimeout bounds the reads done after a mutation to publish its
// result; they run even when the caller's context ended, since the
// mutation itself happened.
const rereadTimeout = 5 * time.Second

// Store decorates a store.Store: after every successful mutation it
// publishes what changed to the broker. Failed mutations publish
// nothing. Reads pass through. Build it with NewStore.
type Store struct {
	store.Store
	Broker *Broker
	log    *slog.Logger
}

// NewStore wraps st so that its mutations are published to b. A nil log
// discards the (rare) failures to read back a changed object.
func NewStore(st store.Store, b *Broker, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Store{Store: st, Broker: b, log: log}
}

var _ store.Store = (*Store)(nil)

func (s *Store) publish(typ string, tenantID, id uuid.UUID, at time.Time, obj any) {
	s.Broker.Publish(Event{Type: typ, TenantID: tenantID, ID: id, At: at, Object: obj})
}

// rereadCtx detaches a read-back from the caller's cancellation.
func rereadCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), rereadTimeout)
}

func (s *Store) lost(what string, id uuid.UUID, err error) {
	s.log.Warn("reading back a changed object for the event stream", "object", what, "id", id, "err", err)
}

// CreateSite publishes site.updated.
func (s *Store) CreateSite(ctx context.Context, site store.Site) error {
	if err := s.Store.CreateSite(ctx, site); err != nil {
		return err
	}
	s.publish(TypeSiteUpdated, site.TenantID, site.ID, site.UpdatedAt, site)
	return nil
}

// UpdateSite publishes site.updated.
func (s *Store) UpdateSite(ctx context.Context, tenantID, id uuid.UUID, patch store.SitePatch, now time.Time) (store.Site, error) {
	site, err := s.Store.UpdateSite(ctx, tenantID, id, patch, now)
	if err != nil {
		return site, err
	}
	s.publish(TypeSiteUpdated, tenantID, id, site.UpdatedAt, site)
	return site, nil
}

// DeleteSite publishes site.deleted with the site as it was.
func (s *Store) DeleteSite(ctx context.Context, tenantID, id uuid.UUID) error {
	site, getErr := s.Store.GetSite(ctx, tenantID, id)
	if err := s.Store.DeleteSite(ctx, tenantID, id); err != nil {
		return err
	}
	if getErr != nil {
		// Deleted, but unread: the id alone still tells subscribers.
		site = store.Site{ID: id, TenantID: tenantID}
	}
	s.publish(TypeSiteDeleted, tenantID, id, time.Time{}, site)
	return nil
}

// ConsumeEnrollment publishes agent.updated and host.updated.
func (s *Store) ConsumeEnrollment(ctx context.Context, e store.Enrollment) (store.Agent, store.Host, store.EnrollmentToken, error) {
	agent, host, tok, err := s.Store.ConsumeEnrollment(ctx, e)
	if err != nil {
		return agent, host, tok, err
	}
	s.publish(TypeAgentUpdated, agent.TenantID, agent.ID, e.Now, agent)
	s.publish(TypeHostUpdated, host.TenantID, host.ID, e.Now, host)
	return agent, host, tok, nil
}

// RevokeAgent publishes agent.updated.
func (s *Store) RevokeAgent(ctx context.Context, tenantID, id uuid.UUID, at time.Time) (store.Agent, error) {
	agent, err := s.Store.RevokeAgent(ctx, tenantID, id, at)
	if err != nil {
		return agent, err
	}
	s.publish(TypeAgentUpdated, agent.TenantID, agent.ID, at, agent)
	return agent, nil
}

// RotateAgentCert publishes agent.updated.
func (s *Store) RotateAgentCert(ctx context.Context, id uuid.UUID, serial string, expiresAt time.Time) error {
	if err := s.Store.RotateAgentCert(ctx, id, serial, expiresAt); err != nil {
		return err
	}
	s.publishAgent(ctx, id, time.Time{})
	return nil
}

// SetAgentOnline publishes agent.updated and a host.updated patch with
// the online flag.
func (s *Store) SetAgentOnline(ctx context.Context, id uuid.UUID, online bool, version string, at time.Time) error {
	if err := s.Store.SetAgentOnline(ctx, id, online, version, at); err != nil {
		return err
	}
	if agent, ok := s.publishAgent(ctx, id, at); ok {
		s.publish(TypeHostUpdated, agent.TenantID, agent.HostID, at, HostPatch{
			ID: agent.HostID, TenantID: agent.TenantID, AgentID: agent.ID,
			Online: online, LastSeenAt: at.UTC().Truncate(time.Microsecond),
		})
	}
	return nil
}

func (s *Store) publishAgent(ctx context.Context, id uuid.UUID, at time.Time) (store.Agent, bool) {
	rctx, cancel := rereadCtx(ctx)
	defer cancel()
	agent, err := s.Store.GetAgent(rctx, id)
	if err != nil {
		s.lost("agent", id, err)
		return agent, false
	}
	s.publish(TypeAgentUpdated, agent.TenantID, agent.ID, at, agent)
	return agent, true
}

// MarkStaleAgentsOffline publishes, per agent marked offline,
// agent.updated, a host.updated patch (offline) and vm.updated for each of
// its VMs now unknown.
func (s *Store) MarkStaleAgentsOffline(ctx context.Context, cutoff time.Time) ([]store.Agent, error) {
	agents, err := s.Store.MarkStaleAgentsOffline(ctx, cutoff)
	if err != nil {
		return agents, err
	}
	if len(agents) == 0 {
		return agents, nil
	}
	rctx, cancel := rereadCtx(ctx)
	defer cancel()
	for _, agent := range agents {
		s.publish(TypeAgentUpdated, agent.TenantID, agent.ID, time.Time{}, agent)
		s.publish(TypeHostUpdated, agent.TenantID, agent.HostID, time.Time{}, HostPatch{
			ID: agent.HostID, TenantID: agent.TenantID, AgentID: agent.ID, Online: false,
		})
		s.publishUnknownVMs(rctx, agent)
	}
	return agents, nil
}

// publishUnknownVMs publishes the VMs of agent's host whose actual state
// is unknown (those the sweep just changed, and any already unknown:
// re-announcing them is harmless).
func (s *Store) publishUnknownVMs(ctx context.Context, agent store.Agent) {
	page := store.Page{Limit: 500}
	for {
		vms, more, err := s.Store.ListVMs(ctx, agent.TenantID, store.VMFilter{HostID: agent.HostID}, page)
		if err != nil {
			s.lost("vms of host", agent.HostID, err)
			return
		}
		for _, vm := range vms {
			if vm.ActualState == store.VMUnknown {
				s.publish(TypeVMUpdated, vm.TenantID, vm.ID, vm.UpdatedAt, vm)
			}
		}
		if !more || len(vms) == 0 {
			return
		}
		page.After = vms[len(vms)-1].ID
	}
}

// UpsertHostStates publishes one host.updated patch per state, built from
// the state itself (no read: this runs at heartbeat rate). A patch from a
// heartbeat carries the online flag and last_seen_at, and facts, netbird
// and usage only when the heartbeat changed them.
func (s *Store) UpsertHostStates(ctx context.Context, states []store.HostState) error {
	if err := s.Store.UpsertHostStates(ctx, states); err != nil {
		return err
	}
	for i := range states {
		st := &states[i]
		seen := st.LastSeenAt.UTC().Truncate(time.Microsecond)
		s.publish(TypeHostUpdated, st.TenantID, st.HostID, seen, HostPatch{
			ID: st.HostID, TenantID: st.TenantID, AgentID: st.AgentID, Online: true,
			LastSeenAt: seen, Facts: st.Facts, NetBird: st.NetBird, Usage: st.Usage,
		})
	}
	return nil
}

// CreateVM publishes vm.updated.
func (s *Store) CreateVM(ctx context.Context, vm store.VM) error {
	if err := s.Store.CreateVM(ctx, vm); err != nil {
		return err
	}
	s.publish(TypeVMUpdated, vm.TenantID, vm.ID, vm.UpdatedAt, vm)
	return nil
}

// SetVMDesiredState publishes vm.updated.
func (s *Store) SetVMDesiredState(ctx context.Context, tenantID, id uuid.UUID, desired string, at time.Time) error {
	if err := s.Store.SetVMDesiredState(ctx, tenantID, id, desired, at); err != nil {
		return err
	}
	s.publishVM(ctx, tenantID, id)
	return nil
}

func (s *Store) publishVM(ctx context.Context, tenantID, id uuid.UUID) {
	rctx, cancel := rereadCtx(ctx)
	defer cancel()
	vm, err := s.Store.GetVM(rctx, tenantID, id)
	if err != nil {
		s.lost("vm", id, err)
		return
	}
	s.publishVMState(vm)
}

// publishVMState publishes vm.deleted for a VM that is gone (its actual
// state is deleted, so lists no longer show it), vm.updated otherwise.
func (s *Store) publishVMState(vm store.VM) {
	typ := TypeVMUpdated
	if vm.ActualState == store.VMDeleted {
		typ = TypeVMDeleted
	}
	s.publish(typ, vm.TenantID, vm.ID, vm.UpdatedAt, vm)
}

// ReportVMStates publishes an event for each VM whose state changed.
func (s *Store) ReportVMStates(ctx context.Context, hostID uuid.UUID, reports []store.VMStateReport, at time.Time) ([]store.VM, error) {
	changed, err := s.Store.ReportVMStates(ctx, hostID, reports, at)
	if err != nil {
		return changed, err
	}
	for _, vm := range changed {
		s.publishVMState(vm)
	}
	return changed, nil
}

// CreatePlan publishes plan.updated. The plan is published as given (no
// read-back): this is on the plan dispatch path.
func (s *Store) CreatePlan(ctx context.Context, p store.Plan) error {
	if err := s.Store.CreatePlan(ctx, p); err != nil {
		return err
	}
	s.publish(TypePlanUpdated, p.TenantID, p.ID, p.UpdatedAt, p)
	return nil
}

// CreateVMWithPlan publishes vm.updated then plan.updated, both as
// given (no read-back), once the transaction holding both committed.
func (s *Store) CreateVMWithPlan(ctx context.Context, vm store.VM, p store.Plan) error {
	if err := s.Store.CreateVMWithPlan(ctx, vm, p); err != nil {
		return err
	}
	s.publish(TypeVMUpdated, vm.TenantID, vm.ID, vm.UpdatedAt, vm)
	s.publish(TypePlanUpdated, p.TenantID, p.ID, p.UpdatedAt, p)
	return nil
}

// MarkPlanDispatched publishes plan.updated with the plan the store
// returns. A repeated acknowledgement republishes the plan unchanged,
// which subscribers merge as a no-op.
func (s *Store) MarkPlanDispatched(ctx context.Context, agentID, planID uuid.UUID, at time.Time) (store.Plan, error) {
	p, err := s.Store.MarkPlanDispatched(ctx, agentID, planID, at)
	if err != nil {
		return p, err
	}
	s.publish(TypePlanUpdated, p.TenantID, p.ID, p.UpdatedAt, p)
	return p, nil
}

// ApplyActionResult publishes plan.updated and, when the result carries
// the VM's new state, an event for the VM.
func (s *Store) ApplyActionResult(ctx context.Context, agentID uuid.UUID, r store.ActionResult) (store.Plan, error) {
	p, err := s.Store.ApplyActionResult(ctx, agentID, r)
	if err != nil {
		return p, err
	}
	s.publish(TypePlanUpdated, p.TenantID, p.ID, r.At, p)
	if r.VMState == "" {
		return p, nil
	}
	for _, act := range p.Actions {
		if act.ID == r.ActionID && act.VMID != uuid.Nil {
			s.publishVM(ctx, p.TenantID, act.VMID)
			break
		}
	}
	return p, nil
}
