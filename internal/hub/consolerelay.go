package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// Topics of the console relay. A reader replica announces a tail on
// TopicConsoleOpen; the replica holding the agent's session answers on
// TopicConsoleData with the console bytes, in numbered notices; both ends
// say on TopicConsoleCtl that they are still there (keep) or that the
// reader left (stop). Notices name stream ids, never replica addresses:
// the replicas only share the database.
const (
	TopicConsoleOpen = "console_open"
	TopicConsoleData = "console_data"
	TopicConsoleCtl  = "console_ctl"
)

// Console relay tuning.
const (
	// consoleOpenWait bounds how long a reader waits for the replica
	// holding the agent's session to answer; no answer means no replica
	// holds one (the store's online flag lags a disconnection).
	consoleOpenWait = 5 * time.Second
	// relayChunkBytes is the console bytes one console_data notice
	// carries: base64 makes 4 KiB 5,464 bytes, well under
	// notify.MaxPayloadBytes with the notice's other fields. A 64 KiB
	// agent chunk travels as 16 notices.
	relayChunkBytes = 4096
	// relayBufferPieces bounds a relayed reader's buffer to the bytes of
	// a local reader's (ConsoleBufferChunks full chunks).
	relayBufferPieces = ConsoleBufferChunks * agentproto.MaxConsoleChunkBytes / relayChunkBytes
	// relayRefsPerNotice keeps a console_ctl notice under
	// notify.MaxPayloadBytes (about 90 bytes per stream).
	relayRefsPerNotice = 64
	// consoleLeaseKeeps is how many keep-alive periods an end may stay
	// silent before the other gives it up (its replica died).
	consoleLeaseKeeps = 3
)

// Why a holder ended a relayed stream (consoleDataNotice.End).
const (
	relayEndClosed  = "closed"
	relayEndLagged  = "lagged"
	relayEndOffline = "offline"
)

// consoleOpenNotice asks the replica holding the agent's session to tail
// a VM's console for a reader on replica Origin.
type consoleOpenNotice struct {
	Origin   uuid.UUID `json:"origin"`
	StreamID uuid.UUID `json:"stream_id"`
	AgentID  uuid.UUID `json:"agent_id"`
	VMID     uuid.UUID `json:"vm_id"`
}

// consoleDataNotice is one step of a relayed stream from its holder
// (Origin). Seq counts from 1 without gaps: the first notice says Opened
// (or End, when the tail could not start); a missing number means a lost
// notice, and the reader is cut off as lagging.
type consoleDataNotice struct {
	Origin       uuid.UUID `json:"origin"`
	StreamID     uuid.UUID `json:"stream_id"`
	Seq          int64     `json:"seq"`
	Opened       bool      `json:"opened,omitempty"`
	Data         []byte    `json:"data,omitempty"`
	SnapshotDone bool      `json:"snapshot_done,omitempty"`
	End          string    `json:"end,omitempty"`
}

// relayRef names a relayed stream and the replica holding its tail;
// Holder is nil in a stop sent before any holder answered (any holder
// then stops).
type relayRef struct {
	StreamID uuid.UUID `json:"s"`
	Holder   uuid.UUID `json:"h"`
}

// consoleCtlNotice carries keep-alives of both ends and the stops of
// readers.
type consoleCtlNotice struct {
	Origin uuid.UUID  `json:"origin"`
	Keep   []relayRef `json:"keep,omitempty"`
	Stop   []relayRef `json:"stop,omitempty"`
}

// errOtherHolder: a second replica answered an open (the agent briefly
// had sessions on two); its notices are ignored and its tail stopped.
var errOtherHolder = errors.New("another replica already answered")

// relayLink is the reader's side of a relayed stream.
type relayLink struct {
	// answered is closed at the holder's first notice, or when the
	// stream ends before it.
	answered chan struct{}
	once     sync.Once

	mu     sync.Mutex // guards the following
	holder uuid.UUID  // nil until answered
	opened bool       // the holder started the tail
	next   int64      // the Seq expected next
	seen   time.Time  // the holder's last word
}

