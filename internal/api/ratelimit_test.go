package api_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/kubedoio/n-kudo/internal/api"
	"github.com/kubedoio/n-kudo/internal/store"
)

// slow is a bucket that does not refill within a test.
const slow = rate.Limit(1.0 / 3600)

func TestRateLimitPerKey(t *testing.T) {
	t.Parallel()
	limited := newEnv(t, func(o *api.Options) { o.RateLimit.PerKey, o.RateLimit.PerKeyBurst = slow, 3 })
	tenant := limited.createTenant("alpha")              // admin key: 1 token used
	k1, _ := limited.createKey(tenant, store.RoleViewer) // 2 used
	k2, _ := limited.createKey(tenant, store.RoleViewer) // 3 used: admin key exhausted

	for range 3 {
		limited.must(http.StatusOK, req{method: "GET", path: "/v1/sites", key: k1})
	}
	resp := limited.do(req{method: "GET", path: "/v1/sites", key: k1})
	require.Equal(t, http.StatusTooManyRequests, resp.status)
	require.Equal(t, "rate_limited", resp.errCode(t))
	secs, err := strconv.Atoi(resp.header.Get("Retry-After"))
	require.NoError(t, err)
	require.Positive(t, secs)

	// Another key has its own bucket.
	limited.must(http.StatusOK, req{method: "GET", path: "/v1/sites", key: k2})
	resp = limited.do(req{method: "GET", path: "/v1/tenants", key: testAdminKey})
	require.Equal(t, http.StatusTooManyRequests, resp.status)
}

func TestRateLimitPerIP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *api.Options) { o.RateLimit.PerIP, o.RateLimit.PerIPBurst = slow, 2 })
	e.must(http.StatusOK, req{method: "GET", path: "/v1/openapi.json"})
	e.must(http.StatusUnauthorized, req{method: "GET", path: "/v1/sites"})
	resp := e.do(req{method: "GET", path: "/v1/sites", key: testAdminKey})
	require.Equal(t, http.StatusTooManyRequests, resp.status)
	require.Equal(t, "rate_limited", resp.errCode(t))
	require.NotEmpty(t, resp.header.Get("Retry-After"))
	// Probes are not rate limited.
	e.must(http.StatusOK, req{method: "GET", path: "/healthz"})
}

// TestFailedAuth: a source that keeps failing authentication is refused
// with 429 whatever key it tries next, valid ones included.
func TestFailedAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *api.Options) { o.RateLimit.FailedAuthPerIP, o.RateLimit.FailedAuthBurst = slow, 3 })
	tenant := e.createTenant("alpha")
	key, _ := e.createKey(tenant, store.RoleViewer)

	for _, bad := range []string{"nk_guess1", "nk_guess2", "not-even-a-key"} {
		resp := e.do(req{method: "GET", path: "/v1/sites", key: bad})
		require.Equal(t, http.StatusUnauthorized, resp.status)
	}
	for _, k := range []string{"nk_guess4", key, testAdminKey} {
		resp := e.do(req{method: "GET", path: "/v1/tenants", key: k})
		require.Equal(t, http.StatusTooManyRequests, resp.status, "key %q", k)
		require.Equal(t, "rate_limited", resp.errCode(t))
	}
}

// TestTrustedProxies: X-Forwarded-For is ignored unless the peer is a
// trusted proxy, so a client cannot dodge per-address limits by lying.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		trusted []string
		// whether a request "from" another forwarded address escapes the
		// failed-auth ban of the first one.
		escapes bool
	}{
		{"untrusted", nil, false},
		{"other proxy trusted", []string{"10.9.9.9"}, false},
		{"loopback trusted", []string{"127.0.0.0/8", "::1"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(o *api.Options) {
				o.TrustedProxies = tc.trusted
				o.RateLimit.FailedAuthPerIP, o.RateLimit.FailedAuthBurst = slow, 1
			})
			xff := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
			e.must(http.StatusUnauthorized, req{method: "GET", path: "/v1/tenants", key: "nk_bad", header: xff("203.0.113.7")})
			e.must(http.StatusTooManyRequests, req{method: "GET", path: "/v1/tenants", key: testAdminKey, header: xff("203.0.113.7")})
			want := http.StatusTooManyRequests
			if tc.escapes {
				want = http.StatusOK
			}
			e.must(want, req{method: "GET", path: "/v1/tenants", key: testAdminKey, header: xff("198.51.100.9")})
		})
	}
}

func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	cases := []struct {
		name string
		opts api.Options
	}{
		{"no store", api.Options{}},
		{"bad proxy", api.Options{Store: e.store, TrustedProxies: []string{"not-an-ip"}}},
		{"ttl too long", api.Options{Store: e.store, EnrollmentTTL: 48 * 3600e9}},
		{"negative body", api.Options{Store: e.store, MaxBodyBytes: -1}},
		{"negative rate", api.Options{Store: e.store, RateLimit: api.RateLimitConfig{PerIP: -1}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := api.New(tc.opts)
			require.ErrorIs(t, err, api.ErrInvalidOptions)
		})
	}
}
