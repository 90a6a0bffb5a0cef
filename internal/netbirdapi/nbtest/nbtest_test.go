package nbtest

import (
	"fmt"
	"io"
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
		{name: "expires_in not a number", method: "POST", path: "/api/setup-keys",
			body: `{"name":"k","type":"one-off","expires_in":"1d","auto_groups":[],"usage_limit":1}`, want: "does not match"},
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

// TestStandInAnswersAsNetBirdCode checks the answers that follow the real
// management server's code where it differs from the document (see the
// package doc for the upstream files).
func TestStandInAnswersAsNetBirdCode(t *testing.T) {
	t.Parallel()
	keyBody := func(expires int, groups string) string {
		return fmt.Sprintf(`{"name":"k","type":"one-off","expires_in":%d,"auto_groups":[%s],"usage_limit":1}`, expires, groups)
	}
	for _, tc := range []struct {
		name, method, path, token, body string
		setup                           func(s *Server)
		wantStatus                      int
		wantBody                        string
	}{
		{name: "malformed token", method: "GET", path: "/api/groups", token: "nbp_short", wantStatus: 401, wantBody: `"token invalid"`},
		{name: "bad checksum", method: "GET", path: "/api/groups", token: Token[:len(Token)-1] + "x", wantStatus: 401},
		{name: "unknown token is 404", method: "GET", path: "/api/groups", token: DeadToken, wantStatus: 404, wantBody: `"resource not found"`},
		{name: "deleted token is 404", method: "GET", path: "/api/peers", setup: func(s *Server) { s.ExpectToken("") }, wantStatus: 404},
		{name: "expires_in of an hour", method: "POST", path: "/api/setup-keys", body: keyBody(3600, ""), wantStatus: 200},
		{name: "expires_in 0 never expires", method: "POST", path: "/api/setup-keys", body: keyBody(0, ""), wantStatus: 200, wantBody: `"expires":"0001-01-01T00:00:00Z"`},
		{name: "negative expires_in", method: "POST", path: "/api/setup-keys", body: keyBody(-1, ""), wantStatus: 422, wantBody: "can not be in the past"},
		{name: "All in auto_groups", method: "POST", path: "/api/setup-keys", body: keyBody(60, `"grp-all"`), wantStatus: 422,
			wantBody: `"invalid auto groups: can't add 'All' group to the setup key"`},
		{name: "unknown group", method: "POST", path: "/api/setup-keys", body: keyBody(60, `"grp-x"`), wantStatus: 422, wantBody: "group not found: grp-x"},
		{name: "group linked to a revoked key", method: "DELETE", path: "/api/groups/grp-edge", wantStatus: 400,
			setup: func(s *Server) {
				s.keys["sk-9"] = &key{id: "sk-9", name: "nkudo-k", revoked: true, autoGroups: []string{"grp-edge"}}
			}, wantBody: "group has been linked to setup key: nkudo-k"},
		{name: "free group deleted", method: "DELETE", path: "/api/groups/grp-edge", wantStatus: 200},
		{name: "peer used by a router", method: "DELETE", path: "/api/peers/peer-a", setup: func(s *Server) { s.LinkPeer("peer-a", "network router") },
			wantStatus: 412, wantBody: `"precondition failed"`},
		{name: "no peer read", method: "GET", path: "/api/peers", setup: (*Server).DenyPeerRead, wantStatus: 200, wantBody: "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New(t)
			if tc.setup != nil {
				tc.setup(s)
			}
			token := tc.token
			if token == "" {
				token = Token
			}
			req, err := http.NewRequest(tc.method, s.srv.URL+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			req.Close = true
			req.Header.Set("Authorization", "Token "+token)
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			data, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, tc.wantStatus, resp.StatusCode, "%s", data)
			require.Contains(t, string(data), tc.wantBody)
		})
	}
}
