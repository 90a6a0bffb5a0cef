package hub

import (
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/store"
)

// logItem is one verified log batch of one session (one execution).
type logItem struct {
	s     *session
	lines []store.LogLine
}

// logBatcher persists log lines of all sessions in shared transactions,
// then acknowledges each batch to its session and fans the lines out to
// followers, so a follower never sees a line that is not stored.
//
// A failed flush closes every session with lines in it (see flush), and
// batches those sessions queued afterwards are dropped unwritten: acking
// or publishing a later seq of the same execution would claim lines that
// are not stored.
type logBatcher struct {
	hub *Hub
	in  chan logItem
	// failed holds the sessions closed after a failed flush until no
	// batch of theirs can arrive any more. Owned by run.
	failed map[*session]struct{}
}

func newLogBatcher(h *Hub) *logBatcher {
	return &logBatcher{hub: h, in: make(chan logItem, logQueueBatches), failed: make(map[*session]struct{})}
}

// submit queues a batch, waiting while the queue is full: that stalls
// only this session's reader, which is the back-pressure a log flood from
// one agent deserves. It gives up when the session is closed; the agent
// resends unacknowledged lines after reconnecting.
func (b *logBatcher) submit(s *session, it logItem) {
	select {
	case b.in <- it:
	case <-s.done:
	}
}

// run collects batches until logFlushLines lines are queued or
// logFlushDelay passed since the first, and writes them. When ctx ends it
// writes what is queued and returns.
func (b *logBatcher) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var (
		batch []logItem
		n     int
	)
	for {
		select {
		case <-ctx.Done():
		drain:
			for {
				select {
				case it := <-b.in:
					if !b.lost(it) {
						batch = append(batch, it)
					}
				default:
					break drain
				}
			}
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownFlushTimeout)
			b.flush(fctx, batch)
			cancel()
			return
		case it := <-b.in:
			if b.lost(it) {
				continue
			}
			if len(batch) == 0 {
				timer.Reset(logFlushDelay)
			}
			batch = append(batch, it)
			n += len(it.lines)
			if n < logFlushLines {
				continue
			}
			timer.Stop()
		case <-timer.C:
		}
		b.flush(ctx, batch)
		clear(batch)
		batch, n = batch[:0], 0
		b.prune()
	}
}

// lost reports whether it comes from a session whose earlier lines failed
// to be stored. Such a batch is dropped: its lines follow a gap, and the
// agent resends them with the missing ones after reconnecting.
func (b *logBatcher) lost(it logItem) bool {
	_, ok := b.failed[it.s]
	return ok
}

// prune forgets the failed sessions that can queue nothing more: the
// reader has ended (its context is cancelled only after the read loop
// returned, so it submits nothing after) and the queue is empty, so none
// of its batches is still waiting. The order of the two checks matters.
func (b *logBatcher) prune() {
	for s := range b.failed {
		if s.ctx.Err() != nil && len(b.in) == 0 {
			delete(b.failed, s)
		}
	}
}

func (b *logBatcher) flush(ctx context.Context, batch []logItem) {
	if len(batch) == 0 {
		return
	}
	h := b.hub
	total := 0
	for _, it := range batch {
		total += len(it.lines)
	}
	lines := make([]store.LogLine, 0, total)
	for _, it := range batch {
		lines = append(lines, it.lines...)
	}
	start := time.Now()
	if err := h.store.AppendLogLines(ctx, lines); err != nil {
		h.metrics.flushErrors.WithLabelValues("log").Inc()
		h.log.Error("flushing log lines", logKeyCount, len(lines), logKeyErr, err)
		// Nothing is acknowledged, and each session with lines here is
		// closed (not permanently: the agent reconnects). Keeping it open
		// would be data loss: a later batch of the same execution would be
		// stored and acked with a higher seq, and the agent drops every
		// line up to the acked seq, including these. After reconnecting,
		// the agent resends all its unacked lines from the first missing
		// one; the store skips the duplicates. This is simpler than
		// retrying here, which would need to hold back every later ack of
		// those executions and could not give up on a batch the store
		// keeps refusing.
		for _, it := range batch {
			if b.lost(it) {
				continue
			}
			b.failed[it.s] = struct{}{}
			it.s.kill(websocket.StatusInternalError, "could not store log lines, retry later",
				&agentproto.Error{Code: agentproto.ErrorCodeInternal, Message: "could not store log lines; resend them after reconnecting"})
		}
		return
	}
	h.metrics.flushDuration.WithLabelValues("log").Observe(time.Since(start).Seconds())
	h.metrics.logLinesPersisted.Add(float64(len(lines)))
	for _, it := range batch {
		last := it.lines[len(it.lines)-1]
		it.s.enqueue("", &agentproto.LogAck{ExecutionID: last.ExecutionID, Seq: last.Seq})
		h.subs.publish(last.ExecutionID, it.lines)
	}
	if h.bus != nil {
		// After the local followers: they keep the in-memory fast path.
		h.announceLogs(batch)
	}
}

