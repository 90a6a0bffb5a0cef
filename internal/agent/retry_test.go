package agent_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agent"
	"github.com/kubedoio/n-kudo/internal/backoff"
)

// TestRetryAfterHonouredWithoutGrowingBackoff: a handshake refused with
// 503 and Retry-After (the server's admission control) is retried after
// that delay, not after the exponential backoff, whose attempt count is
// left alone. The backoff here is an hour: using it would hang the test.
func TestRetryAfterHonouredWithoutGrowingBackoff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ta := e.enroll(time.Hour)
	var requests atomic.Int32
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"overloaded","message":"busy"}}`))
			return
		}
		e.hub.ServeAgent(w, r)
	}))
	front.TLS = e.auth.ServerTLSConfig()
	front.StartTLS()
	t.Cleanup(front.Close)

	bo := &backoff.Backoff{Base: time.Hour, Max: time.Hour}
	e.start(ta, func(o *agent.Options) {
		o.Identity.Info.Server = front.URL
		o.Backoff = bo
	})
	wait(t, "agent online after the Retry-After delay", func() bool { return e.hub.Online(ta.id) })
	require.GreaterOrEqual(t, requests.Load(), int32(2))
	assert.Equal(t, 0, bo.Attempt(), "a load refusal does not grow the backoff")
}
