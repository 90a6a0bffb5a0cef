package client_test

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/internal/client/clienttest"
)

// scriptedStream serves one scripted answer per connection over real TLS
// on loopback and records what each connection asked for. It stands in
// for the server's streaming routes where a test needs to cut a
// connection at an exact point, which the real server cannot be told
// to do; everything else is tested against the real server.
type scriptedStream struct {
	mu    sync.Mutex // guards the following
	asked []streamAsk

	script []func(w http.ResponseWriter)
}

type streamAsk struct {
	lastEventID string
	query       string
	path        string
}

func (s *scriptedStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.asked)
	s.asked = append(s.asked, streamAsk{lastEventID: r.Header.Get("Last-Event-ID"), query: r.URL.RawQuery, path: r.URL.Path})
	s.mu.Unlock()
	if n >= len(s.script) {
		http.Error(w, "script exhausted", http.StatusGone)
		return
	}
	s.script[n](w)
}

func (s *scriptedStream) asks() []streamAsk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]streamAsk(nil), s.asked...)
}

func sse(chunks ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		for _, c := range chunks {
			fmt.Fprint(w, c)
			w.(http.Flusher).Flush()
		}
	}
}

func unavailable(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprint(w, `{"error":{"code":"unavailable","message":"try later"}}`)
}

