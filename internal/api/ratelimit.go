package api

import (
	"fmt"
	"hash/maphash"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// RateLimitConfig tunes the token buckets. Zero fields take the defaults
// below; rate.Inf disables a bucket.
type RateLimitConfig struct {
	// PerKey limits requests per API key (the admin key counts as one).
	PerKey      rate.Limit
	PerKeyBurst int
	// PerIP limits /v1 requests per client address.
	PerIP      rate.Limit
	PerIPBurst int
	// FailedAuthPerIP limits failed authentications per client address.
	// Once a source has used its burst it gets 429 on every authenticated
	// route, whatever key it presents, until the bucket refills.
	FailedAuthPerIP rate.Limit
	FailedAuthBurst int
	// EnrollPerIP limits enrollments per client address (LimitEnroll).
	EnrollPerIP rate.Limit
	EnrollBurst int
	// IdleAfter is how long an unused bucket is kept; MaxEntries bounds
	// the buckets kept per table. Together they bound memory whatever the
	// number of distinct sources.
	IdleAfter  time.Duration
	MaxEntries int
}

// Rate limit defaults.
const (
	DefaultPerKey          rate.Limit = 50
	DefaultPerKeyBurst                = 100
	DefaultPerIP           rate.Limit = 100
	DefaultPerIPBurst                 = 200
	DefaultFailedAuthPerIP rate.Limit = 0.1 // one more try every 10 s
	DefaultFailedAuthBurst            = 10
	DefaultEnrollPerIP     rate.Limit = 20
	DefaultEnrollBurst                = 50
	DefaultIdleAfter                  = 10 * time.Minute
	DefaultMaxEntries                 = 100_000
)

func (r RateLimitConfig) withDefaults() (RateLimitConfig, error) {
	type field struct {
		lim      *rate.Limit
		burst    *int
		defLim   rate.Limit
		defBurst int
		name     string
	}
	fields := []field{
		{&r.PerKey, &r.PerKeyBurst, DefaultPerKey, DefaultPerKeyBurst, "PerKey"},
		{&r.PerIP, &r.PerIPBurst, DefaultPerIP, DefaultPerIPBurst, "PerIP"},
		{&r.FailedAuthPerIP, &r.FailedAuthBurst, DefaultFailedAuthPerIP, DefaultFailedAuthBurst, "FailedAuthPerIP"},
		{&r.EnrollPerIP, &r.EnrollBurst, DefaultEnrollPerIP, DefaultEnrollBurst, "EnrollPerIP"},
	}
	for _, f := range fields {
		if *f.lim == 0 {
			*f.lim = f.defLim
		}
		if *f.burst == 0 {
			*f.burst = f.defBurst
		}
		if *f.lim < 0 || *f.burst < 0 {
			return r, fmt.Errorf("%w: rate limit %s is negative", ErrInvalidOptions, f.name)
		}
	}
	if r.IdleAfter == 0 {
		r.IdleAfter = DefaultIdleAfter
	}
	if r.MaxEntries == 0 {
		r.MaxEntries = DefaultMaxEntries
	}
	if r.IdleAfter < 0 || r.MaxEntries < 0 {
		return r, fmt.Errorf("%w: rate limit table bounds are negative", ErrInvalidOptions)
	}
	return r, nil
}

// limiterShards spreads the buckets over independent locks so concurrent
// requests from different sources never contend on one mutex.
const limiterShards = 64

// limiterTable holds one token bucket per key (an address or a key id).
type limiterTable struct {
	limit       rate.Limit
	burst       int
	idle        time.Duration
	maxPerShard int
	seed        maphash.Seed
	shards      [limiterShards]limiterShard
}

type limiterShard struct {
	mu sync.Mutex // guards m
	m  map[string]*limiterEntry
}

type limiterEntry struct {
	lim  *rate.Limiter
	last time.Time // last use, for idle eviction
}

func newLimiterTable(limit rate.Limit, burst int, cfg RateLimitConfig) *limiterTable {
	t := &limiterTable{
		limit:       limit,
		burst:       burst,
		idle:        cfg.IdleAfter,
		maxPerShard: max(1, cfg.MaxEntries/limiterShards),
		seed:        maphash.MakeSeed(),
	}
	// A bucket evicted before it refilled would hand its owner a fresh
	// burst; keep entries at least as long as a full refill takes.
	if limit > 0 && limit != rate.Inf {
		refill := time.Duration(float64(burst) / float64(limit) * float64(time.Second))
		t.idle = max(t.idle, refill)
	}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*limiterEntry)
	}
	return t
}

