package hub_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/storetest"
)

// TestPlanSubmittedDuringHello: a plan stored and dispatched (as the API
// does) at any point of the agent's hello reaches the session exactly
// once, after the plans already pending: before the hello's pending-plans
// query (it is both read and parked), after it (parked only), or once
// the session is ready (sent directly).
func TestPlanSubmittedDuringHello(t *testing.T) {
	t.Parallel()
	for _, at := range []string{"before the query", "after the query", "session ready"} {
		t.Run(at, func(t *testing.T) {
			t.Parallel()
			hs := &storetest.PendingHook{}
			e := newEnv(t, func(o *hub.Options) { hs.Store = o.Store; o.Store = hs })
			a := e.enroll()
			vm := e.createVM(a, store.VMStopped)
			old := e.createPlan(a, vm, store.ActionMicroVMStart)
			// submit is what the API does: commit, then dispatch. It may
			// run on the hub's lookup goroutine, so it records its error
			// instead of failing the test there.
			p := newPlan(e, a, vm, store.ActionMicroVMStop)
			var submitted atomic.Bool
			var submitErr error
			submit := func() {
				submitErr = e.st.CreatePlan(context.Background(), p)
				e.hub.DispatchPlan(p)
				submitted.Store(true)
			}
			switch at {
			case "before the query":
				hs.Before = submit
			case "after the query":
				hs.After = submit
			}
			hs.Arm(a.id)

			c, _ := e.connect(a)
			require.Equal(t, old.ID, decodePlan(t, c.expect(agentproto.TypePlan)).PlanID)
			if at == "session ready" {
				c.roundTrip() // the hello is fully served
				submit()
			}
			require.True(t, submitted.Load(), "the hook ran during the hello")
			require.NoError(t, submitErr)
			require.Equal(t, p.ID, decodePlan(t, c.expect(agentproto.TypePlan)).PlanID)
			c.roundTrip() // and nothing else (no second copy) before it
		})
	}
}
