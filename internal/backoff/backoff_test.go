package backoff

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fixedRand returns a fixed fraction of n, to pin jitter at its extremes.
type fixedRand struct{ top bool }

func (f fixedRand) Int64N(n int64) int64 {
	if f.top {
		return n - 1
	}
	return 0
}

func TestBound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		base    time.Duration
		max     time.Duration
		attempt int
		want    time.Duration
	}{
		{"first attempt is base", time.Second, time.Minute, 0, time.Second},
		{"doubles", time.Second, time.Minute, 1, 2 * time.Second},
		{"doubles again", time.Second, time.Minute, 3, 8 * time.Second},
		{"capped", time.Second, time.Minute, 6, time.Minute},
		{"capped far out", time.Second, time.Minute, 1000, time.Minute},
		{"negative attempt is first", time.Second, time.Minute, -5, time.Second},
		{"defaults", 0, 0, 0, DefaultBase},
		{"default max", 0, 0, 100, DefaultMax},
		{"base above max is clamped", time.Hour, time.Minute, 0, time.Minute},
		{"no overflow near max duration", time.Second, time.Duration(math.MaxInt64), 200, time.Duration(math.MaxInt64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &Backoff{Base: tt.base, Max: tt.max}
			require.Equal(t, tt.want, b.Bound(tt.attempt))
		})
	}
}

func TestNextJitterExtremes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		top     bool
		attempt int
		want    time.Duration
	}{
		{"low end is zero", false, 3, 0},
		{"high end is the bound", true, 3, 8 * time.Second},
		{"high end capped", true, 50, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &Backoff{Base: time.Second, Max: time.Minute, Rand: fixedRand{top: tt.top}}
			require.Equal(t, tt.want, b.Next(tt.attempt))
		})
	}
}

func TestNextWithinBoundsAndSpread(t *testing.T) {
	t.Parallel()
	b := &Backoff{Base: 100 * time.Millisecond, Max: 10 * time.Second, Rand: rand.New(rand.NewPCG(1, 2))}
	for attempt := range 12 {
		bound := b.Bound(attempt)
		var lowHalf, highHalf int
		for range 500 {
			d := b.Next(attempt)
			require.GreaterOrEqual(t, d, time.Duration(0))
			require.LessOrEqual(t, d, bound)
			if d < bound/2 {
				lowHalf++
			} else {
				highHalf++
			}
		}
		// Full jitter is uniform: both halves of the range are used, so a
		// fleet that failed together does not retry together.
		require.Positive(t, lowHalf, "attempt %d", attempt)
		require.Positive(t, highHalf, "attempt %d", attempt)
	}
}

func TestNextDeterministicWithSeed(t *testing.T) {
	t.Parallel()
	seq := func() []time.Duration {
		b := &Backoff{Base: time.Second, Max: time.Minute, Rand: rand.New(rand.NewPCG(42, 7))}
		out := make([]time.Duration, 10)
		for i := range out {
			out[i] = b.Next(i)
		}
		return out
	}
	require.Equal(t, seq(), seq())
}

func TestWaitAdvancesAndReset(t *testing.T) {
	t.Parallel()
	// The low-end jitter source makes every delay zero, so Wait returns at
	// once and the test exercises only the counter.
	b := &Backoff{Base: time.Hour, Max: time.Hour, Rand: fixedRand{}}
	ctx := context.Background()
	for i := range 3 {
		require.Equal(t, i, b.Attempt())
		require.NoError(t, b.Wait(ctx))
	}
	require.Equal(t, 3, b.Attempt())
	b.Reset()
	require.Equal(t, 0, b.Attempt())
}

func TestWaitStopsOnContext(t *testing.T) {
	t.Parallel()
	// A delay of an hour: Wait must return because of the context, not the
	// timer.
	b := &Backoff{Base: time.Hour, Max: time.Hour, Rand: fixedRand{top: true}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx) }()
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

func BenchmarkNext(b *testing.B) {
	bo := &Backoff{Base: time.Second, Max: time.Minute}
	for i := 0; b.Loop(); i++ {
		_ = bo.Next(i % 16)
	}
}