// subscriptions are the live log followers, by execution.
type subscriptions struct {
	dropped prometheus.Counter

	mu     sync.RWMutex // guards m and closed
	m      map[uuid.UUID]map[*LogSubscription]struct{}
	closed bool
}

// LogSubscription delivers an execution's log lines as they are persisted.
// Lines arrive in seq order without repeats (a resent batch is filtered
// out); a follower that lets its buffer fill is dropped with ErrLagged.
type LogSubscription struct {
	subs *subscriptions
	exec uuid.UUID
	ch   chan store.LogLine

	mu      sync.Mutex // guards the following
	closed  bool
	err     error
	lastSeq int64
}

// SubscribeLogs follows an execution's new log lines. buffer bounds the
// lines waiting for the reader (at least 1). The caller must Close it.
func (h *Hub) SubscribeLogs(executionID uuid.UUID, buffer int) *LogSubscription {
	sub := &LogSubscription{subs: &h.subs, exec: executionID, ch: make(chan store.LogLine, max(buffer, 1))}
	h.subs.mu.Lock()
	defer h.subs.mu.Unlock()
	if h.subs.closed {
		sub.closed, sub.err = true, ErrClosed
		close(sub.ch)
		return sub
	}
	set := h.subs.m[executionID]
	if set == nil {
		set = make(map[*LogSubscription]struct{})
		h.subs.m[executionID] = set
	}
	set[sub] = struct{}{}
	return sub
}

// C returns the channel of new lines; it is closed when the subscription
// ends (see Err).
func (s *LogSubscription) C() <-chan store.LogLine { return s.ch }

// Err says why C was closed: ErrLagged, ErrClosed (hub stopped), or nil
// after Close or while the subscription is live.
func (s *LogSubscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription. It is safe to call more than once.
func (s *LogSubscription) Close() {
	s.subs.remove(s)
	s.end(nil)
}

// end closes the channel once, recording why.
func (s *LogSubscription) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed, s.err = true, err
	close(s.ch)
}

// deliver hands lines to the follower without ever blocking; it reports
// false when the follower lagged and was ended.
func (s *LogSubscription) deliver(lines []store.LogLine) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return true
	}
	for _, l := range lines {
		if l.Seq <= s.lastSeq {
			continue
		}
		select {
		case s.ch <- l:
			s.lastSeq = l.Seq
		default:
			s.closed, s.err = true, ErrLagged
			close(s.ch)
			return false
		}
	}
	return true
}

func (ss *subscriptions) remove(s *LogSubscription) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if set := ss.m[s.exec]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(ss.m, s.exec)
		}
	}
}

// publish fans persisted lines out to the execution's followers.
func (ss *subscriptions) publish(exec uuid.UUID, lines []store.LogLine) {
	ss.mu.RLock()
	set := ss.m[exec]
	var lagged []*LogSubscription
	for s := range set {
		if !s.deliver(lines) {
			lagged = append(lagged, s)
		}
	}
	ss.mu.RUnlock()
	for _, s := range lagged {
		ss.remove(s)
		ss.dropped.Inc()
	}
}

// minSeq returns the lowest seq the execution's followers have seen;
// false when nobody here follows it.
func (ss *subscriptions) minSeq(exec uuid.UUID) (int64, bool) {
	ss.mu.RLock()
	defer ss.mu.RUnlock()
	set := ss.m[exec]
	if len(set) == 0 {
		return 0, false
	}
	low := int64(-1)
	for s := range set {
		s.mu.Lock()
		if low < 0 || s.lastSeq < low {
			low = s.lastSeq
		}
		s.mu.Unlock()
	}
	return low, true
}

// dropAll ends every subscription with ErrLagged (notifications of lines
// stored elsewhere were lost): each follower re-reads the store and
// subscribes again.
func (ss *subscriptions) dropAll() {
	ss.mu.Lock()
	all := ss.m
	ss.m = make(map[uuid.UUID]map[*LogSubscription]struct{})
	ss.mu.Unlock()
	for _, set := range all {
		for s := range set {
			s.end(ErrLagged)
			ss.dropped.Inc()
		}
	}
}

// closeAll ends every subscription when the hub stops.
func (ss *subscriptions) closeAll() {
	ss.mu.Lock()
	all := ss.m
	ss.m = make(map[uuid.UUID]map[*LogSubscription]struct{})
	ss.closed = true
	ss.mu.Unlock()
	for _, set := range all {
		for s := range set {
			s.end(ErrClosed)
		}
	}
}
