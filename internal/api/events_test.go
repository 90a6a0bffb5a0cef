package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/api"
	"github.com/kubedoio/n-kudo/internal/event"
	"github.com/kubedoio/n-kudo/internal/store"
)

// changeEvent is one parsed Server-Sent Event.
type changeEvent struct {
	id, typ string
	data    []byte
}

func (s changeEvent) seq(t *testing.T) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s.id, 10, 64)
	require.NoError(t, err, "id %q", s.id)
	return n
}

// changePayload is the data of a change event.
type changePayload struct {
	Seq    uint64          `json:"seq"`
	Type   string          `json:"type"`
	At     time.Time       `json:"at"`
	ID     uuid.UUID       `json:"id"`
	Object json.RawMessage `json:"object"`
}

func (s changeEvent) payload(t *testing.T) changePayload {
	t.Helper()
	var p changePayload
	require.NoError(t, json.Unmarshal(s.data, &p), "data: %s", s.data)
	require.Equal(t, s.typ, p.Type)
	require.Equal(t, s.id, strconv.FormatUint(p.Seq, 10))
	return p
}

// eventConn is an open GET /v1/events; a goroutine parses its body until
// close cancels the request.
type eventConn struct {
	events   chan changeEvent
	comments chan string
	cancel   context.CancelFunc
	done     chan struct{}
}

// newEventsEnv is an env whose API has an event broker and the decorated
// store publishing to it (as the server wires them); the decorated store
// is returned for writes the agent channel would make.
func newEventsEnv(t *testing.T, history int) (*env, *event.Broker, *event.Store) {
	t.Helper()
	return newEventsEnvWith(t, event.Options{History: history})
}

func newEventsEnvWith(t *testing.T, opts event.Options) (*env, *event.Broker, *event.Store) {
	t.Helper()
	b := event.NewBroker(opts)
	var ds *event.Store
	e := newEnv(t, func(o *api.Options) {
		ds = event.NewStore(o.Store, b, nil)
		o.Store = ds
		o.Events = b
	})
	return e, b, ds
}

