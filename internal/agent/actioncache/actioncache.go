package actioncache

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agent/statefile"
	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// Sentinel errors.
var (
	// ErrNotFound: no entry for that action id.
	ErrNotFound = errors.New("action not in cache")
	// ErrNotFinished: the action has no result yet, so it cannot be acked.
	ErrNotFinished = errors.New("action not finished")
	// ErrAlreadyFinished: the action already has a different result.
	ErrAlreadyFinished = errors.New("action already finished")
	// ErrInvalidResult: the result is not terminal or names another action.
	ErrInvalidResult = errors.New("invalid action result")
	// ErrFull: the cache holds MaxEntries unacknowledged or running
	// actions and none can be pruned.
	ErrFull = errors.New("action cache full")
	// ErrCorrupt: the cache file exists but cannot be used.
	ErrCorrupt = errors.New("action cache file unusable")
)

// Defaults for the bounds.
const (
	// DefaultMaxAge keeps acknowledged entries for a week: far longer than
	// any replay window (the server stops resending an action once it
	// stores its result), short enough to keep the file small.
	DefaultMaxAge = 7 * 24 * time.Hour
	// DefaultMaxEntries bounds the file to around a megabyte.
	DefaultMaxEntries = 4096
)

const fileVersion = 1

// State is an entry's progress.
type State string

// Entry states.
const (
	StateStarted  State = "started"
	StateFinished State = "finished"
)

// Entry is the cache's record of one action.
type Entry struct {
	ActionID  uuid.UUID `json:"action_id"`
	State     State     `json:"state"`
	StartedAt time.Time `json:"started_at"`
	// Result is set once State is StateFinished.
	Result     agentproto.ActionResult `json:"result,omitzero"`
	FinishedAt time.Time               `json:"finished_at,omitzero"`
	// Acked is true once the server acknowledged Result.
	Acked   bool      `json:"acked,omitempty"`
	AckedAt time.Time `json:"acked_at,omitzero"`
}

// Option configures a Cache.
type Option func(*Cache)

// WithMaxAge sets how long acknowledged entries are kept.
func WithMaxAge(d time.Duration) Option { return func(c *Cache) { c.maxAge = d } }

// WithMaxEntries sets the bound on the number of entries (at least 1).
func WithMaxEntries(n int) Option { return func(c *Cache) { c.maxEntries = max(n, 1) } }

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(c *Cache) { c.now = now } }

// Cache is the persistent idempotency cache. It is safe for concurrent use.
type Cache struct {
	path       string
	maxAge     time.Duration
	maxEntries int
	now        func() time.Time

	mu      sync.Mutex // guards the following and serialises file writes
	entries map[uuid.UUID]Entry
	// begun holds the actions begun by this process; a started entry not
	// in it was interrupted by a crash or restart.
	begun map[uuid.UUID]bool
}

type cacheFile struct {
	Version int     `json:"version"`
	Entries []Entry `json:"entries"`
}

// Open loads the cache at path, or starts an empty one if the file does not
// exist. The directory must exist.
func Open(path string, opts ...Option) (*Cache, error) {
	c := &Cache{
		path:       path,
		maxAge:     DefaultMaxAge,
		maxEntries: DefaultMaxEntries,
		now:        time.Now,
		entries:    make(map[uuid.UUID]Entry),
		begun:      make(map[uuid.UUID]bool),
	}
	for _, o := range opts {
		o(c)
	}
	// No Write can be in flight yet: clean what a crash left behind.
	if _, err := statefile.RemoveStale(path); err != nil {
		return nil, fmt.Errorf("opening action cache: %w", err)
	}
	var f cacheFile
	err := statefile.Read(path, &f)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return c, nil
	case err != nil:
		return nil, fmt.Errorf("opening action cache: %w: %w", ErrCorrupt, err)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("opening action cache: %w: %s has version %d, want %d", ErrCorrupt, path, f.Version, fileVersion)
	}
	for i, e := range f.Entries {
		if err := checkEntry(e); err != nil {
			return nil, fmt.Errorf("opening action cache: %w: entries[%d]: %w", ErrCorrupt, i, err)
		}
		c.entries[e.ActionID] = e
	}
	return c, nil
}

func checkEntry(e Entry) error {
	if e.ActionID == uuid.Nil {
		return errors.New("missing action id")
	}
	switch e.State {
	case StateStarted:
		if e.Acked {
			return errors.New("acked before finishing")
		}
	case StateFinished:
		if !e.Result.Terminal() || e.Result.ActionID != e.ActionID {
			return errors.New("finished without a matching terminal result")
		}
	default:
		return fmt.Errorf("unknown state %q", e.State)
	}
	return nil
}

