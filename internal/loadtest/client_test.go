package loadtest

import (
	"context"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// droppingListener closes the first drop connections it accepts before
// the TLS handshake: the server never sees a request on them.
type droppingListener struct {
	net.Listener
	drop atomic.Int64
}

func (l *droppingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.drop.Add(-1) < 0 {
			return c, err
		}
		_ = c.Close()
	}
}

// TestAPIClientRepeatsOnlyUnprocessedRequests: a request the server never
// processed (its connection closed before the request was written) is
// repeated, up to maxUnsentAttempts; one the server read is never repeated,
// since POST /v1/enroll is not idempotent.
func TestAPIClientRepeatsOnlyUnprocessedRequests(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		drop        int64
		hangUp      bool // the handler reads the request, then closes without answering
		wantErr     bool
		wantRetries int64
		wantHandled int64
	}{
		{name: "answered", wantHandled: 1},
		{name: "closed before the request twice", drop: 2, wantRetries: 2, wantHandled: 1},
		{name: "always closed before the request", drop: 1 << 30, wantErr: true, wantRetries: maxUnsentAttempts - 1},
		{name: "closed after the request was read", hangUp: true, wantErr: true, wantHandled: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var handled atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				handled.Add(1)
				if tc.hangUp {
					c, _, err := w.(http.Hijacker).Hijack()
					if err == nil {
						_ = c.Close()
					}
					return
				}
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(`{}`))
			}))
			l := &droppingListener{Listener: srv.Listener}
			l.drop.Store(tc.drop)
			srv.Listener = l
			srv.StartTLS()
			t.Cleanup(srv.Close)
			ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
			c, err := newAPIClient(srv.URL, ca, nil)
			require.NoError(t, err)
			t.Cleanup(c.closeIdle)

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err = c.do(ctx, call{method: http.MethodPost, path: "/v1/enroll", body: map[string]string{"token": "t"}, want: http.StatusCreated, slot: -1}, nil)
			if tc.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.wantRetries, c.unsentRetries.Load())
			require.Equal(t, tc.wantHandled, handled.Load())
		})
	}
}