func (t *limiterTable) shard(key string) *limiterShard {
	return &t.shards[maphash.String(t.seed, key)%limiterShards]
}

// entry returns the bucket of key, creating it; the caller holds s.mu.
func (t *limiterTable) entry(s *limiterShard, key string, now time.Time) *limiterEntry {
	e, ok := s.m[key]
	if !ok {
		if len(s.m) >= t.maxPerShard {
			t.evict(s, now)
		}
		e = &limiterEntry{lim: rate.NewLimiter(t.limit, t.burst)}
		s.m[key] = e
	}
	e.last = now
	return e
}

// evict drops idle buckets, and if the shard is still full, arbitrary
// ones: memory stays bounded even under a flood of distinct sources.
func (t *limiterTable) evict(s *limiterShard, now time.Time) {
	for k, e := range s.m {
		if now.Sub(e.last) > t.idle {
			delete(s.m, k)
		}
	}
	for k := range s.m {
		if len(s.m) < t.maxPerShard {
			break
		}
		delete(s.m, k)
	}
}

// allow takes one token for key. When none is left it reports how long
// until one is.
func (t *limiterTable) allow(key string, now time.Time) (bool, time.Duration) {
	if t.limit == rate.Inf {
		return true, 0
	}
	s := t.shard(key)
	s.mu.Lock()
	e := t.entry(s, key, now)
	s.mu.Unlock()
	r := e.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Minute
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// exhausted reports, without taking a token, whether key has no token
// left and how long until it has one.
func (t *limiterTable) exhausted(key string, now time.Time) (bool, time.Duration) {
	if t.limit == rate.Inf {
		return false, 0
	}
	s := t.shard(key)
	s.mu.Lock()
	e, ok := s.m[key]
	s.mu.Unlock()
	if !ok {
		return false, 0
	}
	tokens := e.lim.TokensAt(now)
	if tokens >= 1 {
		return false, 0
	}
	if t.limit <= 0 {
		return true, time.Minute
	}
	return true, time.Duration((1 - tokens) / float64(t.limit) * float64(time.Second))
}

// size returns the number of buckets held (for tests of the bound).
func (t *limiterTable) size() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// rateLimited answers 429 with a Retry-After in whole seconds (at least 1).
func (a *API) rateLimited(c *gin.Context, retry time.Duration) {
	secs := int(math.Ceil(retry.Seconds()))
	c.Header("Retry-After", strconv.Itoa(max(1, secs)))
	a.writeError(c, &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited, Message: "too many requests, retry later"})
}

// limitIP applies the per-client-address bucket to every /v1 request.
func (a *API) limitIP(c *gin.Context) {
	if ok, retry := a.ipLim.allow(c.ClientIP(), a.now()); !ok {
		a.rateLimited(c, retry)
		return
	}
	c.Next()
}

// limitKey applies the per-API-key bucket; it runs after authenticate.
func (a *API) limitKey(c *gin.Context) {
	p, ok := principalOf(c)
	if !ok {
		c.Next()
		return
	}
	if ok, retry := a.keyLim.allow(p.limiterKey(), a.now()); !ok {
		a.rateLimited(c, retry)
		return
	}
	c.Next()
}

// limitEnroll applies the per-address enrollment bucket.
func (a *API) limitEnroll(c *gin.Context) {
	if ok, retry := a.enroLim.allow(c.ClientIP(), a.now()); !ok {
		a.rateLimited(c, retry)
		return
	}
	c.Next()
}
