package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/notify"
	"github.com/kubedoio/n-kudo/internal/store"
)

// replicaPair is two clustered hubs on one in-process bus: the bus
// carries what PostgreSQL LISTEN/NOTIFY carries between real replicas
// (internal/server's replica test runs the same relay on PostgreSQL).
type replicaPair struct {
	a, b *env
	bus  *notify.Local
}

func newReplicaPair(t *testing.T, keepAlive time.Duration, listen ...func(*notify.Local)) *replicaPair {
	t.Helper()
	bus := notify.NewLocal(notify.LocalOptions{})
	for _, l := range listen {
		l(bus)
	}
	tweak := func(o *hub.Options) {
		o.Bus, o.Clustered, o.ConsoleKeepAlive = bus, true, keepAlive
	}
	p := &replicaPair{a: newEnv(t, tweak), b: newEnv(t, tweak), bus: bus}
	runBus(t, bus)
	return p
}

// agentOnA connects an agent with a running VM to replica A.
func (p *replicaPair) agentOnA() (*agent, uuid.UUID, *client) {
	ag := p.a.enroll()
	vm := p.a.createVM(ag, store.VMRunning)
	c, _ := p.a.connect(ag)
	return ag, vm, c
}

// readUntil reads a stream until it holds want bytes or ends.
func readUntil(t *testing.T, cs *hub.ConsoleStream, want int) []byte {
	t.Helper()
	var got []byte
	timeout := time.After(waitTimeout)
	for len(got) < want {
		select {
		case chunk, ok := <-cs.C():
			require.True(t, ok, "stream ended after %d bytes: %v", len(got), cs.Err())
			got = append(got, chunk...)
		case <-timeout:
			t.Fatalf("got %d of %d bytes", len(got), want)
		}
	}
	return got
}

// A console opened on replica B for an agent connected to replica A is
// relayed over the bus: a full-size chunk arrives whole (in notices under
// NOTIFY's limit), the snapshot marker follows it, live output follows
// the marker, and closing the reader on B stops the tail on the agent.
func TestConsoleRelayedFromAnotherReplica(t *testing.T) {
	t.Parallel()
	p := newReplicaPair(t, 0)
	ag, vm, c := p.agentOnA()

	cs, err := p.b.hub.OpenConsole(t.Context(), ag.id, vm)
	require.NoError(t, err)
	start := decodeConsoleStart(t, c.expect(agentproto.TypeConsoleStart))
	require.Equal(t, vm, start.VMID)

	snapshot := bytes.Repeat([]byte("0123456789abcdef"), agentproto.MaxConsoleChunkBytes/16)
	c.send(agentproto.TypeConsoleData, "", &agentproto.ConsoleData{VMID: vm, StreamID: start.StreamID, Data: snapshot})
	c.send(agentproto.TypeConsoleData, "", &agentproto.ConsoleData{VMID: vm, StreamID: start.StreamID, SnapshotDone: true})
	select {
	case <-cs.Snapshot():
	case <-time.After(waitTimeout):
		t.Fatal("snapshot marker never relayed")
	}
	// Every snapshot byte was delivered before the marker.
	got := make([]byte, 0, len(snapshot))
	for len(cs.C()) > 0 {
		got = append(got, <-cs.C()...)
	}
	require.Equal(t, snapshot, got)

	c.send(agentproto.TypeConsoleData, "", &agentproto.ConsoleData{VMID: vm, StreamID: start.StreamID, Data: []byte("login: ")})
	require.Equal(t, []byte("login: "), readUntil(t, cs, len("login: ")))

	cs.Close()
	stop, err := agentproto.DecodeData[agentproto.ConsoleStop](c.expect(agentproto.TypeConsoleStop))
	require.NoError(t, err)
	require.Equal(t, start.StreamID, stop.StreamID)
	c.roundTrip()
	require.True(t, p.a.hub.Online(ag.id))
}

// The reader on B learns when the agent's session on A ends.
func TestRelayedConsoleEndsWithTheAgent(t *testing.T) {
	t.Parallel()
	p := newReplicaPair(t, 0)
	ag, vm, c := p.agentOnA()

	cs, err := p.b.hub.OpenConsole(t.Context(), ag.id, vm)
	require.NoError(t, err)
	defer cs.Close()
	c.expect(agentproto.TypeConsoleStart)
	require.NoError(t, c.conn.CloseNow())
	select {
	case _, ok := <-cs.C():
		require.False(t, ok, "no data was sent")
	case <-time.After(waitTimeout):
		t.Fatal("relayed stream outlived the agent's session")
	}
	require.ErrorIs(t, cs.Err(), hub.ErrAgentOffline)
}

// With no replica holding the agent's session, opening its console says
// the agent is offline, on a lone hub at once and on a clustered one
// after the bounded wait for an answer.
func TestConsoleOfAgentOnNoReplica(t *testing.T) {
	t.Parallel()
	p := newReplicaPair(t, 0)
	lone := newEnv(t, nil)
	for name, h := range map[string]*hub.Hub{"clustered": p.b.hub, "lone": lone.hub} {
		_, err := h.OpenConsole(t.Context(), uuid.New(), uuid.New())
		require.ErrorIs(t, err, hub.ErrAgentOffline, name)
	}
}

