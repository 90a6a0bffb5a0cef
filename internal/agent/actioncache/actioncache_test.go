package actioncache

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// clock is a manual test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Millisecond) // strictly increasing, for stable ordering
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func result(id uuid.UUID, status string) agentproto.ActionResult {
	r := agentproto.ActionResult{
		// Derived from the action id so two results of one action match.
		PlanID:      uuid.NewSHA1(uuid.NameSpaceOID, append([]byte("plan"), id[:]...)),
		ActionID:    id,
		ExecutionID: uuid.NewSHA1(uuid.NameSpaceOID, append([]byte("exec"), id[:]...)),
		Status:      status,
		VMState:     agentproto.VMRunning,
		At:          time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC),
	}
	if status == agentproto.ResultFailed {
		r.Error, r.VMState = "boot failed", agentproto.VMFailed
	}
	return r
}

func openCache(t *testing.T, path string, opts ...Option) *Cache {
	t.Helper()
	c, err := Open(path, opts...)
	require.NoError(t, err)
	return c
}

func TestBeginRunsOnceAcrossRestarts(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "actions.json")
	c := openCache(t, path)
	id := uuid.New()

	e, run, err := c.Begin(id)
	require.NoError(t, err)
	require.True(t, run)
	require.Equal(t, StateStarted, e.State)
	require.Empty(t, c.Interrupted(), "our own running action is not interrupted")

	again, run, err := c.Begin(id)
	require.NoError(t, err)
	require.False(t, run, "a replay while running must not run")
	require.Equal(t, e, again)

	// Crash: the process dies between Begin and Finish. The started
	// entry was on disk before Begin returned.
	restarted := openCache(t, path)
	got, ok := restarted.Get(id)
	require.True(t, ok)
	require.Equal(t, StateStarted, got.State)
	_, run, err = restarted.Begin(id)
	require.NoError(t, err)
	require.False(t, run, "a replay after a crash must not run")
	interrupted := restarted.Interrupted()
	require.Len(t, interrupted, 1)
	require.Equal(t, id, interrupted[0].ActionID)

	// The agent reports it and finishes it; it is then no longer
	// interrupted but awaits an ack.
	res := result(id, agentproto.ResultFailed)
	require.NoError(t, restarted.Finish(id, res))
	require.Empty(t, restarted.Interrupted())
	require.Len(t, restarted.Unacked(), 1)

	// Once finished, still never runs again, even after another restart.
	_, run, err = openCache(t, path).Begin(id)
	require.NoError(t, err)
	require.False(t, run)
}

func TestFinish(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func(t *testing.T, c *Cache, id uuid.UUID) // before Finish
		result  func(id uuid.UUID) agentproto.ActionResult
		wantIs  error
	}{
		{
			name:    "succeeded",
			prepare: begin,
			result:  func(id uuid.UUID) agentproto.ActionResult { return result(id, agentproto.ResultSucceeded) },
		},
		{
			name:    "failed",
			prepare: begin,
			result:  func(id uuid.UUID) agentproto.ActionResult { return result(id, agentproto.ResultFailed) },
		},
		{
			name:    "not terminal",
			prepare: begin,
			result:  func(id uuid.UUID) agentproto.ActionResult { return result(id, agentproto.ResultRunning) },
			wantIs:  ErrInvalidResult,
		},
		{
			name:    "result of another action",
			prepare: begin,
			result:  func(uuid.UUID) agentproto.ActionResult { return result(uuid.New(), agentproto.ResultSucceeded) },
			wantIs:  ErrInvalidResult,
		},
		{
			name:    "never begun",
			prepare: func(*testing.T, *Cache, uuid.UUID) {},
			result:  func(id uuid.UUID) agentproto.ActionResult { return result(id, agentproto.ResultSucceeded) },
			wantIs:  ErrNotFound,
		},
		{
			name: "same result again is a no-op",
			prepare: func(t *testing.T, c *Cache, id uuid.UUID) {
				begin(t, c, id)
				require.NoError(t, c.Finish(id, result(id, agentproto.ResultSucceeded)))
			},
			result: func(id uuid.UUID) agentproto.ActionResult {
				r := result(id, agentproto.ResultSucceeded)
				r.At = r.At.Add(time.Second) // a retried Finish restamps
				return r
			},
		},
		{
			name: "a different result after finishing",
			prepare: func(t *testing.T, c *Cache, id uuid.UUID) {
				begin(t, c, id)
				require.NoError(t, c.Finish(id, result(id, agentproto.ResultSucceeded)))
			},
			result: func(id uuid.UUID) agentproto.ActionResult { return result(id, agentproto.ResultFailed) },
			wantIs: ErrAlreadyFinished,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "actions.json")
			c := openCache(t, path)
			id := uuid.New()
			tt.prepare(t, c, id)
			before, _ := c.Get(id)

			err := c.Finish(id, tt.result(id))
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
				after, _ := c.Get(id)
				require.Equal(t, before, after, "a refused Finish changes nothing")
				return
			}
			require.NoError(t, err)
			e, ok := openCache(t, path).Get(id)
			require.True(t, ok)
			require.Equal(t, StateFinished, e.State)
			require.Equal(t, tt.result(id).Status, e.Result.Status)
			require.False(t, e.FinishedAt.IsZero())
		})
	}
}

