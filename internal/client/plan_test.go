package client_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/internal/client/clienttest"
	"github.com/kubedoio/n-kudo/internal/store"
)

func TestCreatePlan(t *testing.T) {
	t.Parallel()
	srv := clienttest.Start(t)
	ctx := context.Background()
	tn := srv.NewTenant(t, "acme")
	c := srv.Client(t, tn.OperatorKey, "")
	site, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: "fra1"})
	require.NoError(t, err)
	h := clienttest.HostFixture{SiteID: site.ID, AgentID: uuid.New(), HostID: uuid.New(), Hostname: "edge-1", Simulated: true, Online: true, SeenAt: time.Now()}
	srv.EnrollHost(t, c, h)
	vm := uuid.New()
	now := time.Now().UTC()
	require.NoError(t, srv.Store.CreateVM(ctx, store.VM{ID: vm, TenantID: tn.ID, SiteID: site.ID, HostID: h.HostID, Name: "web-1",
		DesiredState: store.VMStopped, ActualState: store.VMStopped, VCPUs: 1, MemoryMiB: 256, CreatedAt: now, UpdatedAt: now}))

	req := client.CreatePlanRequest{HostID: h.HostID, Actions: []client.PlanActionSubmit{
		{Type: client.ActionMicroVMStart, VMID: &vm, Params: json.RawMessage(`{}`)},
	}}
	key := client.NewIdempotencyKey()
	p, err := c.CreatePlan(ctx, site.ID, req, client.WithIdempotencyKey(key))
	require.NoError(t, err)
	require.Equal(t, site.ID, p.SiteID)
	require.False(t, client.Terminal(p.Status))
	require.Len(t, p.Actions, 1)
	require.Equal(t, client.ActionMicroVMStart, p.Actions[0].Type)
	require.NotEqual(t, uuid.Nil, p.Actions[0].ExecutionID)

	again, err := c.CreatePlan(ctx, site.ID, req, client.WithIdempotencyKey(key))
	require.NoError(t, err)
	require.Equal(t, p.ID, again.ID, "a retry with the same key is the same plan")

	got, err := c.GetPlan(ctx, p.ID)
	require.NoError(t, err)
	require.Equal(t, p.Actions[0].ExecutionID, got.Actions[0].ExecutionID)
	exec, err := c.GetExecution(ctx, p.Actions[0].ExecutionID)
	require.NoError(t, err)
	require.Equal(t, p.ID, exec.PlanID)

	tests := []struct {
		name string
		site uuid.UUID
		req  client.CreatePlanRequest
		want error
	}{
		{"unknown action", site.ID, client.CreatePlanRequest{HostID: h.HostID, Actions: []client.PlanActionSubmit{{Type: "Explode", VMID: &vm}}}, client.ErrInvalidArgument},
		{"no actions", site.ID, client.CreatePlanRequest{HostID: h.HostID}, client.ErrInvalidArgument},
		{"unknown site", uuid.New(), req, client.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := c.CreatePlan(ctx, tt.site, tt.req)
			require.ErrorIs(t, err, tt.want)
		})
	}
	viewer := srv.Client(t, tn.View, "")
	_, err = viewer.CreatePlan(ctx, site.ID, req)
	require.True(t, client.IsForbidden(err), "got %v", err)
}
