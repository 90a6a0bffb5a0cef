package hub_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/store"
)

// lookupHookStore runs a hook once, around the first pending-plans query
// that covers a given agent: the hello's lookup. It injects "a plan is
// stored while the hello is being served" at a chosen point, instead of
// hoping the scheduler produces it.
type lookupHookStore struct {
	store.Store
	agent  atomic.Pointer[uuid.UUID]
	before func()
	after  func()
	once   sync.Once
}

func (s *lookupHookStore) PendingPlansOf(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID][]store.Plan, error) {
	a := s.agent.Load()
	hook := a != nil && slices.Contains(ids, *a)
	if hook && s.before != nil {
		s.once.Do(s.before)
	}
	plans, err := s.Store.PendingPlansOf(ctx, ids)
	if hook && s.after != nil {
		s.once.Do(s.after)
	}
	return plans, err
}

// PendingPlans goes through PendingPlansOf, so a hello served before the
// hub's batcher runs is hooked too.
func (s *lookupHookStore) PendingPlans(ctx context.Context, agentID uuid.UUID) ([]store.Plan, error) {
	plans, err := s.PendingPlansOf(ctx, []uuid.UUID{agentID})
	return plans[agentID], err
}

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
			hs := &lookupHookStore{}
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
				hs.before = submit
			case "after the query":
				hs.after = submit
			}
			hs.agent.Store(&a.id)

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