func begin(t *testing.T, c *Cache, id uuid.UUID) {
	t.Helper()
	_, run, err := c.Begin(id)
	require.NoError(t, err)
	require.True(t, run)
}

func finish(t *testing.T, c *Cache, id uuid.UUID) {
	t.Helper()
	begin(t, c, id)
	require.NoError(t, c.Finish(id, result(id, agentproto.ResultSucceeded)))
}

func TestUnackedAndAck(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "actions.json")
	clk := newClock()
	c := openCache(t, path, WithClock(clk.Now))
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	// Finish in reverse begin order: Unacked is ordered by result time.
	for _, id := range ids {
		begin(t, c, id)
	}
	for i := len(ids) - 1; i >= 0; i-- {
		require.NoError(t, c.Finish(ids[i], result(ids[i], agentproto.ResultSucceeded)))
	}
	running := uuid.New()
	begin(t, c, running)

	unacked := c.Unacked()
	require.Len(t, unacked, 3, "the running action has no result to send")
	require.Equal(t, []uuid.UUID{ids[2], ids[1], ids[0]}, actionIDs(unacked))

	tests := []struct {
		name   string
		id     uuid.UUID
		wantIs error
	}{
		{"ack a result", ids[1], nil},
		{"ack again is a no-op", ids[1], nil},
		{"ack unknown", uuid.New(), ErrNotFound},
		{"ack running", running, ErrNotFinished},
	}
	for _, tt := range tests { // sequential: each step builds on the last
		err := c.Ack(tt.id)
		if tt.wantIs == nil {
			require.NoError(t, err, tt.name)
		} else {
			require.ErrorIs(t, err, tt.wantIs, tt.name)
		}
	}
	require.Equal(t, []uuid.UUID{ids[2], ids[0]}, actionIDs(c.Unacked()))
	reopened := openCache(t, path, WithClock(clk.Now))
	require.Equal(t, []uuid.UUID{ids[2], ids[0]}, actionIDs(reopened.Unacked()), "acks persist")
	e, ok := reopened.Get(ids[1])
	require.True(t, ok)
	require.True(t, e.Acked)
	_, run, err := reopened.Begin(ids[1])
	require.NoError(t, err)
	require.False(t, run, "an acked action still never runs again")
}

func actionIDs(es []Entry) []uuid.UUID {
	out := make([]uuid.UUID, len(es))
	for i, e := range es {
		out[i] = e.ActionID
	}
	return out
}

func TestPruning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		maxEntries int
		maxAge     time.Duration
		// run drives the cache and returns the ids expected to survive.
		run func(t *testing.T, c *Cache, clk *clock) (kept, pruned []uuid.UUID)
	}{
		{
			name:       "acked entries older than max age",
			maxEntries: 100,
			maxAge:     24 * time.Hour,
			run: func(t *testing.T, c *Cache, clk *clock) ([]uuid.UUID, []uuid.UUID) {
				old, unackedOld, fresh := uuid.New(), uuid.New(), uuid.New()
				finish(t, c, old)
				require.NoError(t, c.Ack(old))
				finish(t, c, unackedOld)
				clk.Advance(25 * time.Hour)
				finish(t, c, fresh)
				require.NoError(t, c.Ack(fresh)) // triggers the prune
				return []uuid.UUID{unackedOld, fresh}, []uuid.UUID{old}
			},
		},
		{
			name:       "oldest acked entries over max count",
			maxEntries: 3,
			maxAge:     DefaultMaxAge,
			run: func(t *testing.T, c *Cache, _ *clock) ([]uuid.UUID, []uuid.UUID) {
				a, b, unacked, d := uuid.New(), uuid.New(), uuid.New(), uuid.New()
				finish(t, c, a)
				finish(t, c, b)
				require.NoError(t, c.Ack(a))
				require.NoError(t, c.Ack(b))
				finish(t, c, unacked)
				begin(t, c, d) // over the bound: the oldest acked (a) goes
				return []uuid.UUID{b, unacked, d}, []uuid.UUID{a}
			},
		},
		{
			name:       "full of unacked entries refuses new actions",
			maxEntries: 2,
			maxAge:     DefaultMaxAge,
			run: func(t *testing.T, c *Cache, _ *clock) ([]uuid.UUID, []uuid.UUID) {
				a, b, refused := uuid.New(), uuid.New(), uuid.New()
				finish(t, c, a)
				begin(t, c, b)
				_, run, err := c.Begin(refused)
				require.ErrorIs(t, err, ErrFull)
				require.False(t, run)
				// An ack frees room.
				require.NoError(t, c.Ack(a))
				next := uuid.New()
				begin(t, c, next)
				return []uuid.UUID{b, next}, []uuid.UUID{a, refused}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "actions.json")
			clk := newClock()
			opts := []Option{WithClock(clk.Now), WithMaxEntries(tt.maxEntries), WithMaxAge(tt.maxAge)}
			c := openCache(t, path, opts...)
			kept, pruned := tt.run(t, c, clk)
			for _, cache := range []*Cache{c, openCache(t, path, opts...)} {
				for _, id := range kept {
					_, ok := cache.Get(id)
					require.True(t, ok, "kept %s", id)
				}
				for _, id := range pruned {
					_, ok := cache.Get(id)
					require.False(t, ok, "pruned %s", id)
				}
				require.Equal(t, len(kept), cache.Len())
			}
		})
	}
}

