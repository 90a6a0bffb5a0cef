package event

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
)

// want is one expected event.
type want struct {
	typ string
	id  uuid.UUID
}

// decoratorEnv is an event.Store over a real SQLite store, with one
// subscriber per tenant taken fresh for each step.
type decoratorEnv struct {
	t      *testing.T
	ctx    context.Context
	st     *Store
	b      *Broker
	tenant uuid.UUID
	other  uuid.UUID
}

func newDecoratorEnv(t *testing.T) *decoratorEnv {
	t.Helper()
	raw, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "nkudo.db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, raw.Close()) })
	b := NewBroker(Options{})
	e := &decoratorEnv{t: t, ctx: t.Context(), st: NewStore(raw, b, nil), b: b, tenant: store.NewID(), other: store.NewID()}
	for _, id := range []uuid.UUID{e.tenant, e.other} {
		require.NoError(t, raw.CreateTenant(e.ctx, store.Tenant{ID: id, Name: id.String(), CreatedAt: clock}))
	}
	return e
}

// step runs fn and checks that exactly the wanted events reached the
// tenant's subscriber, in order, and nothing reached the other tenant's.
func (e *decoratorEnv) step(name string, fn func() error, wantErr bool, events ...want) []Event {
	e.t.Helper()
	mine, _, _ := e.b.Subscribe(e.tenant, 0)
	defer mine.Close()
	theirs, _, _ := e.b.Subscribe(e.other, 0)
	defer theirs.Close()
	err := fn()
	if wantErr {
		require.Error(e.t, err, name)
		requireNothing(e.t, mine)
		return nil
	}
	require.NoError(e.t, err, name)
	got := drain(e.t, mine, len(events))
	for i, w := range events {
		require.Equal(e.t, w.typ, got[i].Type, "%s: event %d", name, i)
		require.Equal(e.t, w.id, got[i].ID, "%s: event %d", name, i)
		require.Equal(e.t, e.tenant, got[i].TenantID, "%s: event %d", name, i)
		require.NotNil(e.t, got[i].Object, "%s: event %d", name, i)
	}
	requireNothing(e.t, mine)
	requireNothing(e.t, theirs)
	return got
}

