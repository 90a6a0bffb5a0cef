package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/api"
	"github.com/kubedoio/n-kudo/internal/store"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAccessLog: one JSON line per request with its request id, and no
// secret (admin key, API key, Authorization header) ever logged.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	var sink syncBuffer
	e := newEnv(t, func(o *api.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&sink, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	tenant := e.createTenant("alpha")
	key, _ := e.createKey(tenant, store.RoleAdmin)
	e.must(http.StatusOK, req{method: "GET", path: "/v1/sites", key: key, header: map[string]string{"X-Request-ID": "log-req-1"}})
	e.must(http.StatusUnauthorized, req{method: "GET", path: "/v1/sites", key: "nk_secretguess", header: map[string]string{"X-Request-ID": "log-req-2"}})

	out := sink.String()
	for _, secret := range []string{testAdminKey, key, "nk_secretguess", "Bearer"} {
		require.NotContains(t, out, secret)
	}
	seen := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		require.NotEmpty(t, rec["request_id"], "every line names its request: %s", line)
		if id, ok := rec["request_id"].(string); ok {
			seen[id] = rec
		}
	}
	require.Contains(t, seen, "log-req-1")
	require.Equal(t, "/v1/sites", seen["log-req-1"]["route"])
	require.EqualValues(t, 200, seen["log-req-1"]["status"])
	require.Regexp(t, `^key:`, seen["log-req-1"]["actor"])
	require.Equal(t, "unauthenticated", seen["log-req-2"]["error_code"])
}
