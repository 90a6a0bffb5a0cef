package remote

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/tui/data"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	siteID = uuid.MustParse("11111111-1111-4111-8111-111111111111")
	hostID = uuid.MustParse("22222222-2222-4222-8222-222222222222")
	vmID   = uuid.MustParse("33333333-3333-4333-8333-333333333333")
	planID = uuid.MustParse("44444444-4444-4444-8444-444444444444")
)

// fakeAPI is a TLS loopback server with the routes the source uses. The
// event stream is driven by the test: each connection writes what arrives
// on chunks and ends when drop fires; status answers other than 200 make
// the stream refuse.
type fakeAPI struct {
	srv    *httptest.Server
	chunks chan string
	drop   chan struct{}

	mu     sync.Mutex // guards the following
	status int
	// holdHosts, when set, holds the next host listing after it read
	// (the answer is fixed) until the channel is closed; hostsHeld is
	// closed then.
	holdHosts, hostsHeld chan struct{}
	consoles             int
	lastIDs              []string
	requests             []string
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{chunks: make(chan string), drop: make(chan struct{}), status: http.StatusOK}
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /v1/sites", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, map[string]any{"items": []any{map[string]any{"id": siteID, "name": "edge-ams"}}, "next_cursor": ""})
	})
	mux.HandleFunc("GET /v1/hosts", func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		hold, held := f.holdHosts, f.hostsHeld
		f.holdHosts = nil
		f.mu.Unlock()
		if hold != nil {
			close(held)
			<-hold
		}
		writeJSON(w, 200, map[string]any{"items": []any{map[string]any{
			"id": hostID, "site_id": siteID, "hostname": "ams-01", "online": true,
			"facts":   map[string]any{"memory_total_bytes": 8 << 30, "hypervisor": map[string]any{"kind": "sim", "simulated": true}},
			"netbird": map[string]any{"state": "connected"},
		}}, "next_cursor": ""})
	})
	mux.HandleFunc("GET /v1/tenants", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 403, map[string]any{"error": map[string]any{"code": "forbidden", "message": "admin only"}})
	})
	mux.HandleFunc("POST /v1/vms/{id}/stop", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.Path+" key="+fmt.Sprint(r.Header.Get("Idempotency-Key") != ""))
		f.mu.Unlock()
		writeJSON(w, 202, map[string]any{"id": planID, "site_id": siteID, "status": "pending", "actions": []any{
			map[string]any{"id": uuid.New(), "type": "MicroVMStop", "vm_id": r.PathValue("id"), "status": "pending"},
		}})
	})
	mux.HandleFunc("POST /v1/vms/{id}/reboot", func(w http.ResponseWriter, r *http.Request) {
		// The answer internal/api gives for a VM not meant to run.
		writeJSON(w, 409, map[string]any{"error": map[string]any{"code": "vm_not_running",
			"message": "vm " + r.PathValue("id") + " is meant to be stopped; start it instead of rebooting it"}})
	})
	mux.HandleFunc("GET /v1/vms/{id}/console", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.consoles++
		n := f.consoles
		f.mu.Unlock()
		if r.PathValue("id") != vmID.String() {
			writeJSON(w, 409, map[string]any{"error": map[string]any{"code": "vm_deleted", "message": "vm was deleted"}})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		chunk := func(s string) {
			_, _ = fmt.Fprintf(w, "event: console\ndata: %s\n\n", base64.StdEncoding.EncodeToString([]byte(s)))
			w.(http.Flusher).Flush()
		}
		if n == 1 {
			// The first connection ends mid-prompt, as when the agent
			// goes away.
			chunk("boot\nlog")
			chunk("in: ")
			_, _ = fmt.Fprint(w, "event: end\ndata: {\"reason\":\"the vm's agent disconnected\"}\n\n")
			return
		}
		// A reconnect replays the log's tail, then new output.
		chunk("boot\nlogin: ")
		chunk("root\n")
		<-r.Context().Done()
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		status := f.status
		f.lastIDs = append(f.lastIDs, r.Header.Get("Last-Event-ID"))
		f.mu.Unlock()
		if status != http.StatusOK {
			writeJSON(w, status, map[string]any{"error": map[string]any{"code": "unavailable", "message": "down"}})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for {
			select {
			case c := <-f.chunks:
				_, _ = fmt.Fprint(w, c)
				w.(http.Flusher).Flush()
			case <-f.drop:
				return
			case <-r.Context().Done():
				return
			}
		}
	})
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) setStatus(s int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = s
}

func (f *fakeAPI) source(t *testing.T) *Source {
	t.Helper()
	s, err := New(client.Config{
		BaseURL: f.srv.URL, HTTPClient: f.srv.Client(), APIKey: "nk_test",
		ReconnectBase: 5 * time.Millisecond, ReconnectMax: 20 * time.Millisecond,
	}, Options{OfflineAfter: 2})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func next(t *testing.T, ch <-chan data.Event) data.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "stream closed early")
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return data.Event{}
}

// until reads events until one satisfies ok.
func until(t *testing.T, ch <-chan data.Event, ok func(data.Event) bool) data.Event {
	t.Helper()
	for {
		if ev := next(t, ch); ok(ev) {
			return ev
		}
	}
}

