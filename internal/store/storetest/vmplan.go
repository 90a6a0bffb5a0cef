package storetest

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
)

// testCreateVMWithPlan checks that a VM and the plan creating it are
// stored together or not at all: every refused call leaves both tenants'
// VMs, plans and executions exactly as they were, and frees what it
// tried to take (ids, name) for the next attempt.
func testCreateVMWithPlan(t *testing.T, f *fixture) {
	mine, theirs := newScope(f), newScope(f)
	foreign := f.vm(theirs.site, theirs.host.ID)
	taken := f.vm(mine.site, mine.host.ID)
	existing := f.plan(mine.agent, taken.ID)

	// newVMPlan is a fresh VM of mine and the one-action plan creating it.
	newVMPlan := func() (store.VM, store.Plan) {
		vm := f.newVM(mine.site, mine.host.ID)
		p := f.newPlan(mine.agent, base, vm.ID)
		p.Actions[0].Type = store.ActionMicroVMCreate
		return vm, p
	}
	// snapshot is everything a refused call could have left behind.
	snapshot := func(t *testing.T) []any {
		t.Helper()
		var out []any
		for _, sc := range []scope{mine, theirs} {
			vms, _, err := f.s.ListVMs(f.ctx, sc.tenant.ID, store.VMFilter{IncludeDeleted: true}, store.Page{Limit: 100})
			require.NoError(t, err)
			plans, _, err := f.s.ListPlans(f.ctx, sc.tenant.ID, store.PlanFilter{}, store.Page{Limit: 100})
			require.NoError(t, err)
			pending, err := f.s.PendingPlans(f.ctx, sc.agent.ID)
			require.NoError(t, err)
			out = append(out, vms, plans, pending)
		}
		return out
	}

	tests := []struct {
		name    string
		tweak   func(vm *store.VM, p *store.Plan)
		wantErr error
	}{
		{
			name:    "name of a live vm",
			tweak:   func(vm *store.VM, _ *store.Plan) { vm.Name = taken.Name },
			wantErr: store.ErrConflict,
		},
		{
			name: "second action on another tenant's vm",
			tweak: func(_ *store.VM, p *store.Plan) {
				act := p.Actions[0]
				act.ID, act.ExecutionID, act.Seq, act.Type, act.VMID = store.NewID(), store.NewID(), 1, store.ActionMicroVMStart, foreign.ID
				p.Actions = append(p.Actions, act)
			},
			wantErr: store.ErrNotFound,
		},
		{
			name:    "action id of another plan",
			tweak:   func(_ *store.VM, p *store.Plan) { p.Actions[0].ID = existing.Actions[0].ID },
			wantErr: store.ErrConflict,
		},
		{
			name:    "plan id of another plan",
			tweak:   func(_ *store.VM, p *store.Plan) { p.ID = existing.ID },
			wantErr: store.ErrConflict,
		},
		{
			name:    "vm id of another vm",
			tweak:   func(vm *store.VM, p *store.Plan) { vm.ID, p.Actions[0].VMID = taken.ID, taken.ID },
			wantErr: store.ErrConflict,
		},
		{
			name:    "site of another tenant",
			tweak:   func(vm *store.VM, _ *store.Plan) { vm.SiteID = theirs.site.ID },
			wantErr: store.ErrNotFound,
		},
	}
	// The cases share the fixture's objects and none may change them, so
	// they run in order, each checking the store against the one before.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vm, p := newVMPlan()
			orig, origPlan := vm, p
			p.Actions = slices.Clone(p.Actions) // tweaks must not reach origPlan
			tc.tweak(&vm, &p)
			before := snapshot(t)
			require.ErrorIs(t, f.s.CreateVMWithPlan(f.ctx, vm, p), tc.wantErr)
			require.Equal(t, before, snapshot(t), "a refused CreateVMWithPlan wrote something")
			for _, a := range p.Actions {
				_, err := f.s.GetExecution(f.ctx, mine.tenant.ID, a.ExecutionID)
				require.ErrorIs(t, err, store.ErrNotFound, "execution of a refused plan")
			}

			// Nothing of the refused attempt holds on: the untweaked VM
			// and plan, with the same ids and name, go in.
			require.NoError(t, f.s.CreateVMWithPlan(f.ctx, orig, origPlan), "after a refused attempt")
			requireCreated(t, f, orig, origPlan)
		})
	}

	t.Run("created", func(t *testing.T) {
		vm, p := newVMPlan()
		vm.Spec = json.RawMessage(`{"disk_image": "/img/alpine.raw", "cloud_init": {"user_data": "#cloud-config"}}`)
		require.NoError(t, f.s.CreateVMWithPlan(f.ctx, vm, p))
		requireCreated(t, f, vm, p)

		dup := f.newVM(mine.site, mine.host.ID)
		dup.Name = vm.Name
		require.ErrorIs(t, f.s.CreateVM(f.ctx, dup), store.ErrConflict, "the created vm holds its name")
		pending, err := f.s.PendingPlans(f.ctx, mine.agent.ID)
		require.NoError(t, err)
		require.Contains(t, ids(pending, func(p store.Plan) uuid.UUID { return p.ID }), p.ID,
			"the agent sees the plan as pending")
		_, err = f.s.GetVM(f.ctx, theirs.tenant.ID, vm.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "another tenant's vm")
	})
}

// requireCreated checks that vm and p are stored as given, with one
// pending execution per action.
func requireCreated(t *testing.T, f *fixture, vm store.VM, p store.Plan) {
	t.Helper()
	want := vm
	want.CreatedAt, want.UpdatedAt = ts(vm.CreatedAt), ts(vm.UpdatedAt)
	got, err := f.s.GetVM(f.ctx, vm.TenantID, vm.ID)
	require.NoError(t, err)
	requireVM(t, want, got)
	stored, err := f.s.GetPlan(f.ctx, p.TenantID, p.ID)
	require.NoError(t, err)
	requirePlan(t, normalisePlan(p), stored)
	requireExecutions(t, f, stored, store.StatusPending)
}
