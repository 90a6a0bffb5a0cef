package executor

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agent/statefile"
	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// maxDone bounds the remembered ids of finished plans, used only to refuse
// a plan the server re-sends before it has processed all its results.
const maxDone = 1024

// MaxPending bounds the queued plans, so a runaway server cannot fill the
// agent's disk.
const MaxPending = 1024

const queueVersion = 1

// ErrQueueFull: MaxPending plans are waiting.
var ErrQueueFull = errors.New("plan queue full")

type queueFile struct {
	Version int               `json:"version"`
	Pending []agentproto.Plan `json:"pending"`
	Done    []uuid.UUID       `json:"done"`
}

// Queue is the persistent list of plans the agent holds. Safe for
// concurrent use: the session adds, the executor takes.
type Queue struct {
	path string
	wake chan struct{}

	mu sync.Mutex // guards the following
	st queueFile
}

// OpenQueue loads the queue stored at path, or starts an empty one.
func OpenQueue(path string) (*Queue, error) {
	q := &Queue{path: path, wake: make(chan struct{}, 1), st: queueFile{Version: queueVersion}}
	if _, err := statefile.RemoveStale(path); err != nil {
		return nil, fmt.Errorf("opening plan queue: %w", err)
	}
	err := statefile.Read(path, &q.st)
	switch {
	case errors.Is(err, os.ErrNotExist):
		q.st = queueFile{Version: queueVersion}
	case err != nil:
		return nil, fmt.Errorf("opening plan queue: %w", err)
	case q.st.Version != queueVersion:
		return nil, fmt.Errorf("opening plan queue %s: %w: version %d", path, statefile.ErrCorrupt, q.st.Version)
	}
	for i, p := range q.st.Pending {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("opening plan queue %s: plan %d: %w: %w", path, i, statefile.ErrCorrupt, err)
		}
	}
	if len(q.st.Pending) > 0 {
		q.wake <- struct{}{}
	}
	return q, nil
}

// Add persists a plan and reports whether it is new. A plan already
// queued or recently finished is not queued again (the server re-sends
// non-terminal plans after every reconnect).
func (q *Queue) Add(p agentproto.Plan) (bool, error) {
	if err := p.Validate(); err != nil {
		return false, fmt.Errorf("queueing plan: %w", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if slices.Contains(q.st.Done, p.PlanID) || slices.ContainsFunc(q.st.Pending, func(x agentproto.Plan) bool { return x.PlanID == p.PlanID }) {
		return false, nil
	}
	if len(q.st.Pending) >= MaxPending {
		return false, fmt.Errorf("queueing plan %s: %w", p.PlanID, ErrQueueFull)
	}
	next := q.st
	next.Pending = append(slices.Clip(q.st.Pending), p)
	if err := statefile.Write(q.path, next); err != nil {
		return false, fmt.Errorf("queueing plan %s: %w", p.PlanID, err)
	}
	q.st = next
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true, nil
}

// Head returns the oldest pending plan.
func (q *Queue) Head() (agentproto.Plan, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.st.Pending) == 0 {
		return agentproto.Plan{}, false
	}
	return q.st.Pending[0], true
}

// Done removes a finished plan and remembers its id.
func (q *Queue) Done(planID uuid.UUID) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	next := queueFile{Version: queueVersion}
	for _, p := range q.st.Pending {
		if p.PlanID != planID {
			next.Pending = append(next.Pending, p)
		}
	}
	next.Done = append(slices.Clone(q.st.Done), planID)
	if over := len(next.Done) - maxDone; over > 0 {
		next.Done = next.Done[over:]
	}
	if err := statefile.Write(q.path, next); err != nil {
		return fmt.Errorf("finishing plan %s: %w", planID, err)
	}
	q.st = next
	return nil
}

// Len returns the number of pending plans.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.st.Pending)
}

// Wake is signalled when a plan may be waiting.
func (q *Queue) Wake() <-chan struct{} { return q.wake }