func conn(st data.ConnState) func(data.Event) bool {
	return func(ev data.Event) bool { return ev.Type == data.EventConn && ev.Conn == st }
}

func sse(seq int, typ string, id uuid.UUID, obj any) string {
	b, _ := json.Marshal(map[string]any{"seq": seq, "type": typ, "at": "2026-11-27T23:00:00Z", "id": id, "object": obj})
	return fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", seq, typ, b)
}

func TestSubscribeReportsConnectionAndEvents(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	src := api.source(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := src.Subscribe(ctx)

	require.Equal(t, data.Connecting, next(t, ch).Conn)
	until(t, ch, conn(data.Connected))

	api.chunks <- sse(7, "vm.updated", vmID, map[string]any{"id": vmID, "name": "web-1", "site_id": siteID, "host_id": hostID, "desired_state": "running", "actual_state": "stopped"})
	ev := next(t, ch)
	require.Equal(t, data.EventVMUpdated, ev.Type)
	require.Equal(t, uint64(7), ev.Seq)
	require.NotNil(t, ev.VM)
	require.Equal(t, "web-1", ev.VM.Name)
	require.True(t, ev.VM.Drift())

	// The server goes away: reconnecting, then back, resuming after seq 7.
	api.drop <- struct{}{}
	until(t, ch, conn(data.Reconnecting))
	until(t, ch, conn(data.Connected))
	api.mu.Lock()
	require.Equal(t, "7", api.lastIDs[len(api.lastIDs)-1], "the stream resumes with Last-Event-ID")
	api.mu.Unlock()

	api.chunks <- "event: resync\ndata: {\"seq\":12}\n\n"
	require.Equal(t, data.EventResync, until(t, ch, func(ev data.Event) bool { return ev.Type != data.EventConn }).Type)

	// A server that keeps refusing is offline after OfflineAfter failures.
	api.setStatus(http.StatusServiceUnavailable)
	api.drop <- struct{}{}
	ev = until(t, ch, conn(data.Offline))
	require.ErrorIs(t, ev.Err, data.ErrUnavailable)
	api.setStatus(http.StatusOK)
	until(t, ch, conn(data.Connected))

	cancel()
	for range ch {
	}
}

func TestHostEventsMergeOntoListedHost(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	src := api.source(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	hosts, err := src.Hosts(ctx)
	require.NoError(t, err)
	require.Len(t, hosts, 1)
	require.True(t, hosts[0].Simulated, "sim hosts are labelled")
	require.Equal(t, "ams-01", hosts[0].Hostname)

	ch := src.Subscribe(ctx)
	until(t, ch, conn(data.Connected))
	api.chunks <- sse(1, "host.updated", hostID, map[string]any{"id": hostID, "online": true, "usage": map[string]any{"cpu_percent": 42.5, "memory_used_bytes": 2 << 30}})
	ev := until(t, ch, func(ev data.Event) bool { return ev.Type == data.EventHostUpdated })
	require.Equal(t, "ams-01", ev.Host.Hostname, "a heartbeat event keeps the listed fields")
	require.NotNil(t, ev.Host.Usage)
	require.InDelta(t, 0.25, ev.Host.Usage.MemoryFraction(), 0.001)
	require.Equal(t, 42.5, ev.Host.Usage.CPUPercent)

	// An undecodable object becomes a resync rather than a silent gap.
	api.chunks <- "id: 2\nevent: vm.updated\ndata: {\"seq\":2,\"type\":\"vm.updated\",\"object\":{\"vcpus\":\"many\"}}\n\n"
	require.Equal(t, data.EventResync, until(t, ch, func(ev data.Event) bool { return ev.Type != data.EventConn }).Type)
	cancel()
	for range ch {
	}
}

func TestCallsAndErrors(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	src := api.source(t)
	ctx := context.Background()

	sites, err := src.Sites(ctx)
	require.NoError(t, err)
	require.Equal(t, []data.Site{{ID: siteID.String(), Name: "edge-ams"}}, sites)

	p, err := src.VMAction(ctx, vmID.String(), data.OpStop)
	require.NoError(t, err)
	require.Equal(t, planID.String(), p.ID)
	require.Equal(t, vmID.String(), p.Actions[0].VMID)
	require.Equal(t, []string{"POST /v1/vms/" + vmID.String() + "/stop key=true"}, api.requests)

	_, err = src.Tenants(ctx)
	require.ErrorIs(t, err, data.ErrForbidden)

	_, err = src.VMAction(ctx, "not-a-uuid", data.OpStart)
	require.ErrorIs(t, err, data.ErrNotFound)

	_, err = src.VMAction(ctx, vmID.String(), data.OpReboot)
	require.Equal(t, "vm_not_running", data.Reason(err), "the server's reason code survives: %v", err)
	require.ErrorIs(t, err, client.ErrConflict)

	ch := src.FollowLogs(ctx, data.LogTarget{Kind: data.LogConsole, ID: "not-a-uuid"})
	b := <-ch
	require.ErrorIs(t, b.Err, data.ErrNotFound)
	_, open := <-ch
	require.False(t, open)

	api.srv.Close()
	_, err = src.Sites(ctx)
	require.ErrorIs(t, err, data.ErrUnavailable)
}

func TestFollowConsoleCutsLinesAcrossReconnects(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	src := api.source(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := src.FollowLogs(ctx, data.LogTarget{Kind: data.LogConsole, ID: vmID.String()})
	type shown struct {
		text    string
		partial bool
	}
	var got []shown
	for len(got) == 0 || got[len(got)-1] != (shown{"login: root", false}) {
		select {
		case b, ok := <-ch:
			require.True(t, ok, "tail closed early")
			require.NoError(t, b.Err)
			for _, l := range b.Lines {
				require.Equal(t, "console", l.Stream)
				got = append(got, shown{l.Text, l.Partial})
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no console output within 10s; got %v", got)
		}
	}
	require.Equal(t, []shown{{"boot", false}, {"log", true}, {"login: ", true}, {"login: root", false}}, got,
		"the replayed tail is skipped and the prompt is completed, not repeated")
	cancel()
	for range ch {
	}

	// A deleted VM ends the tail with the server's refusal.
	ch = src.FollowLogs(context.Background(), data.LogTarget{Kind: data.LogConsole, ID: uuid.NewString()})
	b := <-ch
	require.ErrorIs(t, b.Err, client.ErrConflict)
	_, open := <-ch
	require.False(t, open)
}

// TestHostPatchesRacingAListing covers host.updated patches against the
// listing they merge onto: a patch received while a listing is in flight
// (whose reads may predate it) must survive the listing, and a patch of a
// host never seen whole must not show a host made of the patch alone.
func TestHostPatchesRacingAListing(t *testing.T) {
	t.Parallel()
	netbirdPatch := map[string]any{"id": hostID, "online": true, "netbird": map[string]any{"state": "connected", "ip": "100.64.0.7"}}
	usagePatch := map[string]any{"id": hostID, "online": true, "usage": map[string]any{"cpu_percent": 12.5}}
	for _, tc := range []struct {
		name string
		// listed: the host was listed before the patch arrives.
		listed bool
		// during: the patch arrives while a listing is in flight.
		during bool
		// want is what the patch turns into at once: a host event, a
		// resync, or nothing (the listing in flight carries it).
		want data.EventType
	}{
		{name: "patch of a listed host", listed: true, want: data.EventHostUpdated},
		{name: "patch of a listed host during a re-list", listed: true, during: true, want: data.EventHostUpdated},
		{name: "patch of an unknown host during the first listing", during: true},
		{name: "patch of a host never listed", want: data.EventResync},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			api := newFakeAPI(t)
			src := api.source(t)
			ctx := t.Context()
			if tc.listed {
				_, err := src.Hosts(ctx)
				require.NoError(t, err)
			}
			hold, held := make(chan struct{}), make(chan struct{})
			var release sync.Once
			t.Cleanup(func() { release.Do(func() { close(hold) }) })
			type listing struct {
				hosts []data.Host
				err   error
			}
			listed := make(chan listing, 1)
			if tc.during {
				api.mu.Lock()
				api.holdHosts, api.hostsHeld = hold, held
				api.mu.Unlock()
				go func() {
					hosts, err := src.Hosts(ctx)
					listed <- listing{hosts, err}
				}()
				<-held
			}

			ev, ok := src.convEvent(hostEvent(t, 1, netbirdPatch))
			if tc.want == "" {
				require.False(t, ok, "nothing to show before the listing ends")
			} else {
				require.True(t, ok)
				require.Equal(t, tc.want, ev.Type)
			}
			if ev.Type == data.EventHostUpdated {
				require.Equal(t, "ams-01", ev.Host.Hostname, "the patch keeps the listed fields")
				require.Equal(t, "100.64.0.7", ev.Host.NetBird.IP)
			}
			if tc.during {
				// The listing read before the patch; what it returns
				// and caches has the patch merged in.
				release.Do(func() { close(hold) })
				l := <-listed
				require.NoError(t, l.err)
				require.Len(t, l.hosts, 1)
				require.Equal(t, "100.64.0.7", l.hosts[0].NetBird.IP, "the listing keeps the patch it raced with")
			}
			if tc.want == data.EventResync {
				return
			}
			// A later heartbeat repeats nothing of the patch; the host
			// keeps it.
			ev, ok = src.convEvent(hostEvent(t, 2, usagePatch))
			require.True(t, ok)
			require.Equal(t, data.EventHostUpdated, ev.Type)
			require.Equal(t, "100.64.0.7", ev.Host.NetBird.IP)
			require.True(t, ev.Host.Simulated, "facts from the listing stay")
			require.Equal(t, 12.5, ev.Host.Usage.CPUPercent)
		})
	}
}

// hostEvent is a host.updated event as the client decodes it off the
// stream.
func hostEvent(t *testing.T, seq uint64, obj any) client.Event {
	t.Helper()
	b, err := json.Marshal(obj)
	require.NoError(t, err)
	return client.Event{Seq: seq, Type: client.EventHostUpdated, ID: hostID, Object: b}
}