func TestStorePublishesEachMutation(t *testing.T) {
	t.Parallel()
	e := newDecoratorEnv(t)
	ctx, st := e.ctx, e.st

	site := store.Site{ID: store.NewID(), TenantID: e.tenant, Name: "lab", CreatedAt: clock, UpdatedAt: clock}
	e.step("create site", func() error { return st.CreateSite(ctx, site) }, false, want{TypeSiteUpdated, site.ID})
	e.step("create duplicate site", func() error {
		dup := site
		dup.ID = store.NewID()
		return st.CreateSite(ctx, dup)
	}, true)
	name := "lab-2"
	got := e.step("update site", func() error {
		_, err := st.UpdateSite(ctx, e.tenant, site.ID, store.SitePatch{Name: &name}, clock)
		return err
	}, false, want{TypeSiteUpdated, site.ID})
	require.Equal(t, "lab-2", got[0].Object.(store.Site).Name)
	e.step("update another tenant's site", func() error {
		_, err := st.UpdateSite(ctx, e.other, site.ID, store.SitePatch{Name: &name}, clock)
		return err
	}, true)

	tokHash := sha256.Sum256([]byte("token"))
	require.NoError(t, st.CreateEnrollmentToken(ctx, store.EnrollmentToken{
		ID: store.NewID(), TenantID: e.tenant, SiteID: site.ID, Hash: tokHash[:],
		ExpiresAt: clock.Add(time.Hour), MaxUses: 1, CreatedAt: clock,
	}))
	enr := store.Enrollment{
		TokenHash: tokHash[:], AgentID: store.NewID(), HostID: store.NewID(), Hostname: "edge-1",
		CertSerial: "01", CertExpiresAt: clock.Add(24 * time.Hour), Now: clock,
	}
	e.step("enroll", func() error {
		_, _, _, err := st.ConsumeEnrollment(ctx, enr)
		return err
	}, false, want{TypeAgentUpdated, enr.AgentID}, want{TypeHostUpdated, enr.HostID})
	e.step("enroll with a used token", func() error {
		again := enr
		again.AgentID, again.HostID = store.NewID(), store.NewID()
		_, _, _, err := st.ConsumeEnrollment(ctx, again)
		return err
	}, true)

	got = e.step("agent online", func() error {
		return st.SetAgentOnline(ctx, enr.AgentID, true, "1.0.0", clock.Add(time.Second))
	}, false, want{TypeAgentUpdated, enr.AgentID}, want{TypeHostUpdated, enr.HostID})
	require.True(t, got[1].Object.(HostPatch).Online)
	e.step("unknown agent online", func() error {
		return st.SetAgentOnline(ctx, store.NewID(), true, "1.0.0", clock)
	}, true)
	e.step("rotate cert", func() error {
		return st.RotateAgentCert(ctx, enr.AgentID, "02", clock.Add(48*time.Hour))
	}, false, want{TypeAgentUpdated, enr.AgentID})

	usage := json.RawMessage(`{"cpu_percent":12.5}`)
	got = e.step("heartbeat", func() error {
		return st.UpsertHostStates(ctx, []store.HostState{{
			HostID: enr.HostID, AgentID: enr.AgentID, TenantID: e.tenant,
			LastSeenAt: clock.Add(2 * time.Second), Usage: usage,
		}})
	}, false, want{TypeHostUpdated, enr.HostID})
	patch := got[0].Object.(HostPatch)
	require.JSONEq(t, string(usage), string(patch.Usage))
	require.Nil(t, patch.Facts, "unchanged facts are not in the patch")

	vm := store.VM{
		ID: store.NewID(), TenantID: e.tenant, SiteID: site.ID, HostID: enr.HostID, Name: "web",
		DesiredState: store.VMRunning, ActualState: store.VMCreating, VCPUs: 1, MemoryMiB: 256,
		CreatedAt: clock, UpdatedAt: clock,
	}
	e.step("create vm", func() error { return st.CreateVM(ctx, vm) }, false, want{TypeVMUpdated, vm.ID})
	e.step("create vm with a taken name", func() error {
		dup := vm
		dup.ID = store.NewID()
		return st.CreateVM(ctx, dup)
	}, true)
	e.step("report vm running", func() error {
		_, err := st.ReportVMStates(ctx, enr.HostID, []store.VMStateReport{{VMID: vm.ID, ActualState: store.VMRunning}}, clock)
		return err
	}, false, want{TypeVMUpdated, vm.ID})
	e.step("report vm running again", func() error {
		_, err := st.ReportVMStates(ctx, enr.HostID, []store.VMStateReport{{VMID: vm.ID, ActualState: store.VMRunning}}, clock)
		return err
	}, false)
	got = e.step("set desired stopped", func() error {
		return st.SetVMDesiredState(ctx, e.tenant, vm.ID, store.VMStopped, clock)
	}, false, want{TypeVMUpdated, vm.ID})
	require.Equal(t, store.VMStopped, got[0].Object.(store.VM).DesiredState, "the event carries the VM as stored")
	e.step("set desired state of another tenant's vm", func() error {
		return st.SetVMDesiredState(ctx, e.other, vm.ID, store.VMStopped, clock)
	}, true)

	plan := store.Plan{
		ID: store.NewID(), TenantID: e.tenant, SiteID: site.ID, HostID: enr.HostID, AgentID: enr.AgentID,
		Status: store.StatusPending, CreatedAt: clock, UpdatedAt: clock,
	}
	action := store.PlanAction{
		ID: store.NewID(), PlanID: plan.ID, Type: store.ActionMicroVMStop, VMID: vm.ID,
		Status: store.StatusPending, ExecutionID: store.NewID(), UpdatedAt: clock,
	}
	plan.Actions = []store.PlanAction{action}
	e.step("create plan", func() error { return st.CreatePlan(ctx, plan) }, false, want{TypePlanUpdated, plan.ID})
	dispatchedAt := clock.Add(time.Minute)
	var dispatched store.Plan
	got = e.step("dispatch plan", func() error {
		var err error
		dispatched, err = st.MarkPlanDispatched(ctx, enr.AgentID, plan.ID, dispatchedAt)
		return err
	}, false, want{TypePlanUpdated, plan.ID})
	published := got[0].Object.(store.Plan)
	require.Equal(t, store.StatusDispatched, published.Status)
	require.Equal(t, store.StatusDispatched, published.Actions[0].Status)
	require.Equal(t, dispatched, published, "the event carries the plan the store returned")
	require.Equal(t, dispatchedAt, got[0].At)
	got = e.step("dispatch plan again", func() error {
		_, err := st.MarkPlanDispatched(ctx, enr.AgentID, plan.ID, dispatchedAt.Add(time.Minute))
		return err
	}, false, want{TypePlanUpdated, plan.ID})
	require.Equal(t, dispatched, got[0].Object.(store.Plan), "a repeated ack republishes the plan unchanged")
	e.step("dispatch unknown plan", func() error {
		_, err := st.MarkPlanDispatched(ctx, enr.AgentID, store.NewID(), clock)
		return err
	}, true)
	e.step("dispatch by another agent", func() error {
		_, err := st.MarkPlanDispatched(ctx, store.NewID(), plan.ID, clock)
		return err
	}, true)
	got = e.step("action result with vm state", func() error {
		_, err := st.ApplyActionResult(ctx, enr.AgentID, store.ActionResult{
			ActionID: action.ID, Status: store.StatusSucceeded, VMState: store.VMStopped, At: clock,
		})
		return err
	}, false, want{TypePlanUpdated, plan.ID}, want{TypeVMUpdated, vm.ID})
	require.Equal(t, store.StatusSucceeded, got[0].Object.(store.Plan).Status)
	require.Equal(t, store.VMStopped, got[1].Object.(store.VM).ActualState)
	e.step("result for an unknown action", func() error {
		_, err := st.ApplyActionResult(ctx, enr.AgentID, store.ActionResult{ActionID: store.NewID(), Status: store.StatusSucceeded, At: clock})
		return err
	}, true)

	e.step("report vm deleted", func() error {
		_, err := st.ReportVMStates(ctx, enr.HostID, []store.VMStateReport{{VMID: vm.ID, ActualState: store.VMDeleted}}, clock)
		return err
	}, false, want{TypeVMDeleted, vm.ID})

	vm2 := vm
	vm2.ID, vm2.Name, vm2.ActualState = store.NewID(), "db", store.VMRunning
	e.step("create vm 2", func() error { return st.CreateVM(ctx, vm2) }, false, want{TypeVMUpdated, vm2.ID})
	got = e.step("stale sweep", func() error {
		_, err := st.MarkStaleAgentsOffline(ctx, clock.Add(time.Hour))
		return err
	}, false, want{TypeAgentUpdated, enr.AgentID}, want{TypeHostUpdated, enr.HostID}, want{TypeVMUpdated, vm2.ID})
	require.False(t, got[1].Object.(HostPatch).Online)
	require.Equal(t, store.VMUnknown, got[2].Object.(store.VM).ActualState)
	e.step("stale sweep with nothing stale", func() error {
		_, err := st.MarkStaleAgentsOffline(ctx, clock.Add(time.Hour))
		return err
	}, false)

	vm3 := vm
	vm3.ID, vm3.Name, vm3.ActualState = store.NewID(), "cache", store.VMCreating
	plan3 := plan
	plan3.ID = store.NewID()
	plan3.Actions = []store.PlanAction{{
		ID: store.NewID(), PlanID: plan3.ID, Type: store.ActionMicroVMCreate, VMID: vm3.ID,
		Status: store.StatusPending, ExecutionID: store.NewID(), UpdatedAt: clock,
	}}
	got = e.step("create vm with plan", func() error { return st.CreateVMWithPlan(ctx, vm3, plan3) },
		false, want{TypeVMUpdated, vm3.ID}, want{TypePlanUpdated, plan3.ID})
	require.Equal(t, vm3, got[0].Object.(store.VM))
	require.Equal(t, plan3, got[1].Object.(store.Plan))
	e.step("create vm with plan, name taken", func() error {
		dup, dupPlan := vm3, plan3
		dup.ID, dupPlan.ID = store.NewID(), store.NewID()
		dupPlan.Actions = []store.PlanAction{{
			ID: store.NewID(), PlanID: dupPlan.ID, Type: store.ActionMicroVMCreate, VMID: dup.ID,
			Status: store.StatusPending, ExecutionID: store.NewID(), UpdatedAt: clock,
		}}
		return st.CreateVMWithPlan(ctx, dup, dupPlan)
	}, true)
	e.step("create vm with plan, plan refused", func() error {
		other, reused := vm3, plan3
		other.ID, other.Name = store.NewID(), "cache-2"
		// plan3's id again: the plan is refused, so the vm is not stored.
		reused.Actions = []store.PlanAction{{
			ID: store.NewID(), PlanID: reused.ID, Type: store.ActionMicroVMCreate, VMID: other.ID,
			Status: store.StatusPending, ExecutionID: store.NewID(), UpdatedAt: clock,
		}}
		return st.CreateVMWithPlan(ctx, other, reused)
	}, true)

	got = e.step("revoke agent", func() error {
		_, err := st.RevokeAgent(ctx, e.tenant, enr.AgentID, clock)
		return err
	}, false, want{TypeAgentUpdated, enr.AgentID})
	require.True(t, got[0].Object.(store.Agent).Revoked)
	e.step("revoke another tenant's agent", func() error {
		_, err := st.RevokeAgent(ctx, e.other, enr.AgentID, clock)
		return err
	}, true)

	empty := store.Site{ID: store.NewID(), TenantID: e.tenant, Name: "empty", CreatedAt: clock, UpdatedAt: clock}
	e.step("create empty site", func() error { return st.CreateSite(ctx, empty) }, false, want{TypeSiteUpdated, empty.ID})
	e.step("delete site with hosts", func() error { return st.DeleteSite(ctx, e.tenant, site.ID) }, true)
	got = e.step("delete empty site", func() error { return st.DeleteSite(ctx, e.tenant, empty.ID) }, false, want{TypeSiteDeleted, empty.ID})
	require.Equal(t, "empty", got[0].Object.(store.Site).Name)
	e.step("delete it again", func() error { return st.DeleteSite(ctx, e.tenant, empty.ID) }, true)
}