func startScripted(t *testing.T, s *scriptedStream) *client.Client {
	t.Helper()
	srv := httptest.NewUnstartedServer(s)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	c, err := client.New(client.Config{BaseURL: srv.URL, CAPEM: ca, APIKey: "nk_test",
		ReconnectBase: time.Millisecond, ReconnectMax: 10 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func TestEventsResumeAndResync(t *testing.T) {
	t.Parallel()
	host, vm := uuid.New(), uuid.New()
	s := &scriptedStream{script: []func(http.ResponseWriter){
		unavailable,
		sse(": keepalive\n\n",
			fmt.Sprintf("id: 1\nevent: host.updated\ndata: {\"seq\":1,\"type\":\"host.updated\",\"at\":\"2026-11-27T23:00:00Z\",\"id\":%q,\"object\":{\"id\":%q,\"hostname\":\"edge-1\",\"usage\":{\"cpu_percent\":12.5}}}\n\n", host, host),
			fmt.Sprintf("id: 2\nevent: vm.updated\ndata: {\"seq\":2,\"type\":\"vm.updated\",\"id\":%q,\"object\":{\"id\":%q,\"name\":\"web-1\",\"drift\":true}}\n\n", vm, vm),
		),
		sse(fmt.Sprintf("id: 2\nevent: vm.updated\ndata: {\"seq\":2,\"type\":\"vm.updated\",\"id\":%q,\"object\":{}}\n\n", vm),
			"event: resync\ndata: {\"seq\":10}\n\n",
			fmt.Sprintf("id: 11\nevent: vm.deleted\ndata: {\"seq\":11,\"type\":\"vm.deleted\",\"id\":%q,\"object\":{\"id\":%q}}\n\n", vm, vm),
		),
	}}
	c := startScripted(t, s)

	errStop := errors.New("stop")
	var got []client.Event
	err := c.Events(context.Background(), 0, func(e client.Event) error {
		got = append(got, e)
		if e.Seq == 11 {
			return errStop
		}
		return nil
	})
	require.ErrorIs(t, err, errStop, "the callback's error ends the stream as is")

	require.Len(t, got, 4, "the replayed event 2 is not delivered twice")
	require.Equal(t, client.EventHostUpdated, got[0].Type)
	h, err := got[0].Host()
	require.NoError(t, err)
	require.Equal(t, "edge-1", h.Hostname)
	require.NotNil(t, h.Usage)
	require.InDelta(t, 12.5, h.Usage.CPUPercent, 1e-9)
	// A heartbeat patch keeps what it does not carry.
	base := client.Host{ID: host, Hostname: "edge-1", Facts: client.HostFacts{CPUCores: 8}}
	patch := client.Event{Type: client.EventHostUpdated, Object: []byte(`{"id":"` + host.String() + `","online":true,"usage":{"cpu_percent":50}}`)}
	merged, err := patch.UpdateHost(base)
	require.NoError(t, err)
	require.True(t, merged.Online)
	require.Equal(t, 8, merged.Facts.CPUCores)
	require.Equal(t, "edge-1", merged.Hostname)
	require.InDelta(t, 50.0, merged.Usage.CPUPercent, 1e-9)
	_, err = client.Event{Type: client.EventHostUpdated}.UpdateHost(base)
	require.ErrorIs(t, err, client.ErrInvalidResponse)

	v, err := got[1].VM()
	require.NoError(t, err)
	require.True(t, v.Drift)
	require.Equal(t, client.Event{Type: client.EventResync, Seq: 10}, got[2])
	require.Equal(t, client.EventVMDeleted, got[3].Type)
	require.Equal(t, vm, got[3].ID)

	asks := s.asks()
	require.Len(t, asks, 3)
	require.Equal(t, "/v1/events", asks[0].path)
	require.Empty(t, asks[0].lastEventID, "since 0 means from now")
	require.Empty(t, asks[1].lastEventID)
	require.Equal(t, "2", asks[2].lastEventID)
	require.Equal(t, "since=2", asks[2].query)
}

func TestFollowLogsResumes(t *testing.T) {
	t.Parallel()
	s := &scriptedStream{script: []func(http.ResponseWriter){
		sse(`id: 4`+"\n"+`data: {"seq":4,"at":"2026-11-27T23:00:00Z","stream":"info","message":"creating vm"}`+"\n\n",
			`id: 5`+"\n"+`data: {"seq":5,"stream":"info","message":"copying disk"}`+"\n\n",
			"data: {\"seq\":6,\"mess"), // cut inside an event
		sse(`id: 5`+"\n"+`data: {"seq":5,"stream":"info","message":"copying disk"}`+"\n\n",
			": keepalive\n\n",
			`id: 6`+"\n"+`data: {"seq":6,"stream":"stderr","message":"booted"}`+"\n\n",
			"event: end\ndata: {}\n\n"),
	}}
	c := startScripted(t, s)
	exec := uuid.New()
	var got []client.LogLine
	err := c.FollowLogs(context.Background(), exec, 3, func(l client.LogLine) error {
		got = append(got, l)
		return nil
	})
	require.NoError(t, err, "event: end completes the stream")
	require.Len(t, got, 3)
	for i, want := range []string{"creating vm", "copying disk", "booted"} {
		require.Equal(t, int64(4+i), got[i].Seq)
		require.Equal(t, want, got[i].Message)
	}
	asks := s.asks()
	require.Len(t, asks, 2)
	require.Equal(t, "/v1/executions/"+exec.String()+"/logs", asks[0].path)
	require.Equal(t, "3", asks[0].lastEventID)
	require.Equal(t, "after=3&follow=true", asks[0].query)
	require.Equal(t, "5", asks[1].lastEventID)
	require.Equal(t, "after=5&follow=true", asks[1].query)
}

func TestStreamsRefusalsDoNotRetry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script func(http.ResponseWriter)
		want   error
	}{
		{"not an event stream", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html>")
		}, client.ErrInvalidResponse},
		{"malformed event", sse("data: {not json\n\n"), client.ErrInvalidResponse},
		{"forbidden", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"error":{"code":"forbidden","message":"no"}}`)
		}, client.ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &scriptedStream{script: []func(http.ResponseWriter){tt.script}}
			c := startScripted(t, s)
			err := c.Events(context.Background(), 5, func(client.Event) error { return nil })
			require.ErrorIs(t, err, tt.want)
			require.Len(t, s.asks(), 1)
		})
	}
}

func TestStreamsAgainstServer(t *testing.T) {
	t.Parallel()
	srv := clienttest.Start(t)
	tn := srv.NewTenant(t, "acme")
	c := srv.Client(t, tn.OperatorKey, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	err := c.FollowLogs(ctx, uuid.New(), 0, func(client.LogLine) error { return nil })
	require.True(t, client.IsNotFound(err), "an unknown execution is refused, not retried: %v", err)

	bad := srv.Client(t, "nk_wrong", "")
	err = bad.Events(ctx, 0, func(client.Event) error { return nil })
	var ae *client.APIError
	require.ErrorAs(t, err, &ae, "a refused stream is not retried")
	require.Less(t, ae.Status, 500)
	require.NoError(t, ctx.Err())
}

func TestStreamStopsOnContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := &scriptedStream{script: []func(http.ResponseWriter){func(w http.ResponseWriter) {
		sse("id: 1\ndata: {\"seq\":1,\"type\":\"site.updated\"}\n\n")(w)
		<-release
	}}}
	c := startScripted(t, s)
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithCancel(context.Background())
	err := c.Events(ctx, 0, func(e client.Event) error {
		cancel() // the receiver goes away while the stream is open
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
}
