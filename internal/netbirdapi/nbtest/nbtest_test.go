package nbtest

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStandInRejectsOffSpecRequests checks the checker: requests that
// break netbird-management.yml must be reported, or the other tests
// prove nothing.
func TestStandInRejectsOffSpecRequests(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, method, path, auth, body, want string
	}{
		{name: "expires_in too short", method: "POST", path: "/api/setup-keys",
			body: `{"name":"k","type":"one-off","expires_in":3600,"auto_groups":[],"usage_limit":1}`, want: "does not match"},
		{name: "required field missing", method: "POST", path: "/api/setup-keys",
			body: `{"name":"k","type":"one-off","expires_in":86400,"usage_limit":1}`, want: "does not match"},
		{name: "misspelt field", method: "POST", path: "/api/setup-keys",
			body: `{"name":"k","type":"one-off","expires_in":86400,"auto_groups":[],"usage_limit":1,"usageLimit":1}`, want: `"usageLimit" is not in`},
		{name: "PUT without auto_groups", method: "PUT", path: "/api/setup-keys/sk-1", body: `{"revoked":true}`, want: "does not match"},
		{name: "bearer instead of token", method: "GET", path: "/api/peers", auth: "Bearer " + Token, want: "is not \"Token <pat>\""},
		{name: "unknown path", method: "GET", path: "/api/setup-key", want: "not a path of the spec"},
		{name: "unknown method", method: "PATCH", path: "/api/peers", want: "not an operation"},
		{name: "undeclared query", method: "GET", path: "/api/peers?hostname=x", want: `query parameter "hostname"`},
		{name: "body where none is taken", method: "DELETE", path: "/api/peers/peer-a", body: `{}`, want: "takes no body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New(t)
			var (
				mu       sync.Mutex
				reported []string
			)
			s.errorf = func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				reported = append(reported, fmt.Sprintf(format, args...))
			}
			req, err := http.NewRequest(tc.method, s.srv.URL+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			auth := tc.auth
			if auth == "" {
				auth = "Token " + Token
			}
			req.Close = true // no idle connection left behind for goleak
			req.Header.Set("Authorization", auth)
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			mu.Lock()
			defer mu.Unlock()
			require.NotEmpty(t, reported)
			require.Contains(t, strings.Join(reported, "\n"), tc.want)
		})
	}
}
