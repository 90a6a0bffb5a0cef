package client_test

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/client"
)

func forbidden(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	fmt.Fprint(w, `{"error":{"code":"forbidden","message":"no"}}`)
}

func hostOffline(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusConflict)
	fmt.Fprint(w, `{"error":{"code":"host_offline","message":"host is offline"}}`)
}

// TestOnStreamState checks what the stream-state hook hears for each way
// a stream connects, breaks, completes or gives up.
func TestOnStreamState(t *testing.T) {
	t.Parallel()
	exec, vm := uuid.New(), uuid.New()
	errStop := errors.New("stop")
	type want struct {
		connected bool
		err       error // nil: no error; else errors.Is target
	}
	tests := []struct {
		name    string
		script  []func(http.ResponseWriter)
		run     func(c *client.Client) error
		wantErr error
		stream  string
		want    []want
	}{
		{
			name:   "events: refused, connected, cut, then refused for good",
			script: []func(http.ResponseWriter){unavailable, sse("id: 1\nevent: site.deleted\ndata: {\"seq\":1,\"type\":\"site.deleted\"}\n\n"), forbidden},
			run: func(c *client.Client) error {
				return c.Events(context.Background(), 0, func(client.Event) error { return nil })
			},
			wantErr: client.ErrForbidden,
			stream:  "/v1/events",
			want:    []want{{false, client.ErrUnavailable}, {true, nil}, {false, client.ErrUnreachable}, {false, client.ErrForbidden}},
		},
		{
			name:   "logs: connected, then complete",
			script: []func(http.ResponseWriter){sse("event: log\ndata: {\"seq\":1,\"message\":\"hi\"}\n\n", "event: end\ndata: {}\n\n")},
			run: func(c *client.Client) error {
				return c.FollowLogs(context.Background(), exec, 0, func(client.LogLine) error { return nil })
			},
			stream: "/v1/executions/" + exec.String() + "/logs",
			want:   []want{{true, nil}, {false, nil}},
		},
		{
			name: "console: an offline host is retried; the caller's stop is not reported",
			script: []func(http.ResponseWriter){hostOffline,
				sse("event: console\ndata: " + base64.StdEncoding.EncodeToString([]byte("login: ")) + "\n\n")},
			run: func(c *client.Client) error {
				return c.FollowConsole(context.Background(), vm, func([]byte) error { return errStop })
			},
			wantErr: errStop,
			stream:  "/v1/vms/" + vm.String() + "/console",
			want:    []want{{false, client.ErrConflict}, {true, nil}},
		},
		{
			name:   "console: the end event reconnects",
			script: []func(http.ResponseWriter){sse("event: end\ndata: {\"reason\":\"the vm's agent disconnected\"}\n\n"), forbidden},
			run: func(c *client.Client) error {
				return c.FollowConsole(context.Background(), vm, func([]byte) error { return nil })
			},
			wantErr: client.ErrForbidden,
			stream:  "/v1/vms/" + vm.String() + "/console",
			want:    []want{{true, nil}, {false, client.ErrUnreachable}, {false, client.ErrForbidden}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &scriptedStream{script: tt.script}
			srv := httptest.NewUnstartedServer(s)
			srv.StartTLS()
			t.Cleanup(srv.Close)
			states := &streamStates{}
			c, err := client.New(client.Config{BaseURL: srv.URL, APIKey: "nk_test",
				CAPEM:         pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
				ReconnectBase: time.Millisecond, ReconnectMax: 10 * time.Millisecond, OnStreamState: states.record})
			require.NoError(t, err)
			t.Cleanup(c.Close)

			err = tt.run(c)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			got := states.snapshot()
			require.Len(t, got, len(tt.want), "%+v", got)
			for i, w := range tt.want {
				require.Equal(t, tt.stream, got[i].stream)
				require.Equal(t, w.connected, got[i].connected, "report %d", i)
				if w.err == nil {
					require.NoError(t, got[i].err, "report %d", i)
				} else {
					require.ErrorIs(t, got[i].err, w.err, "report %d", i)
				}
			}
		})
	}
}

// TestOnStreamStateQuietAfterCancel: a caller that stops a stream hears
// nothing more about it.
func TestOnStreamStateQuietAfterCancel(t *testing.T) {
	t.Parallel()
	s := &scriptedStream{script: []func(http.ResponseWriter){unavailable, unavailable, unavailable}}
	srv := httptest.NewUnstartedServer(s)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	reports := 0
	c, err := client.New(client.Config{BaseURL: srv.URL, APIKey: "nk_test",
		CAPEM:         pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
		ReconnectBase: time.Hour, ReconnectMax: time.Hour,
		OnStreamState: func(string, bool, error) {
			reports++
			cancel() // the caller leaves during the backoff
		}})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	err = c.Events(ctx, 0, func(client.Event) error { return nil })
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 1, reports)
}