// A holder whose reader went silent (its replica died without a stop)
// ends the tail once the reader's keep-alives are overdue.
func TestRelayedConsoleStopsWhenReaderGoesSilent(t *testing.T) {
	t.Parallel()
	p := newReplicaPair(t, 20*time.Millisecond)
	ag, vm, c := p.agentOnA()

	// A reader replica that opens a tail and is never heard of again.
	open, err := json.Marshal(map[string]any{"origin": uuid.New(), "stream_id": uuid.New(), "agent_id": ag.id, "vm_id": vm})
	require.NoError(t, err)
	require.NoError(t, p.bus.Publish(context.Background(), hub.TopicConsoleOpen, open))
	start := decodeConsoleStart(t, c.expect(agentproto.TypeConsoleStart))
	stop, err := agentproto.DecodeData[agentproto.ConsoleStop](c.expect(agentproto.TypeConsoleStop))
	require.NoError(t, err)
	require.Equal(t, start.StreamID, stop.StreamID)
}

// Both ends keep a quiet relayed console alive: after more keep-alive
// rounds than a lease lasts, the tail still runs and still relays.
func TestQuietRelayedConsoleStaysOpen(t *testing.T) {
	t.Parallel()
	ctl := make(chan []byte, 1024)
	// Periods long enough that a loaded machine delivers each keep-alive
	// well within a lease (three periods).
	p := newReplicaPair(t, 300*time.Millisecond, func(bus *notify.Local) {
		require.NoError(t, bus.Subscribe(hub.TopicConsoleCtl, func(b []byte) { ctl <- b }))
	})
	ag, vm, c := p.agentOnA()
	cs, err := p.b.hub.OpenConsole(t.Context(), ag.id, vm)
	require.NoError(t, err)
	defer cs.Close()
	start := decodeConsoleStart(t, c.expect(agentproto.TypeConsoleStart))

	// Keep-alives naming the stream, counted per sending replica.
	kept := map[uuid.UUID]int{}
	enough := func() bool {
		if len(kept) < 2 {
			return false
		}
		for _, n := range kept {
			if n < 6 { // two leases
				return false
			}
		}
		return true
	}
	timeout := time.After(waitTimeout)
	for !enough() {
		select {
		case b := <-ctl:
			var n struct {
				Origin uuid.UUID `json:"origin"`
				Keep   []struct {
					S uuid.UUID `json:"s"`
				} `json:"keep"`
			}
			require.NoError(t, json.Unmarshal(b, &n))
			for _, k := range n.Keep {
				if k.S == cs.ID() {
					kept[n.Origin]++
				}
			}
		case <-timeout:
			t.Fatalf("keep-alives heard: %v", kept)
		}
	}
	c.send(agentproto.TypeConsoleData, "", &agentproto.ConsoleData{VMID: vm, StreamID: start.StreamID, Data: []byte("still here")})
	require.Equal(t, []byte("still here"), readUntil(t, cs, len("still here")))
	c.roundTrip() // no console_stop came before the answer
}

// A relayed reader is bounded like a local one: one that does not read
// is cut off as lagging once its buffer (the bytes of
// hub.ConsoleBufferChunks full chunks) is full, and a lost notice (a gap
// in the holder's numbering) cuts it off too; either way the tail on the
// agent is stopped.
func TestRelayedConsoleReaderIsBounded(t *testing.T) {
	t.Parallel()
	data := make(chan []byte, 4096)
	p := newReplicaPair(t, 0, func(bus *notify.Local) {
		require.NoError(t, bus.Subscribe(hub.TopicConsoleData, func(b []byte) { data <- b }))
	})
	ag, vm, c := p.agentOnA()

	cases := []struct {
		name string
		// disturb makes the reader lag, given the agent's stream id and
		// the reader's.
		disturb func(t *testing.T, stream, reader uuid.UUID)
	}{
		{"reader does not read", func(t *testing.T, stream, _ uuid.UUID) {
			chunk := bytes.Repeat([]byte("x"), agentproto.MaxConsoleChunkBytes)
			for range hub.ConsoleBufferChunks + 1 {
				c.send(agentproto.TypeConsoleData, "", &agentproto.ConsoleData{VMID: vm, StreamID: stream, Data: chunk})
			}
		}},
		{"a notice is lost", func(t *testing.T, _, reader uuid.UUID) {
			// The holder's first notice says who it is; a notice from it
			// that skips a number stands for one the bus lost.
			var first struct {
				Origin   uuid.UUID `json:"origin"`
				StreamID uuid.UUID `json:"stream_id"`
			}
			for first.StreamID != reader {
				require.NoError(t, json.Unmarshal(<-data, &first))
			}
			skip, err := json.Marshal(map[string]any{"origin": first.Origin, "stream_id": reader, "seq": 3, "data": []byte("late")})
			require.NoError(t, err)
			require.NoError(t, p.bus.Publish(context.Background(), hub.TopicConsoleData, skip))
		}},
	}
	for _, tc := range cases {
		cs, err := p.b.hub.OpenConsole(t.Context(), ag.id, vm)
		require.NoError(t, err, tc.name)
		start := decodeConsoleStart(t, c.expect(agentproto.TypeConsoleStart))
		tc.disturb(t, start.StreamID, cs.ID())
		// A mebibyte through the bus under -race on a loaded machine
		// takes longer than the usual frame wait.
		ctx, cancel := context.WithTimeout(context.Background(), 6*waitTimeout)
		_, frame, err := c.conn.Read(ctx)
		cancel()
		require.NoError(t, err, tc.name)
		env, err := agentproto.Decode(frame)
		require.NoError(t, err, tc.name)
		require.Equal(t, agentproto.TypeConsoleStop, env.Type, tc.name)
		stop, err := agentproto.DecodeData[agentproto.ConsoleStop](env)
		require.NoError(t, err, tc.name)
		require.Equal(t, start.StreamID, stop.StreamID, tc.name)
		for range cs.C() {
		}
		require.ErrorIs(t, cs.Err(), hub.ErrLagged, tc.name)
		cs.Close()
	}
	c.roundTrip()
	require.True(t, p.a.hub.Online(ag.id), "a lagging relayed reader never costs the agent its session")
}
