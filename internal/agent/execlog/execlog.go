package execlog

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agent/statefile"
	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// DefaultMaxLines bounds the buffered lines.
const DefaultMaxLines = 10_000

// maxExecutions bounds how many executions' counters are remembered: an
// execution gets lines only while its action runs, so the most recent
// ones are all that can still grow.
const maxExecutions = 4096

const fileVersion = 1

// ErrCorrupt: the buffer file cannot be used.
var ErrCorrupt = errors.New("execution log buffer corrupt")

type line struct {
	Exec uuid.UUID          `json:"exec"`
	Line agentproto.LogLine `json:"line"`
}

type counter struct {
	Exec uuid.UUID `json:"exec"`
	Last int64     `json:"last"`
}

type fileState struct {
	Version  int       `json:"version"`
	Lines    []line    `json:"lines"`
	Counters []counter `json:"counters"`
	Dropped  int64     `json:"dropped"`
}

// Buffer is the bounded, persistent log buffer. Safe for concurrent use.
type Buffer struct {
	path     string
	maxLines int
	ready    chan struct{}

	mu      sync.Mutex // guards the following
	lines   []line     // unacknowledged, in append order
	durable int        // lines[:durable] are persisted
	last    map[uuid.UUID]int64
	order   []uuid.UUID // executions in the order they got their first line
	dropped int64
	dirty   bool
}

// Open loads the buffer stored at path, or starts an empty one.
func Open(path string, maxLines int) (*Buffer, error) {
	if maxLines <= 0 {
		maxLines = DefaultMaxLines
	}
	b := &Buffer{path: path, maxLines: maxLines, ready: make(chan struct{}, 1), last: map[uuid.UUID]int64{}}
	if _, err := statefile.RemoveStale(path); err != nil {
		return nil, fmt.Errorf("opening log buffer: %w", err)
	}
	var st fileState
	err := statefile.Read(path, &st)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return b, nil
	case err != nil:
		return nil, fmt.Errorf("opening log buffer: %w", err)
	case st.Version != fileVersion:
		return nil, fmt.Errorf("opening log buffer %s: %w: version %d", path, ErrCorrupt, st.Version)
	}
	for _, c := range st.Counters {
		if _, ok := b.last[c.Exec]; !ok {
			b.order = append(b.order, c.Exec)
		}
		b.last[c.Exec] = c.Last
	}
	for _, l := range st.Lines {
		if l.Line.Seq > b.last[l.Exec] {
			return nil, fmt.Errorf("opening log buffer %s: %w: line %d above counter of %s", path, ErrCorrupt, l.Line.Seq, l.Exec)
		}
	}
	b.lines = st.Lines
	b.durable = len(b.lines)
	b.dropped = st.Dropped
	return b, nil
}

// Append adds a line to an execution's log. It becomes sendable at the
// next Flush.
func (b *Buffer) Append(exec uuid.UUID, stream, message string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.last[exec]; !ok {
		b.order = append(b.order, exec)
		if len(b.order) > maxExecutions {
			delete(b.last, b.order[0])
			b.order = b.order[1:]
		}
	}
	b.last[exec]++
	b.lines = append(b.lines, line{Exec: exec, Line: agentproto.LogLine{
		Seq: b.last[exec], At: at.UTC(), Stream: stream, Message: agentproto.SanitizeLogMessage(message),
	}})
	if over := len(b.lines) - b.maxLines; over > 0 {
		b.lines = b.lines[over:]
		b.durable = max(0, b.durable-over)
		b.dropped += int64(over)
	}
	b.dirty = true
}

// Flush persists the buffer and makes every appended line sendable.
func (b *Buffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.dirty {
		return nil
	}
	st := fileState{Version: fileVersion, Lines: b.lines, Dropped: b.dropped}
	for _, e := range b.order {
		st.Counters = append(st.Counters, counter{Exec: e, Last: b.last[e]})
	}
	if err := statefile.Write(b.path, st); err != nil {
		return fmt.Errorf("flushing log buffer: %w", err)
	}
	b.durable = len(b.lines)
	b.dirty = false
	select {
	case b.ready <- struct{}{}:
	default:
	}
	return nil
}

// Ready is signalled after a Flush made new lines sendable.
func (b *Buffer) Ready() <-chan struct{} { return b.ready }

// Batches returns the durable lines above sent[exec] for every execution,
// as batches of at most maxLines lines, executions in the order of their
// oldest pending line, and advances sent past them. sent belongs to one
// session: a new session starts with an empty map and so resends every
// unacknowledged line.
func (b *Buffer) Batches(sent map[uuid.UUID]int64, maxLines, maxBytes int) []agentproto.LogBatch {
	if maxLines <= 0 || maxLines > agentproto.MaxLogBatchLines {
		maxLines = agentproto.MaxLogBatchLines
	}
	if maxBytes <= 0 || maxBytes > agentproto.MaxFrameBytes {
		maxBytes = agentproto.MaxFrameBytes
	}
	// Room for the envelope, and a generous per-line allowance for the
	// JSON around each message (escaping can double a message's size).
	budget := maxBytes - 512
	const lineOverhead = 128
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []agentproto.LogBatch
	open := map[uuid.UUID]int{} // exec → index in out of its open batch
	size := map[int]int{}       // index in out → estimated bytes
	for _, l := range b.lines[:b.durable] {
		if l.Line.Seq <= sent[l.Exec] {
			continue
		}
		n := 2*len(l.Line.Message) + lineOverhead
		i, ok := open[l.Exec]
		if !ok || len(out[i].Lines) >= maxLines || size[i]+n > budget {
			out = append(out, agentproto.LogBatch{ExecutionID: l.Exec})
			i = len(out) - 1
			open[l.Exec] = i
		}
		size[i] += n
		out[i].Lines = append(out[i].Lines, l.Line)
		sent[l.Exec] = l.Line.Seq
	}
	return out
}

// Ack drops the lines of exec up to and including seq. The removal is
// persisted with the next Flush; until then a restart resends them, which
// the server deduplicates.
func (b *Buffer) Ack(exec uuid.UUID, seq int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := b.lines[:0]
	durable := b.durable
	for i, l := range b.lines {
		if l.Exec == exec && l.Line.Seq <= seq {
			if i < b.durable {
				durable--
			}
			b.dirty = true
			continue
		}
		kept = append(kept, l)
	}
	clear(b.lines[len(kept):])
	b.lines = kept
	b.durable = durable
}

// Len returns the number of unacknowledged lines.
func (b *Buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.lines)
}

// Dropped returns how many lines were dropped to respect the bound.
func (b *Buffer) Dropped() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}