// Begin records that actionID is starting and reports whether the caller
// should run it. It returns true only the first time an action id is seen,
// after the "started" entry is durably on disk; otherwise it returns the
// existing entry and false, and the action must not run.
func (c *Cache) Begin(actionID uuid.UUID) (Entry, bool, error) {
	if actionID == uuid.Nil {
		return Entry{}, false, fmt.Errorf("beginning action: %w: nil action id", ErrInvalidResult)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[actionID]; ok {
		return e, false, nil
	}
	now := c.now().UTC()
	dropped := c.prune(now, 1)
	if len(c.entries) >= c.maxEntries {
		c.restore(dropped)
		return Entry{}, false, fmt.Errorf("beginning action %s: %w (%d entries awaiting results or acks)", actionID, ErrFull, len(c.entries))
	}
	e := Entry{ActionID: actionID, State: StateStarted, StartedAt: now}
	c.entries[actionID] = e
	if err := c.save(); err != nil {
		delete(c.entries, actionID)
		c.restore(dropped)
		return Entry{}, false, fmt.Errorf("beginning action %s: %w", actionID, err)
	}
	c.begun[actionID] = true
	return e, true, nil
}

// Finish persists the terminal result of a started action. Finishing again
// with the same result is a no-op, so a retried Finish after an I/O error
// is safe.
func (c *Cache) Finish(actionID uuid.UUID, result agentproto.ActionResult) error {
	if !result.Terminal() {
		return fmt.Errorf("finishing action %s: %w: status %q is not terminal", actionID, ErrInvalidResult, result.Status)
	}
	if result.ActionID != actionID {
		return fmt.Errorf("finishing action %s: %w: result names action %s", actionID, ErrInvalidResult, result.ActionID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.entries[actionID]
	if !ok {
		return fmt.Errorf("finishing action %s: %w", actionID, ErrNotFound)
	}
	if old.State == StateFinished {
		if sameResult(old.Result, result) {
			return nil
		}
		return fmt.Errorf("finishing action %s: %w with status %s", actionID, ErrAlreadyFinished, old.Result.Status)
	}
	now := c.now().UTC()
	next := old
	next.State, next.Result, next.FinishedAt = StateFinished, result, now
	c.entries[actionID] = next
	if err := c.save(); err != nil {
		c.entries[actionID] = old
		return fmt.Errorf("finishing action %s: %w", actionID, err)
	}
	delete(c.begun, actionID)
	return nil
}

// Ack records that the server stored the action's result, so it is no
// longer resent. Acking an acked action is a no-op.
func (c *Cache) Ack(actionID uuid.UUID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.entries[actionID]
	switch {
	case !ok:
		return fmt.Errorf("acking action %s: %w", actionID, ErrNotFound)
	case old.State != StateFinished:
		return fmt.Errorf("acking action %s: %w", actionID, ErrNotFinished)
	case old.Acked:
		return nil
	}
	now := c.now().UTC()
	next := old
	next.Acked, next.AckedAt = true, now
	c.entries[actionID] = next
	dropped := c.prune(now, 0)
	if err := c.save(); err != nil {
		c.entries[actionID] = old
		c.restore(dropped)
		return fmt.Errorf("acking action %s: %w", actionID, err)
	}
	return nil
}

// Get returns the entry of an action.
func (c *Cache) Get(actionID uuid.UUID) (Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[actionID]
	return e, ok
}

// Unacked returns the finished entries whose results the server has not
// acknowledged, oldest result first: what to (re)send after a reconnect.
func (c *Cache) Unacked() []Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Entry
	for _, e := range c.entries {
		if e.State == StateFinished && !e.Acked {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return compare(a.FinishedAt, b.FinishedAt, a.ActionID, b.ActionID) })
	return out
}

// Interrupted returns the entries that were started but never finished by
// an earlier process (a crash or restart hit them mid-action), oldest first.
// Actions begun by this process and still running are not included.
func (c *Cache) Interrupted() []Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Entry
	for id, e := range c.entries {
		if e.State == StateStarted && !c.begun[id] {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return compare(a.StartedAt, b.StartedAt, a.ActionID, b.ActionID) })
	return out
}

// Len returns the number of entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// prune drops acknowledged entries older than maxAge, then the oldest
// acknowledged entries until room more entries fit under maxEntries. It
// returns what it dropped so a failed save can restore it. Must be called
// with c.mu held.
func (c *Cache) prune(now time.Time, room int) []Entry {
	var dropped, acked []Entry
	for id, e := range c.entries {
		if !e.Acked {
			continue
		}
		if c.maxAge > 0 && now.Sub(e.AckedAt) > c.maxAge {
			dropped = append(dropped, e)
			delete(c.entries, id)
			continue
		}
		acked = append(acked, e)
	}
	excess := len(c.entries) + room - c.maxEntries
	if excess <= 0 {
		return dropped
	}
	slices.SortFunc(acked, func(a, b Entry) int { return compare(a.AckedAt, b.AckedAt, a.ActionID, b.ActionID) })
	for _, e := range acked[:min(excess, len(acked))] {
		dropped = append(dropped, e)
		delete(c.entries, e.ActionID)
	}
	return dropped
}

// restore must be called with c.mu held.
func (c *Cache) restore(entries []Entry) {
	for _, e := range entries {
		c.entries[e.ActionID] = e
	}
}

// save must be called with c.mu held.
func (c *Cache) save() error {
	f := cacheFile{Version: fileVersion, Entries: make([]Entry, 0, len(c.entries))}
	for _, e := range c.entries {
		f.Entries = append(f.Entries, e)
	}
	slices.SortFunc(f.Entries, func(a, b Entry) int { return compare(a.StartedAt, b.StartedAt, a.ActionID, b.ActionID) })
	if err := statefile.Write(c.path, f); err != nil {
		return fmt.Errorf("persisting action cache: %w", err)
	}
	return nil
}

func compare(ta, tb time.Time, ia, ib uuid.UUID) int {
	if c := ta.Compare(tb); c != 0 {
		return c
	}
	return slices.Compare(ia[:], ib[:])
}

// sameResult compares results by what the server sees; At may differ on a
// retried Finish and does not make the results different.
func sameResult(a, b agentproto.ActionResult) bool {
	a.At, b.At = time.Time{}, time.Time{}
	return a == b
}