func (e *env) openEvents(t *testing.T, key, query string, header map[string]string) *eventConn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/v1/events"+query, nil)
	require.NoError(t, err)
	hr.Header.Set("Authorization", "Bearer "+key)
	for k, v := range header {
		hr.Header.Set(k, v)
	}
	resp, err := e.cli.Do(hr)
	if err != nil {
		cancel()
		require.NoError(t, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /v1/events: status %d", resp.StatusCode)
	}
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	c := &eventConn{events: make(chan changeEvent, 100), comments: make(chan string, 10), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer close(c.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var cur changeEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.typ != "" || cur.data != nil {
					c.events <- cur
				}
				cur = changeEvent{}
			case strings.HasPrefix(line, ":"):
				select {
				case c.comments <- strings.TrimSpace(line[1:]):
				default:
				}
			case strings.HasPrefix(line, "id: "):
				cur.id = line[len("id: "):]
			case strings.HasPrefix(line, "event: "):
				cur.typ = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				cur.data = []byte(line[len("data: "):])
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *eventConn) close() {
	c.cancel()
	<-c.done
}

// next returns the next event, failing after a generous deadline.
func (c *eventConn) next(t *testing.T) changeEvent {
	t.Helper()
	select {
	case ev, ok := <-c.events:
		require.True(t, ok, "the stream ended")
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return changeEvent{}
	}
}

// nextChange returns the next event, which must be a change of typ, with
// its payload.
func (c *eventConn) nextChange(t *testing.T, typ string) changePayload {
	t.Helper()
	ev := c.next(t)
	require.Equal(t, typ, ev.typ, "data: %s", ev.data)
	return ev.payload(t)
}

func TestEventsDeliverTenantChanges(t *testing.T) {
	t.Parallel()
	e, _, _ := newEventsEnv(t, 0)
	a := e.seedFleet("alpha")
	b := e.seedFleet("beta")

	mine := e.openEvents(t, a.viewer, "", nil)
	theirs := e.openEvents(t, b.viewer, "", nil)

	siteID := e.createSite(a.operator, "alpha-new")
	p := mine.nextChange(t, event.TypeSiteUpdated)
	require.Equal(t, siteID, p.ID)
	var site struct{ ID, Name string }
	require.NoError(t, json.Unmarshal(p.Object, &site))
	require.Equal(t, "alpha-new", site.Name)
	require.Equal(t, siteID.String(), site.ID)
	require.False(t, p.At.IsZero())

	// beta's first event is its own: alpha's change, published before,
	// never reached it.
	betaSite := e.createSite(b.operator, "beta-new")
	require.Equal(t, betaSite, theirs.nextChange(t, event.TypeSiteUpdated).ID)

	// The admin key sees a tenant's stream when it names the tenant.
	admin := e.openEvents(t, testAdminKey, "?tenant="+a.tenant.String(), nil)
	e.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/sites/" + siteID.String(), key: a.operator})
	require.Equal(t, siteID, mine.nextChange(t, event.TypeSiteDeleted).ID)
	require.Equal(t, siteID, admin.nextChange(t, event.TypeSiteDeleted).ID)
}

func TestEventsHostUsage(t *testing.T) {
	t.Parallel()
	e, _, ds := newEventsEnv(t, 0)
	a := e.seedFleet("alpha")
	path := "/v1/hosts/" + a.host.String()

	var before map[string]any
	e.must(http.StatusOK, req{method: "GET", path: path, key: a.viewer}).json(t, &before)
	require.NotContains(t, before, "usage", "usage is omitted until reported")

	stream := e.openEvents(t, a.viewer, "", nil)
	// A heartbeat batch as the hub writes it, through the decorated store.
	require.NoError(t, ds.UpsertHostStates(context.Background(), []store.HostState{{
		HostID: a.host, AgentID: a.agent, TenantID: a.tenant, LastSeenAt: time.Now(),
		Usage: json.RawMessage(`{"cpu_percent":12.5,"memory_used_bytes":1024}`),
	}}))
	p := stream.nextChange(t, event.TypeHostUpdated)
	require.Equal(t, a.host, p.ID)
	var patch map[string]any
	require.NoError(t, json.Unmarshal(p.Object, &patch))
	require.Equal(t, true, patch["online"])
	require.Equal(t, 12.5, patch["usage"].(map[string]any)["cpu_percent"])
	require.NotContains(t, patch, "hostname", "a heartbeat patch carries only what changed")
	require.NotContains(t, patch, "facts")

	var after map[string]any
	e.must(http.StatusOK, req{method: "GET", path: path, key: a.viewer}).json(t, &after)
	require.Equal(t, 12.5, after["usage"].(map[string]any)["cpu_percent"])
}

func TestEventsResume(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		query  string
		header bool
	}{
		{name: "Last-Event-ID header", header: true},
		{name: "since query parameter"},
		{name: "header wins over query", header: true, query: "?since=1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, _, _ := newEventsEnv(t, 0)
			a := e.seedFleet("alpha")
			b := e.seedFleet("beta")

			first := e.openEvents(t, a.viewer, "", nil)
			e.createSite(a.operator, "s1")
			seen := first.nextChange(t, event.TypeSiteUpdated).Seq
			first.close()

			// Missed while away: two of alpha's changes, one of beta's.
			s2 := e.createSite(a.operator, "s2")
			e.createSite(b.operator, "b2")
			s3 := e.createSite(a.operator, "s3")

			cursor := strconv.FormatUint(seen, 10)
			query, header := tc.query, map[string]string(nil)
			if tc.header {
				header = map[string]string{"Last-Event-ID": cursor}
			} else {
				query = "?since=" + cursor
			}
			again := e.openEvents(t, a.viewer, query, header)
			p2 := again.nextChange(t, event.TypeSiteUpdated)
			require.Equal(t, s2, p2.ID)
			require.Greater(t, p2.Seq, seen)
			p3 := again.nextChange(t, event.TypeSiteUpdated)
			require.Equal(t, s3, p3.ID)
			require.Greater(t, p3.Seq, p2.Seq)
			// Then live, with nothing else in between.
			s4 := e.createSite(a.operator, "s4")
			require.Equal(t, s4, again.nextChange(t, event.TypeSiteUpdated).ID)
		})
	}
}