// accept checks a notice against the stream's order.
func (l *relayLink) accept(n consoleDataNotice, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder == uuid.Nil {
		if n.Seq != 1 {
			return fmt.Errorf("relayed console: first notice is %d: %w", n.Seq, ErrLagged)
		}
		l.holder, l.opened = n.Origin, n.Opened
		defer l.answer()
	} else if n.Origin != l.holder {
		return errOtherHolder
	}
	if n.Seq != l.next {
		return fmt.Errorf("relayed console: notice %d after %d: %w", n.Seq, l.next-1, ErrLagged)
	}
	l.next++
	l.seen = now
	return nil
}

func (l *relayLink) answer() { l.once.Do(func() { close(l.answered) }) }

// state returns the holder, when it was last heard of, and whether it
// answered at all.
func (l *relayLink) state() (holder uuid.UUID, seen time.Time, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holder, l.seen, l.holder != uuid.Nil
}

func (l *relayLink) started() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.opened
}

// touch records a keep-alive of holder.
func (l *relayLink) touch(holder uuid.UUID, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder == holder {
		l.seen = now
	}
}

// openRelayed announces a tail for an agent connected to another replica
// and waits for that replica's answer.
func (h *Hub) openRelayed(ctx context.Context, agentID, vmID uuid.UUID) (*ConsoleStream, error) {
	cs := &ConsoleStream{
		hub: h, vmID: vmID, id: uuid.New(), c: make(chan []byte, relayBufferPieces), snapshot: make(chan struct{}),
		relay: &relayLink{answered: make(chan struct{}), next: 1},
	}
	h.relayed.add(cs)
	h.metrics.relayReaders.Inc()
	err := h.publishNow(TopicConsoleOpen, consoleOpenNotice{Origin: h.node, StreamID: cs.id, AgentID: agentID, VMID: vmID})
	if err != nil {
		h.endRelayed(cs, err, false)
		return nil, fmt.Errorf("opening console of vm %s through the replicas: %w", vmID, err)
	}
	wait := time.NewTimer(consoleOpenWait)
	defer wait.Stop()
	select {
	case <-cs.relay.answered:
		if cs.relay.started() {
			return cs, nil
		}
		cs.Close()
		return nil, fmt.Errorf("opening console of vm %s: agent %s: its replica could not start the tail: %w", vmID, agentID, ErrAgentOffline)
	case <-ctx.Done():
		cs.Close()
		return nil, fmt.Errorf("opening console of vm %s: %w", vmID, ctx.Err())
	case <-wait.C:
		cs.Close()
		return nil, fmt.Errorf("opening console of vm %s: agent %s: no replica holds its session: %w", vmID, agentID, ErrAgentOffline)
	}
}

// closeRelayed is Close of a relayed stream: the holder is told to stop.
func (h *Hub) closeRelayed(cs *ConsoleStream) {
	h.endRelayed(cs, nil, true)
}

// endRelayed ends a relayed stream here, telling its holder to stop when
// tell is set.
func (h *Hub) endRelayed(cs *ConsoleStream, err error, tell bool) {
	cs.end(err)
	cs.relay.answer()
	if !h.relayed.remove(cs) {
		return
	}
	h.metrics.relayReaders.Dec()
	if tell {
		holder, _, _ := cs.relay.state()
		h.publishCtl(nil, []relayRef{{StreamID: cs.id, Holder: holder}})
	}
}

