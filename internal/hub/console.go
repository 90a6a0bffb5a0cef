package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// ErrAgentOffline: the agent has no live session on this hub (on no
// replica, for a clustered hub), or its session ended while a console
// stream was open.
var ErrAgentOffline = errors.New("agent not connected")

// ConsoleBufferChunks bounds the console_data chunks waiting for one
// console reader (at most 64 KiB each). A reader further behind is cut off
// with ErrLagged rather than letting an agent's console grow server memory.
const ConsoleBufferChunks = 16

// ConsoleStream is one VM serial console tail relayed from an agent: the
// hub sent console_start and delivers the agent's console_data chunks on
// C until Close, the agent's disconnection or a lagging reader.
type ConsoleStream struct {
	hub *Hub
	// sess is the agent's session here; nil when the stream is relayed
	// from the replica holding it (relay set).
	sess  *session
	relay *relayLink
	vmID  uuid.UUID
	id    uuid.UUID
	c     chan []byte
	// snapshot is closed (once) when the agent said the snapshot was sent.
	snapshot     chan struct{}
	snapshotOnce sync.Once

	mu     sync.Mutex // guards the following; held while sending on c
	closed bool
	err    error
}

// Snapshot is closed once every chunk of the snapshot (the log's last
// bytes when the tail started, possibly none) was delivered on C, so a
// one-shot reader can stop there. Agents older than the marker never
// close it: wait with a bound.
func (cs *ConsoleStream) Snapshot() <-chan struct{} { return cs.snapshot }

// snapshotSent closes Snapshot; a repeated marker changes nothing.
func (cs *ConsoleStream) snapshotSent() { cs.snapshotOnce.Do(func() { close(cs.snapshot) }) }

// ID returns the stream id carried by console_start and console_data.
func (cs *ConsoleStream) ID() uuid.UUID { return cs.id }

// C delivers console bytes in the order the agent sent them. It is closed
// when the stream ends; Err then says why.
func (cs *ConsoleStream) C() <-chan []byte { return cs.c }

// Err is nil after Close, ErrLagged when the reader fell behind, and
// wraps ErrAgentOffline when the agent's session ended.
func (cs *ConsoleStream) Err() error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.err
}

// Close ends the stream and tells the agent to stop tailing. It is safe to
// call more than once and after the stream ended by itself.
func (cs *ConsoleStream) Close() {
	if cs.relay != nil {
		cs.hub.closeRelayed(cs)
		return
	}
	if cs.end(nil) {
		cs.sess.enqueue("", &agentproto.ConsoleStop{VMID: cs.vmID, StreamID: cs.id})
	}
	cs.hub.consoles.remove(cs)
}

// end closes C with err; it reports whether this call ended the stream.
func (cs *ConsoleStream) end(err error) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return false
	}
	cs.closed, cs.err = true, err
	close(cs.c)
	return true
}

// deliver hands a chunk to the reader without ever blocking the session's
// reader goroutine; it reports false when the reader fell behind.
func (cs *ConsoleStream) deliver(data []byte) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return true
	}
	select {
	case cs.c <- data:
		return true
	default:
		return false
	}
}

// streamTable indexes console streams, or the tails relayed to other
// replicas, by stream id.
type streamTable[T interface {
	comparable
	ID() uuid.UUID
}] struct {
	mu sync.Mutex // guards m
	m  map[uuid.UUID]T
}

func (t *streamTable[T]) add(v T) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[uuid.UUID]T)
	}
	t.m[v.ID()] = v
}

// remove reports whether v was in the table.
func (t *streamTable[T]) remove(v T) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[v.ID()] != v {
		return false
	}
	delete(t.m, v.ID())
	return true
}

// get returns the entry of id, the zero T (nil) when unknown.
func (t *streamTable[T]) get(id uuid.UUID) T {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[id]
}

// all returns every entry of the table.
func (t *streamTable[T]) all() []T {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]T, 0, len(t.m))
	for _, v := range t.m {
		out = append(out, v)
	}
	return out
}

// consoleTable indexes open console streams by stream id.
type consoleTable struct {
	streamTable[*ConsoleStream]
}

// lookup returns the stream id of session s, nil for an unknown stream or
// one another agent's session opened.
func (t *consoleTable) lookup(s *session, id uuid.UUID) *ConsoleStream {
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := t.m[id]
	if cs == nil || cs.sess != s {
		return nil
	}
	return cs
}

// endSession ends every stream of a session that is going away.
func (t *consoleTable) endSession(s *session) {
	t.mu.Lock()
	var ended []*ConsoleStream
	for id, cs := range t.m {
		if cs.sess == s {
			ended = append(ended, cs)
			delete(t.m, id)
		}
	}
	t.mu.Unlock()
	for _, cs := range ended {
		cs.end(fmt.Errorf("agent %s: session ended: %w", s.id.AgentID, ErrAgentOffline))
	}
}

// OpenConsole asks the agent of a VM to tail its serial console. The
// agent first sends the last bytes of the console log (up to
// agentproto.MaxConsoleChunkBytes), then new output as it appears. The
// caller must Close the stream.
//
// When the agent's session is on another replica of a clustered hub, the
// tail is relayed from that replica over the bus; OpenConsole then waits
// (bounded by ctx and consoleOpenWait) for that replica to answer. It
// fails with ErrAgentOffline when no replica holds a session of the agent.
func (h *Hub) OpenConsole(ctx context.Context, agentID, vmID uuid.UUID) (*ConsoleStream, error) {
	s := h.lookup(agentID)
	if s == nil {
		if h.opts.Clustered {
			return h.openRelayed(ctx, agentID, vmID)
		}
		return nil, fmt.Errorf("opening console of vm %s: agent %s: %w", vmID, agentID, ErrAgentOffline)
	}
	return h.openLocal(s, vmID, uuid.New())
}

// openLocal starts a tail on the agent's session here.
func (h *Hub) openLocal(s *session, vmID, streamID uuid.UUID) (*ConsoleStream, error) {
	cs := &ConsoleStream{hub: h, sess: s, vmID: vmID, id: streamID, c: make(chan []byte, ConsoleBufferChunks), snapshot: make(chan struct{})}
	h.consoles.add(cs)
	if !s.enqueue("", &agentproto.ConsoleStart{VMID: vmID, StreamID: cs.id}) {
		h.consoles.remove(cs)
		cs.end(ErrAgentOffline)
		return nil, fmt.Errorf("opening console of vm %s: agent %s: %w", vmID, s.id.AgentID, ErrAgentOffline)
	}
	return cs, nil
}

// onConsoleData relays a chunk to its stream. A chunk of a stream that
// already ended (console_stop crossed it on the wire), of another agent's
// stream or for another VM is dropped: it is harmless and not worth
// closing the session for.
func (s *session) onConsoleData(m agentproto.ConsoleData) {
	cs := s.hub.consoles.lookup(s, m.StreamID)
	if cs == nil || cs.vmID != m.VMID {
		return
	}
	if m.SnapshotDone {
		cs.snapshotSent()
		return
	}
	if cs.deliver(m.Data) {
		return
	}
	s.hub.log.Info("closing console stream: reader fell behind", logKeyAgent, s.id.AgentID, "stream_id", cs.id)
	if cs.end(ErrLagged) {
		s.enqueue("", &agentproto.ConsoleStop{VMID: cs.vmID, StreamID: cs.id})
	}
	s.hub.consoles.remove(cs)
}
