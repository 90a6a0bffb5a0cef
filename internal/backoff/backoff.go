package backoff

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Rand is the random source Backoff draws jitter from. *math/rand/v2.Rand
// satisfies it; tests inject a seeded one so delays are reproducible.
type Rand interface {
	// Int64N returns a uniform value in [0, n). n is always > 0.
	Int64N(n int64) int64
}

// Default bounds, chosen for agent reconnects: the first retry comes quickly
// (a blip should not cost a session for long), and a long outage settles at
// one attempt per minute per agent on average, which is what a recovering
// server can absorb from a large fleet.
const (
	DefaultBase = 500 * time.Millisecond
	DefaultMax  = 60 * time.Second
)

// Backoff computes capped exponential delays with full jitter.
//
// Next is a pure function of the attempt number (plus jitter). Wait and
// Reset keep an attempt counter for the common retry-loop shape: Wait after
// each failure, Reset after a success. The zero value is usable with the
// default bounds and the global random source.
type Backoff struct {
	// Base is the bound of the first attempt (attempt 0). Zero means
	// DefaultBase.
	Base time.Duration
	// Max caps the bound. Zero means DefaultMax.
	Max time.Duration
	// Rand is the jitter source. Nil means the math/rand/v2 global source,
	// which is safe for concurrent use. A non-nil Rand is only called with
	// Backoff's lock held, so a non-concurrent *rand.Rand is fine.
	Rand Rand

	mu      sync.Mutex // guards the following
	attempt int
}

// Bound returns the upper bound of the delay for attempt (0-based):
// min(Max, Base * 2^attempt). It never overflows.
func (b *Backoff) Bound(attempt int) time.Duration {
	base, maxDelay := b.limits()
	if attempt < 0 {
		attempt = 0
	}
	d := base
	for i := 0; i < attempt; i++ {
		if d >= maxDelay/2 {
			return maxDelay
		}
		d *= 2
	}
	return min(d, maxDelay)
}

// Next returns the delay before attempt (0-based): a uniformly random
// duration in [0, Bound(attempt)].
func (b *Backoff) Next(attempt int) time.Duration {
	bound := b.Bound(attempt)
	if bound <= 0 {
		return 0
	}
	n := int64(bound)
	if n < math.MaxInt64 {
		n++ // make the bound itself reachable
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return time.Duration(b.int64n(n))
}

// Reset sets the attempt counter used by Wait back to zero. Call it after a
// success so the next failure retries quickly again.
func (b *Backoff) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.attempt = 0
}

// Attempt returns the number of Waits since the last Reset.
func (b *Backoff) Attempt() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.attempt
}

// Wait sleeps for the next delay of the attempt counter and advances it.
// It returns ctx.Err() as soon as ctx is done, so a shutting-down owner is
// never held by a long backoff.
func (b *Backoff) Wait(ctx context.Context) error {
	b.mu.Lock()
	attempt := b.attempt
	b.attempt++
	b.mu.Unlock()

	d := b.Next(attempt)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (b *Backoff) limits() (base, maxDelay time.Duration) {
	base, maxDelay = b.Base, b.Max
	if base <= 0 {
		base = DefaultBase
	}
	if maxDelay <= 0 {
		maxDelay = DefaultMax
	}
	if base > maxDelay {
		base = maxDelay
	}
	return base, maxDelay
}

// int64n must be called with b.mu held.
func (b *Backoff) int64n(n int64) int64 {
	if b.Rand != nil {
		return b.Rand.Int64N(n)
	}
	return rand.Int64N(n)
}