// onConsoleData delivers a holder's notice to its reader here.
func (h *Hub) onConsoleData(payload []byte) {
	if payload == nil {
		// Notices may have been lost: every relayed reader here is cut
		// off as lagging (it reconnects).
		for _, cs := range h.relayed.all() {
			h.endRelayed(cs, fmt.Errorf("relayed console: notices lost: %w", ErrLagged), true)
		}
		return
	}
	var n consoleDataNotice
	if !h.decode(TopicConsoleData, payload, &n, &n.Origin) {
		return
	}
	cs := h.relayed.get(n.StreamID)
	if cs == nil {
		return
	}
	err := cs.relay.accept(n, h.now())
	switch {
	case errors.Is(err, errOtherHolder):
		if n.Seq == 1 {
			h.publishCtl(nil, []relayRef{{StreamID: n.StreamID, Holder: n.Origin}})
		}
		return
	case err != nil:
		h.endRelayed(cs, err, true)
		return
	}
	if len(n.Data) > 0 && !cs.deliver(n.Data) {
		h.log.Info("closing relayed console stream: reader fell behind", "stream_id", cs.id)
		h.endRelayed(cs, ErrLagged, true)
		return
	}
	if n.SnapshotDone {
		cs.snapshotSent()
	}
	if n.End != "" {
		h.endRelayed(cs, relayEndErr(n.End), false)
	}
}

// relayEndErr is the stream error of a holder's end reason.
func relayEndErr(reason string) error {
	switch reason {
	case relayEndClosed:
		return nil
	case relayEndLagged:
		return ErrLagged
	}
	return fmt.Errorf("relayed console: %s: %w", reason, ErrAgentOffline)
}

// relayEnd is the end reason a holder sends for its local stream's error.
func relayEnd(err error) string {
	switch {
	case err == nil:
		return relayEndClosed
	case errors.Is(err, ErrLagged):
		return relayEndLagged
	}
	return relayEndOffline
}

// servedConsole is a local agent's tail relayed to a reader replica.
type servedConsole struct {
	id     uuid.UUID
	reader uuid.UUID // the reader's replica
	stop   chan struct{}
	once   sync.Once
	seen   atomic.Int64 // the reader's last word, Unix nanoseconds
}

// ID is the relayed stream's id.
func (sv *servedConsole) ID() uuid.UUID { return sv.id }

func (sv *servedConsole) halt() { sv.once.Do(func() { close(sv.stop) }) }

func (sv *servedConsole) seenAt() time.Time { return time.Unix(0, sv.seen.Load()) }

// servedTable indexes served tails by stream id.
type servedTable = streamTable[*servedConsole]

// onConsoleOpen starts relaying a tail when the agent's session is here.
// Other replicas stay silent; a lost open times out on its reader.
func (h *Hub) onConsoleOpen(payload []byte) {
	if payload == nil {
		return
	}
	var n consoleOpenNotice
	if !h.decode(TopicConsoleOpen, payload, &n, &n.Origin) {
		return
	}
	s := h.lookup(n.AgentID)
	if s == nil || !h.begin(&h.relayWG) {
		return
	}
	sv := &servedConsole{id: n.StreamID, reader: n.Origin, stop: make(chan struct{})}
	sv.seen.Store(h.now().UnixNano())
	h.served.add(sv)
	h.metrics.relayHolders.Inc()
	local, err := h.openLocal(s, n.VMID, uuid.New())
	go func() {
		defer h.relayWG.Done()
		defer h.metrics.relayHolders.Dec()
		defer h.served.remove(sv)
		h.serveConsole(sv, local, err)
	}()
}

// serveConsole relays a local tail to its reader until the tail ends, the
// reader stops (or goes silent) or the hub shuts down.
func (h *Hub) serveConsole(sv *servedConsole, local *ConsoleStream, openErr error) {
	var seq int64
	send := func(n consoleDataNotice) bool {
		seq++
		n.Origin, n.StreamID, n.Seq = h.node, sv.id, seq
		if err := h.publishNow(TopicConsoleData, n); err != nil {
			h.log.Warn("relaying console to another replica", "stream_id", sv.id, logKeyErr, err)
			return false
		}
		return true
	}
	if openErr != nil {
		send(consoleDataNotice{End: relayEndOffline})
		return
	}
	defer local.Close()
	if !send(consoleDataNotice{Opened: true}) {
		return
	}
	snapshot := local.Snapshot()
	for {
		select {
		case <-sv.stop:
			return
		case <-h.stopCtx.Done():
			send(consoleDataNotice{End: relayEndOffline})
			return
		case <-snapshot:
			// Every snapshot chunk is already queued before the marker.
			snapshot = nil
			for len(local.C()) > 0 {
				if chunk, ok := <-local.C(); ok && !sendPieces(send, chunk) {
					return
				}
			}
			if !send(consoleDataNotice{SnapshotDone: true}) {
				return
			}
		case chunk, ok := <-local.C():
			if !ok {
				send(consoleDataNotice{End: relayEnd(local.Err())})
				return
			}
			if !sendPieces(send, chunk) {
				return
			}
		}
	}
}

