package loadtest

import (
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
)

// planTracker pairs the moment the plan API call returned with the moment
// an agent held the plan. Both happen in this process, so both stamps come
// from one clock; whichever comes second computes the latency.
type planTracker struct {
	mu      sync.Mutex // guards the following
	entries map[uuid.UUID]*planEntry
	lat     []time.Duration
	// fromSend is request sent → agent holds the plan: an upper bound
	// that stays meaningful when the plan usually arrives first.
	fromSend []time.Duration
	// early counts plans the agent held before the API call returned
	// (the hub dispatches right after the commit); their latency is 0.
	early int
}

type planEntry struct {
	sent, created, received time.Time
}

func newPlanTracker() *planTracker {
	return &planTracker{entries: make(map[uuid.UUID]*planEntry)}
}

// created records that the API call sent at sent returned at at.
func (t *planTracker) created(id uuid.UUID, sent, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[id]
	if e == nil {
		t.entries[id] = &planEntry{sent: sent, created: at}
		return
	}
	if !e.created.IsZero() {
		return
	}
	e.sent, e.created = sent, at
	if !e.received.IsZero() {
		t.record(e)
	}
}

func (t *planTracker) received(id uuid.UUID, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[id]
	if e == nil {
		t.entries[id] = &planEntry{received: at}
		return
	}
	if !e.received.IsZero() {
		return // re-sent after a reconnect: the first receipt counts
	}
	e.received = at
	if !e.created.IsZero() {
		t.record(e)
	}
}

func (t *planTracker) record(e *planEntry) {
	d := e.received.Sub(e.created)
	if d < 0 {
		t.early++
		d = 0
	}
	t.lat = append(t.lat, d)
	t.fromSend = append(t.fromSend, max(e.received.Sub(e.sent), 0))
}

// isHeld reports whether the plan was received.
func (t *planTracker) isHeld(id uuid.UUID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[id]
	return e != nil && !e.received.IsZero()
}

// snapshot returns the latencies recorded so far (returned → held and
// sent → held), each sorted, and the early count.
func (t *planTracker) snapshot() (fromReturn, fromSend []time.Duration, early int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fromReturn, fromSend = slices.Clone(t.lat), slices.Clone(t.fromSend)
	slices.Sort(fromReturn)
	slices.Sort(fromSend)
	return fromReturn, fromSend, t.early
}

// percentile returns the p-th percentile (0..100) of sorted, by the
// nearest-rank method; 0 for an empty slice.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	rank = min(max(rank, 0), len(sorted)-1)
	return sorted[rank]
}