func TestEventsResyncWhenTheCursorIsUnknown(t *testing.T) {
	t.Parallel()
	e, broker, _ := newEventsEnv(t, 3)
	a := e.seedFleet("alpha")

	stream := e.openEvents(t, a.viewer, "", nil)
	e.createSite(a.operator, "s1")
	old := stream.nextChange(t, event.TypeSiteUpdated).Seq
	stream.close()
	for i := range 4 { // more than the history holds
		e.createSite(a.operator, "more-"+strconv.Itoa(i))
	}

	tests := []struct {
		name   string
		cursor uint64
	}{
		{name: "older than the history", cursor: old},
		{name: "from an earlier server", cursor: 42},
		{name: "never handed out", cursor: broker.Head() + 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			head := broker.Head()
			c := e.openEvents(t, a.viewer, "?since="+strconv.FormatUint(tc.cursor, 10), nil)
			ev := c.next(t)
			require.Equal(t, event.TypeResync, ev.typ)
			require.Equal(t, head, ev.seq(t))
			var data map[string]uint64
			require.NoError(t, json.Unmarshal(ev.data, &data))
			require.Equal(t, map[string]uint64{"seq": head}, data)
			// The stream carries on live after the resync point.
			id := e.createSite(a.operator, "after-"+tc.name)
			p := c.nextChange(t, event.TypeSiteUpdated)
			require.Equal(t, id, p.ID)
			require.Greater(t, p.Seq, head)
			c.close()
		})
	}
}

func TestEventsRefusals(t *testing.T) {
	t.Parallel()
	plain := newEnv(t, nil)
	pa := plain.seedFleet("alpha")
	e, _, _ := newEventsEnv(t, 0)
	a := e.seedFleet("alpha")

	tests := []struct {
		name   string
		env    *env
		r      req
		status int
		code   string
	}{
		{name: "no broker", env: plain, r: req{method: "GET", path: "/v1/events", key: pa.viewer}, status: http.StatusServiceUnavailable, code: api.CodeUnavailable},
		{name: "no key", env: e, r: req{method: "GET", path: "/v1/events"}, status: http.StatusUnauthorized, code: api.CodeUnauthenticated},
		{name: "admin without tenant", env: e, r: req{method: "GET", path: "/v1/events", key: testAdminKey}, status: http.StatusBadRequest, code: api.CodeInvalidArgument},
		{name: "bad since", env: e, r: req{method: "GET", path: "/v1/events?since=yesterday", key: a.viewer}, status: http.StatusBadRequest, code: api.CodeInvalidArgument},
		{name: "bad Last-Event-ID", env: e, r: req{method: "GET", path: "/v1/events", key: a.viewer, header: map[string]string{"Last-Event-ID": "-1"}}, status: http.StatusBadRequest, code: api.CodeInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.env.must(tc.status, tc.r)
			require.Equal(t, tc.code, resp.errCode(t))
		})
	}
}

func TestEventsEndOnShutdown(t *testing.T) {
	t.Parallel()
	e, _, _ := newEventsEnv(t, 0)
	a := e.seedFleet("alpha")
	c := e.openEvents(t, a.viewer, "", nil)
	e.api.CloseStreams()
	select {
	case _, ok := <-c.events:
		require.False(t, ok, "no event expected, only the end of the stream")
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end")
	}
}

// TestEventsLaggingStreamResumes floods a stream whose subscriber buffer
// holds one event: whether or not the handler falls behind (it usually
// does), the client gets every event exactly once and in order, since the
// broker's history still holds what a lagging stream missed.
func TestEventsLaggingStreamResumes(t *testing.T) {
	t.Parallel()
	e, _, ds := newEventsEnvWith(t, event.Options{SubscriberBuffer: 1})
	a := e.seedFleet("alpha")
	c := e.openEvents(t, a.viewer, "", nil)

	const n = 500
	states := make([]store.HostState, n)
	at := time.Now()
	for i := range states {
		states[i] = store.HostState{HostID: a.host, AgentID: a.agent, TenantID: a.tenant, LastSeenAt: at.Add(time.Duration(i) * time.Millisecond)}
	}
	require.NoError(t, ds.UpsertHostStates(context.Background(), states))
	var last uint64
	for i := range n {
		ev := c.next(t)
		require.Equal(t, event.TypeHostUpdated, ev.typ, "event %d: %s", i, ev.data)
		seq := ev.seq(t)
		if last != 0 {
			require.Equal(t, last+1, seq, "event %d", i)
		}
		last = seq
	}
}