func TestFailedPersistChangesNothing(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	require.NoError(t, os.Mkdir(dir, 0o700))
	path := filepath.Join(dir, "actions.json")
	c := openCache(t, path)
	done := uuid.New()
	finish(t, c, done)
	started := uuid.New()
	begin(t, c, started)

	// No directory, no file: every write fails (even as root).
	require.NoError(t, os.RemoveAll(dir))
	fresh := uuid.New()
	_, run, err := c.Begin(fresh)
	require.Error(t, err)
	require.False(t, run, "never run an action whose start is not on disk")
	_, ok := c.Get(fresh)
	require.False(t, ok)
	require.Error(t, c.Finish(started, result(started, agentproto.ResultSucceeded)))
	e, _ := c.Get(started)
	require.Equal(t, StateStarted, e.State)
	require.Error(t, c.Ack(done))
	require.Len(t, c.Unacked(), 1)

	// Once the disk is back, the same calls succeed.
	require.NoError(t, os.Mkdir(dir, 0o700))
	begin(t, c, fresh)
	require.NoError(t, c.Finish(started, result(started, agentproto.ResultSucceeded)))
	require.NoError(t, c.Ack(done))
}

func TestOpen(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	tests := []struct {
		name    string
		content string // "" means no file
		wantIs  error
		wantLen int
	}{
		{name: "missing file is an empty cache"},
		{name: "empty cache", content: `{"version":1,"entries":[]}`},
		{name: "started entry", content: fmt.Sprintf(`{"version":1,"entries":[{"action_id":%q,"state":"started","started_at":"2026-03-01T00:00:00Z"}]}`, id), wantLen: 1},
		{name: "torn file", content: `{"version":1,"entr`, wantIs: ErrCorrupt},
		{name: "unknown version", content: `{"version":2,"entries":[]}`, wantIs: ErrCorrupt},
		{name: "unknown state", content: fmt.Sprintf(`{"version":1,"entries":[{"action_id":%q,"state":"maybe"}]}`, id), wantIs: ErrCorrupt},
		{name: "finished without result", content: fmt.Sprintf(`{"version":1,"entries":[{"action_id":%q,"state":"finished"}]}`, id), wantIs: ErrCorrupt},
		{name: "nil id", content: `{"version":1,"entries":[{"action_id":"00000000-0000-0000-0000-000000000000","state":"started"}]}`, wantIs: ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "actions.json")
			if tt.content != "" {
				require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o600))
			}
			c, err := Open(path)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantLen, c.Len())
		})
	}
}

func TestCrashDuringWriteKeepsLastCommittedCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "actions.json")
	c := openCache(t, path)
	id := uuid.New()
	finish(t, c, id)

	// The process died inside statefile.Write of a later change: a torn
	// temporary file sits next to the cache.
	torn := filepath.Join(dir, ".actions.json.tmp-42")
	require.NoError(t, os.WriteFile(torn, []byte(`{"version":1,"entries":[{"act`), 0o600))

	reopened := openCache(t, path)
	require.NoFileExists(t, torn, "leftover cleaned at open")
	e, ok := reopened.Get(id)
	require.True(t, ok)
	require.Equal(t, StateFinished, e.State)
	require.Len(t, reopened.Unacked(), 1)
}

func TestConcurrentBeginRunsExactlyOnce(t *testing.T) {
	t.Parallel()
	c := openCache(t, filepath.Join(t.TempDir(), "actions.json"))
	const goroutines, actions = 8, 5
	ids := make([]uuid.UUID, actions)
	for i := range ids {
		ids[i] = uuid.New()
	}
	runs := make([]atomic.Int32, actions)
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	start := make(chan struct{})
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i, id := range ids {
				_, run, err := c.Begin(id)
				if err != nil {
					errs <- err
					return
				}
				if run {
					runs[i].Add(1)
					if err := c.Finish(id, result(id, agentproto.ResultSucceeded)); err != nil {
						errs <- err
						return
					}
				}
				_ = c.Unacked()
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for i := range runs {
		require.EqualValues(t, 1, runs[i].Load(), "action %d ran exactly once", i)
	}
	require.Len(t, c.Unacked(), actions)
}

func BenchmarkBeginFinishAck(b *testing.B) {
	c, err := Open(filepath.Join(b.TempDir(), "actions.json"), WithMaxEntries(256))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		id := uuid.New()
		if _, _, err := c.Begin(id); err != nil {
			b.Fatal(err)
		}
		if err := c.Finish(id, result(id, agentproto.ResultSucceeded)); err != nil {
			b.Fatal(err)
		}
		if err := c.Ack(id); err != nil {
			b.Fatal(err)
		}
	}
}
