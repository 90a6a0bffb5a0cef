package storetest

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// PendingHook is a store whose first pending-plans query covering one
// agent (in the hub: the lookup of that agent's hello) runs Before just
// before it reads and After just after, before the caller has the answer.
// A test puts a write at an exact point of a hello with it, instead of
// hoping the scheduler produces that order. The hooks may run on the
// hub's goroutines: they must not fail the test themselves.
type PendingHook struct {
	store.Store
	// Before and After are set before Arm; either may be nil.
	Before, After func()

	agent         atomic.Pointer[uuid.UUID]
	before, after sync.Once
}

// Arm makes the hooks watch for agent's query.
func (s *PendingHook) Arm(agent uuid.UUID) {
	s.agent.Store(&agent)
}

// PendingPlansOf implements store.Store.
func (s *PendingHook) PendingPlansOf(ctx context.Context, agentIDs []uuid.UUID) (map[uuid.UUID][]store.Plan, error) {
	a := s.agent.Load()
	hooked := a != nil && slices.Contains(agentIDs, *a)
	if hooked && s.Before != nil {
		s.before.Do(s.Before)
	}
	plans, err := s.Store.PendingPlansOf(ctx, agentIDs)
	if hooked && s.After != nil {
		s.after.Do(s.After)
	}
	return plans, err
}

// PendingPlans goes through PendingPlansOf, so a hello served before the
// hub's batcher runs is hooked too.
func (s *PendingHook) PendingPlans(ctx context.Context, agentID uuid.UUID) ([]store.Plan, error) {
	plans, err := s.PendingPlansOf(ctx, []uuid.UUID{agentID})
	return plans[agentID], err
}
