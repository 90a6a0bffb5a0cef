package notify_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubedoio/n-kudo/internal/notify"
	"github.com/kubedoio/n-kudo/internal/store/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Wrap(m))
}

const waitFor = 30 * time.Second

// collector records what one handler received.
type collector struct {
	mu   sync.Mutex
	got  []string
	gaps int
	ch   chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1)} }

func (c *collector) handle(p []byte) {
	c.mu.Lock()
	if p == nil {
		c.gaps++
	} else {
		c.got = append(c.got, string(p))
	}
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

func (c *collector) snapshot() ([]string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...), c.gaps
}

// waitUntil waits on the collector's signal until cond holds.
func (c *collector) waitUntil(t *testing.T, what string, cond func(got []string, gaps int) bool) {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		if cond(c.snapshot()) {
			return
		}
		select {
		case <-c.ch:
		case <-deadline.C:
			got, gaps := c.snapshot()
			t.Fatalf("timed out waiting for %s: got %q, %d gaps", what, got, gaps)
		}
	}
}

func contains(got []string, want string) bool {
	for _, g := range got {
		if g == want {
			return true
		}
	}
	return false
}

// runBus runs b until the test ends and waits for it to stop.
func runBus(t *testing.T, b notify.Bus) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

func TestCheckPublishRejects(t *testing.T) {
	t.Parallel()
	b := notify.NewLocal(notify.LocalOptions{})
	cases := []struct {
		name    string
		topic   string
		payload []byte
		want    error
	}{
		{"empty topic", "", nil, notify.ErrInvalidTopic},
		{"upper case", "Plan", nil, notify.ErrInvalidTopic},
		{"dash", "plan-dispatch", nil, notify.ErrInvalidTopic},
		{"too long topic", strings.Repeat("a", 64), nil, notify.ErrInvalidTopic},
		{"too large payload", "ok", make([]byte, notify.MaxPayloadBytes+1), notify.ErrPayloadTooLarge},
		{"largest payload", "ok", make([]byte, notify.MaxPayloadBytes), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := b.Publish(context.Background(), tc.topic, tc.payload)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestLocalDeliversPerTopic(t *testing.T) {
	t.Parallel()
	b := notify.NewLocal(notify.LocalOptions{})
	a1, a2, other := newCollector(), newCollector(), newCollector()
	require.NoError(t, b.Subscribe("alpha", a1.handle))
	require.NoError(t, b.Subscribe("alpha", a2.handle))
	require.NoError(t, b.Subscribe("beta", other.handle))
	runBus(t, b)

	for _, p := range []string{"one", "two", "three"} {
		require.NoError(t, b.Publish(context.Background(), "alpha", []byte(p)))
	}
	want := []string{"one", "two", "three"}
	for _, c := range []*collector{a1, a2} {
		c.waitUntil(t, "three payloads in order", func(got []string, _ int) bool { return len(got) == 3 })
		got, gaps := c.snapshot()
		require.Equal(t, want, got)
		require.Zero(t, gaps)
	}
	got, _ := other.snapshot()
	require.Empty(t, got)
	// Delivery proves Run started: the subscriptions are frozen.
	require.ErrorIs(t, b.Subscribe("gamma", other.handle), notify.ErrStarted)
}

// A handler that does not keep up loses notifications, never blocks the
// publisher, and is told with a gap.
func TestLocalSlowHandlerGetsGap(t *testing.T) {
	t.Parallel()
	b := notify.NewLocal(notify.LocalOptions{QueueSize: 2})
	release := make(chan struct{})
	c := newCollector()
	first := true
	require.NoError(t, b.Subscribe("slow", func(p []byte) {
		if first {
			first = false
			<-release
		}
		c.handle(p)
	}))
	runBus(t, b)
	for i := range 20 {
		require.NoError(t, b.Publish(context.Background(), "slow", []byte{'a' + byte(i)}))
	}
	close(release)
	c.waitUntil(t, "a gap", func(_ []string, gaps int) bool { return gaps > 0 })
	got, _ := c.snapshot()
	require.Less(t, len(got), 20)
}

func newPostgres(t *testing.T, url string) *notify.Postgres {
	t.Helper()
	b, err := notify.NewPostgres(notify.PostgresOptions{URL: url})
	require.NoError(t, err)
	return b
}

func waitListening(t *testing.T, b *notify.Postgres) {
	t.Helper()
	select {
	case <-b.Listening():
	case <-time.After(waitFor):
		t.Fatal("bus never started listening")
	}
}

// Two buses on one database stand for two replicas: each hears what
// the other publishes, and its own notifications too.
func TestPostgresAcrossReplicas(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	a, b := newPostgres(t, url), newPostgres(t, url)
	ca, cb := newCollector(), newCollector()
	require.NoError(t, a.Subscribe("plan_dispatch", ca.handle))
	require.NoError(t, b.Subscribe("plan_dispatch", cb.handle))
	ignored := newCollector()
	require.NoError(t, b.Subscribe("other", ignored.handle))
	runBus(t, a)
	runBus(t, b)
	waitListening(t, a)
	waitListening(t, b)

	ctx := context.Background()
	require.NoError(t, a.Publish(ctx, "plan_dispatch", []byte(`{"from":"a"}`)))
	require.NoError(t, b.Publish(ctx, "plan_dispatch", []byte(`{"from":"b"}`)))
	big := strings.Repeat("x", notify.MaxPayloadBytes)
	require.NoError(t, a.Publish(ctx, "plan_dispatch", []byte(big)))
	require.ErrorIs(t, a.Publish(ctx, "plan_dispatch", []byte(big+"x")), notify.ErrPayloadTooLarge)
	for _, c := range []*collector{ca, cb} {
		c.waitUntil(t, "both replicas' notifications", func(got []string, _ int) bool {
			return contains(got, `{"from":"a"}`) && contains(got, `{"from":"b"}`) && contains(got, big)
		})
	}
	got, _ := ignored.snapshot()
	require.Empty(t, got)
}

// PostgreSQL restarts under a running bus: the listener reconnects,
// handlers hear of the gap, and delivery resumes.
func TestPostgresSurvivesRestart(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	b := newPostgres(t, cluster.URL())
	c := newCollector()
	require.NoError(t, b.Subscribe("agent_revoke", c.handle))
	runBus(t, b)
	waitListening(t, b)
	ctx := context.Background()
	require.NoError(t, b.Publish(ctx, "agent_revoke", []byte("before")))
	c.waitUntil(t, "the first notification", func(got []string, _ int) bool { return contains(got, "before") })

	cluster.Stop()
	require.Error(t, b.Publish(ctx, "agent_revoke", []byte("while down")))
	cluster.Start()

	c.waitUntil(t, "the reconnect gap", func(_ []string, gaps int) bool { return gaps > 0 })
	require.GreaterOrEqual(t, b.Connects(), int64(2))
	// The listener is back (the gap is reported after LISTEN succeeded);
	// the publishing pool may still hold a dead connection, so retry.
	deadline := time.Now().Add(waitFor)
	for {
		err := b.Publish(ctx, "agent_revoke", []byte("after"))
		if err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "publishing after restart: %v", err)
		select {
		case <-c.ch:
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.waitUntil(t, "delivery after the restart", func(got []string, _ int) bool { return contains(got, "after") })
}
