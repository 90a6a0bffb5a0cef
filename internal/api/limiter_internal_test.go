package api

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

func TestLimiterTableBounded(t *testing.T) {
	t.Parallel()
	cfg := RateLimitConfig{IdleAfter: time.Minute, MaxEntries: limiterShards * 4}
	tbl := newLimiterTable(10, 5, cfg)
	now := time.Unix(1_700_000_000, 0)
	for i := range 10_000 {
		ok, _ := tbl.allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now)
		require.True(t, ok)
	}
	require.LessOrEqual(t, tbl.size(), cfg.MaxEntries, "memory stays bounded under a flood of sources")

	// Idle entries go first once the shard is full.
	later := now.Add(time.Hour)
	for i := range 100 {
		tbl.allow(fmt.Sprintf("192.0.2.%d", i), later)
	}
	require.LessOrEqual(t, tbl.size(), cfg.MaxEntries)
}

func TestLimiterTableRetryAfter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		limit rate.Limit
		burst int
		takes int
		ok    bool
		retry time.Duration
	}{
		{"within burst", 1, 3, 3, true, 0},
		{"over burst", 1, 3, 4, false, time.Second},
		{"slow refill", 0.1, 1, 2, false, 10 * time.Second},
		{"unlimited", rate.Inf, 0, 1000, true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tbl := newLimiterTable(tc.limit, tc.burst, RateLimitConfig{IdleAfter: time.Minute, MaxEntries: 1000})
			now := time.Unix(1_700_000_000, 0)
			var ok bool
			var retry time.Duration
			for range tc.takes {
				ok, retry = tbl.allow("k", now)
			}
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.retry, retry)
			blocked, _ := tbl.exhausted("k", now)
			require.Equal(t, !tc.ok || (tc.limit != rate.Inf && tc.takes == tc.burst), blocked)
		})
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	base := fingerprint("POST", "/v1/sites", []byte(`{"a":1}`))
	require.Equal(t, base, fingerprint("POST", "/v1/sites", []byte(`{"a":1}`)))
	require.NotEqual(t, base, fingerprint("POST", "/v1/sites", []byte(`{"a":2}`)))
	require.NotEqual(t, base, fingerprint("POST", "/v1/sites/x", []byte(`{"a":1}`)))
	// Moving bytes between parts must not collide.
	require.NotEqual(t, fingerprint("POST", "/ab", []byte("c")), fingerprint("POST", "/a", []byte("bc")))
}
