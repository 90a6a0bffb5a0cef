package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/api"
	"github.com/kubedoio/n-kudo/internal/store"
)

// planBreakingStore, while broken, has the store refuse the plan of a VM
// create after the VM row went in: it adds a second action on a VM of
// another tenant, which only the engine's foreign keys catch, inside the
// transaction. Nothing is left behind only if the VM and the plan are
// one write.
type planBreakingStore struct {
	store.Store
	foreignVM uuid.UUID
	broken    atomic.Bool
}

func (s *planBreakingStore) CreateVMWithPlan(ctx context.Context, vm store.VM, p store.Plan) error {
	if s.broken.Load() {
		act := p.Actions[0]
		act.ID, act.ExecutionID, act.Seq, act.Type, act.VMID = store.NewID(), store.NewID(), 1, store.ActionMicroVMStart, s.foreignVM
		p.Actions = append(slices.Clone(p.Actions), act)
	}
	return s.Store.CreateVMWithPlan(ctx, vm, p)
}

func TestCreateVMFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	breaker := &planBreakingStore{foreignVM: store.NewID()}
	e := newChannelEnv(t, func(o *api.Options) { breaker.Store, o.Store = o.Store, breaker })
	ctx := context.Background()
	tenant := e.createTenant("acme")
	admin, _ := e.createKey(tenant, store.RoleAdmin)
	site := e.createSite(admin, "edge-a")
	wire := e.connect(e.enroll(admin, site, "host-a"))

	other := e.createTenant("globex")
	otherKey, _ := e.createKey(other, store.RoleAdmin)
	otherSite := e.createSite(otherKey, "edge-x")
	otherAg := e.enroll(otherKey, otherSite, "host-x")
	now := time.Now().UTC().Truncate(time.Microsecond)
	require.NoError(t, e.store.CreateVM(ctx, store.VM{
		ID: breaker.foreignVM, TenantID: other, SiteID: otherSite, HostID: otherAg.HostID, Name: "vm-x",
		DesiredState: store.VMRunning, ActualState: store.VMCreating, VCPUs: 1, MemoryMiB: 256,
		Spec: json.RawMessage(`{"disk_image":"/img/alpine.raw"}`), CreatedAt: now, UpdatedAt: now,
	}))

	body := func(name string) map[string]any {
		return map[string]any{"name": name, "site_id": site.String(), "vcpus": 1, "memory_mib": 256, "disk_image": "/img/alpine.raw"}
	}
	create := func(name string) createdVM {
		t.Helper()
		var out createdVM
		e.must(http.StatusCreated, req{method: "POST", path: "/v1/vms", key: admin, body: body(name)}).json(t, &out)
		wp, err := agentproto.DecodeData[agentproto.Plan](wire.nextOf(agentproto.TypePlan))
		require.NoError(t, err)
		require.Equal(t, out.Plan.ID, wp.PlanID, "the next plan the agent holds is the one just created")
		return out
	}
	// stored is what a refused create could have added: the ids of the
	// tenant's VMs (deleted ones too) and plans.
	stored := func() ([]uuid.UUID, []uuid.UUID) {
		t.Helper()
		vms, _, err := e.store.ListVMs(ctx, tenant, store.VMFilter{IncludeDeleted: true}, store.Page{Limit: 100})
		require.NoError(t, err)
		plans, _, err := e.store.ListPlans(ctx, tenant, store.PlanFilter{}, store.Page{Limit: 100})
		require.NoError(t, err)
		return ids(vms, func(v store.VM) uuid.UUID { return v.ID }), ids(plans, func(p store.Plan) uuid.UUID { return p.ID })
	}

	first := create("web-1")
	cases := []struct {
		name   string
		broken bool
		vm     string
		status int
		code   string
	}{
		{"plan refused by the store", true, "web-2", http.StatusNotFound, api.CodeNotFound},
		{"name taken", false, first.VM.Name, http.StatusConflict, api.CodeNameTaken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vmsBefore, plansBefore := stored()
			breaker.broken.Store(tc.broken)
			defer breaker.broken.Store(false)
			resp := e.do(req{method: "POST", path: "/v1/vms", key: admin, body: body(tc.vm)})
			require.Equal(t, tc.status, resp.status, "%s", resp.body)
			require.Equal(t, tc.code, resp.errCode(t))
			vmsAfter, plansAfter := stored()
			require.Equal(t, vmsBefore, vmsAfter, "a failed create left a vm")
			require.Equal(t, plansBefore, plansAfter, "a failed create left a plan")
		})
	}

	// The refused create holds no name, and its plan never reached the
	// agent: the next plan the agent holds is this one.
	again := create("web-2")
	vms, plans := stored()
	require.Equal(t, []uuid.UUID{first.VM.ID, again.VM.ID}, vms)
	require.Equal(t, []uuid.UUID{first.Plan.ID, again.Plan.ID}, plans)
}

func ids[T any](items []T, id func(T) uuid.UUID) []uuid.UUID {
	out := make([]uuid.UUID, len(items))
	for i, it := range items {
		out[i] = id(it)
	}
	return out
}