// sendPieces sends a chunk as notices of at most relayChunkBytes.
func sendPieces(send func(consoleDataNotice) bool, chunk []byte) bool {
	for len(chunk) > 0 {
		n := min(len(chunk), relayChunkBytes)
		if !send(consoleDataNotice{Data: chunk[:n]}) {
			return false
		}
		chunk = chunk[n:]
	}
	return true
}

// onConsoleCtl applies the other ends' stops and keep-alives. Lost
// notices (a gap) are settled by the leases: a stop that never came ends
// the tail when its reader's keep-alives stop.
func (h *Hub) onConsoleCtl(payload []byte) {
	if payload == nil {
		return
	}
	var n consoleCtlNotice
	if !h.decode(TopicConsoleCtl, payload, &n, &n.Origin) {
		return
	}
	now := h.now()
	for _, r := range n.Stop {
		if r.Holder != h.node && r.Holder != uuid.Nil {
			continue
		}
		if sv := h.served.get(r.StreamID); sv != nil && sv.reader == n.Origin {
			sv.halt()
		}
	}
	for _, r := range n.Keep {
		switch {
		case r.Holder == h.node:
			if sv := h.served.get(r.StreamID); sv != nil && sv.reader == n.Origin {
				sv.seen.Store(now.UnixNano())
			}
		case r.Holder == n.Origin:
			if cs := h.relayed.get(r.StreamID); cs != nil {
				cs.relay.touch(n.Origin, now)
			}
		}
	}
}

// keepConsoles sends the keep-alives of this replica's ends of relayed
// consoles and gives up the ends whose other end went silent.
func (h *Hub) keepConsoles(ctx context.Context) {
	every := h.opts.ConsoleKeepAlive
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stale := h.now().Add(-consoleLeaseKeeps * every)
		var keep []relayRef
		for _, cs := range h.relayed.all() {
			holder, seen, ok := cs.relay.state()
			if !ok {
				continue
			}
			if seen.Before(stale) {
				h.endRelayed(cs, fmt.Errorf("relayed console: replica holding the session went silent: %w", ErrAgentOffline), false)
				continue
			}
			keep = append(keep, relayRef{StreamID: cs.id, Holder: holder})
		}
		for _, sv := range h.served.all() {
			if sv.seenAt().Before(stale) {
				h.log.Info("stopping relayed console: its reader went silent", "stream_id", sv.id)
				sv.halt()
				continue
			}
			keep = append(keep, relayRef{StreamID: sv.id, Holder: h.node})
		}
		h.publishCtl(keep, nil)
	}
}

// publishCtl sends keep-alives and stops, relayRefsPerNotice per notice.
func (h *Hub) publishCtl(keep, stop []relayRef) {
	for len(keep) > 0 || len(stop) > 0 {
		n := consoleCtlNotice{Origin: h.node}
		k := min(len(keep), relayRefsPerNotice)
		n.Keep, keep = keep[:k], keep[k:]
		s := min(len(stop), relayRefsPerNotice-k)
		n.Stop, stop = stop[:s], stop[s:]
		h.publish(TopicConsoleCtl, n)
	}
}

// publishNow sends a notice on the bus and returns the error.
func (h *Hub) publishNow(topic string, v any) error {
	payload, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s notice: %w", topic, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if err := h.bus.Publish(ctx, topic, payload); err != nil {
		return fmt.Errorf("publishing %s notice: %w", topic, err)
	}
	return nil
}
