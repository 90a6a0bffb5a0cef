package hub

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// planLookupBatch bounds the agents of one pending-plans query.
const planLookupBatch = 256

// planLookupQueue bounds the hellos waiting for their pending plans; a
// hello beyond it waits for room (its session's context still ends it).
const planLookupQueue = 4096

// planLookup reads the pending plans of hellos in batches: a reconnect
// storm is thousands of hellos a second, nearly all of agents with no
// plan pending, and one query per hello was a measurable share of the
// server's CPU. A batch is whatever is queued when the loop comes round
// (up to planLookupBatch), so a lone hello waits for no timer.
type planLookup struct {
	hub  *Hub
	reqs chan planRequest
	// running is set while run serves reqs; before Run (and after it)
	// a lookup queries the store itself.
	running atomic.Bool
}

type planRequest struct {
	agentID uuid.UUID
	reply   chan<- planReply
}

type planReply struct {
	plans []store.Plan
	err   error
}

func newPlanLookup(h *Hub) *planLookup {
	return &planLookup{hub: h, reqs: make(chan planRequest, planLookupQueue)}
}

// pending returns the agent's non-terminal plans, oldest first.
func (l *planLookup) pending(ctx context.Context, agentID uuid.UUID) ([]store.Plan, error) {
	if !l.running.Load() {
		return l.hub.store.PendingPlans(ctx, agentID)
	}
	reply := make(chan planReply, 1)
	select {
	case l.reqs <- planRequest{agentID: agentID, reply: reply}:
	case <-ctx.Done():
		return nil, fmt.Errorf("listing pending plans of agent %s: %w", agentID, ctx.Err())
	}
	select {
	case r := <-reply:
		return r.plans, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("listing pending plans of agent %s: %w", agentID, ctx.Err())
	}
}

// run answers lookups until ctx ends. The hub closes and waits for every
// session before it stops its batchers, so no hello is left waiting; a
// request still queued then belongs to a session already gone.
func (l *planLookup) run(ctx context.Context) {
	l.running.Store(true)
	defer l.running.Store(false)
	batch := make([]planRequest, 0, planLookupBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-l.reqs:
			batch = append(batch[:0], r)
		}
	drain:
		for len(batch) < planLookupBatch {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		l.answer(ctx, batch)
	}
}

// answer runs one query for a batch and replies to each request.
func (l *planLookup) answer(ctx context.Context, batch []planRequest) {
	ids := make([]uuid.UUID, len(batch))
	for i, r := range batch {
		ids[i] = r.agentID
	}
	rctx, cancel := context.WithTimeout(ctx, clusterReadTimeout)
	byAgent, err := l.hub.store.PendingPlansOf(rctx, ids)
	cancel()
	for _, r := range batch {
		r.reply <- planReply{plans: byAgent[r.agentID], err: err}
	}
}
