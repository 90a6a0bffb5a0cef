package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/store"
)

// Log listing bounds. Log lines are small and read in bulk, so pages are
// larger than those of other lists.
const (
	DefaultLogPageLimit = 500
	MaxLogPageLimit     = 5000
)

// Follow (SSE) tuning.
const (
	// sseHeartbeat keeps proxies and idle timeouts from cutting a quiet
	// stream.
	sseHeartbeat = 15 * time.Second
	// sseStatusEvery is how often a follower checks whether its execution
	// ended; the hub pushes lines, not status changes.
	sseStatusEvery = 500 * time.Millisecond
	// sseSubBuffer bounds the lines waiting for one follower; a follower
	// that falls further behind is dropped by the hub and catches up from
	// the store.
	sseSubBuffer = 1024
	// sseReadBatch is the page size of catch-up reads from the store.
	sseReadBatch = 1000
)

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

type logLineView struct {
	Seq     int64     `json:"seq"`
	At      time.Time `json:"at"`
	Stream  string    `json:"stream"`
	Message string    `json:"message"`
}

func viewLogLine(l store.LogLine) logLineView {
	return logLineView{Seq: l.Seq, At: l.At.UTC(), Stream: l.Stream, Message: l.Message}
}

// listLogs answers an execution's log lines after a seq, paginated by seq
// (the cursor is the last seq of the previous page), or with
// ?follow=true streams them live as Server-Sent Events.
func (a *API) listLogs(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		a.writeError(c, err)
		return
	}
	after, err := logCursor(c)
	if err != nil {
		a.writeError(c, err)
		return
	}
	follow := false
	switch c.Query("follow") {
	case "", "false":
	case "true":
		follow = true
	default:
		a.writeError(c, invalidArgument("follow must be true or false"))
		return
	}
	limit := DefaultLogPageLimit
	if raw, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > MaxLogPageLimit {
			a.writeError(c, invalidArgument("limit must be an integer between 1 and %d", MaxLogPageLimit))
			return
		}
		limit = n
	}
	tenant := tenantOf(c)
	ctx := c.Request.Context()
	exec, err := a.store.GetExecution(ctx, tenant, id)
	if err != nil {
		a.writeError(c, fmt.Errorf("getting execution %s: %w", id, err))
		return
	}
	if follow {
		a.followLogs(c, exec, after)
		return
	}
	rows, err := a.store.ListLogLines(ctx, tenant, id, after, limit+1)
	if err != nil {
		a.writeError(c, fmt.Errorf("listing logs of execution %s: %w", id, err))
		return
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	out := listBody[logLineView]{Items: make([]logLineView, 0, len(rows))}
	for _, l := range rows {
		out.Items = append(out.Items, viewLogLine(l))
	}
	if more {
		out.NextCursor = strconv.FormatInt(rows[len(rows)-1].Seq, 10)
	}
	c.JSON(http.StatusOK, out)
}

// logCursor reads where a listing starts: the Last-Event-ID header of a
// resuming SSE client wins, then ?cursor=, then ?after=. All are a seq.
func logCursor(c *gin.Context) (int64, error) {
	for _, src := range []struct{ name, raw string }{
		{"Last-Event-ID", c.GetHeader("Last-Event-ID")},
		{"cursor", c.Query("cursor")},
		{"after", c.Query("after")},
	} {
		if src.raw == "" {
			continue
		}
		n, err := strconv.ParseInt(src.raw, 10, 64)
		if err != nil || n < 0 {
			return 0, invalidArgument("%s must be a log line seq (a non-negative integer)", src.name)
		}
		return n, nil
	}
	return 0, nil
}

// followLogs streams an execution's log as Server-Sent Events: the stored
// lines after the cursor, then live lines from the hub, each exactly once
// and in seq order (id: is the seq, so Last-Event-ID resumes). The stream
// ends with an "end" event once the execution is terminal and every line
// was sent, when the client goes, or when the server shuts down (the
// client then resumes with Last-Event-ID).
//
// The subscription is taken before the store is read, so a line persisted
// in between is seen by one or the other; the seq check drops the overlap.
func (a *API) followLogs(c *gin.Context, exec store.Execution, after int64) {
	ctx := c.Request.Context()
	tenant := tenantOf(c)
	sse, err := newSSE(c)
	if err != nil {
		a.logStreamEnd(c, err)
		return
	}

	f := &follower{a: a, sse: sse, tenant: tenant, exec: exec.ID, last: after}
	var sub *hub.LogSubscription
	subscribe := func() {
		if a.hub != nil {
			sub = a.hub.SubscribeLogs(exec.ID, sseSubBuffer)
		}
	}
	unsubscribe := func() {
		if sub != nil {
			sub.Close()
			sub = nil
		}
	}
	defer unsubscribe()
	subscribe()
	if err := f.catchUp(ctx); err != nil {
		a.logStreamEnd(c, err)
		return
	}

	status := time.NewTicker(sseStatusEvery)
	defer status.Stop()
	beat := time.NewTicker(sseHeartbeat)
	defer beat.Stop()
	terminalSeen := false
	for {
		var lines <-chan store.LogLine
		if sub != nil {
			lines = sub.C()
		}
		select {
		case <-ctx.Done():
			return
		case <-a.streamsDone:
			return
		case l, ok := <-lines:
			if !ok {
				err := sub.Err()
				unsubscribe()
				if !errors.Is(err, hub.ErrLagged) {
					// The hub stopped: the server is shutting down.
					return
				}
				// Dropped for lagging: re-subscribe, then fill the gap
				// from the store.
				subscribe()
				if err := f.catchUp(ctx); err != nil {
					a.logStreamEnd(c, err)
					return
				}
				continue
			}
			if err := f.live(ctx, l); err != nil {
				a.logStreamEnd(c, err)
				return
			}
		case <-beat.C:
			if err := f.sse.Comment("keepalive"); err != nil {
				return
			}
		case <-status.C:
			if sub == nil {
				// No hub to push lines: poll the store.
				if err := f.catchUp(ctx); err != nil {
					a.logStreamEnd(c, err)
					return
				}
			}
			done, err := f.ended(ctx, terminalSeen)
			if err != nil {
				a.logStreamEnd(c, err)
				return
			}
			if done {
				return
			}
			terminalSeen = f.terminal
		}
	}
}

// logStreamEnd logs why a stream ended early; the client sees the stream
// close and resumes with Last-Event-ID.
func (a *API) logStreamEnd(c *gin.Context, err error) {
	if c.Request.Context().Err() != nil {
		return
	}
	a.log.Warn("log stream ended", logKeyRequestID, requestID(c), logKeyError, err)
}

// follower is the state of one SSE log stream.
type follower struct {
	a        *API
	sse      *sseWriter
	tenant   uuid.UUID
	exec     uuid.UUID
	last     int64 // highest seq sent
	terminal bool
	status   string
}

// catchUp sends every stored line after the last one sent.
func (f *follower) catchUp(ctx context.Context) error {
	for {
		rows, err := f.a.store.ListLogLines(ctx, f.tenant, f.exec, f.last, sseReadBatch)
		if err != nil {
			return fmt.Errorf("reading logs of execution %s: %w", f.exec, err)
		}
		for _, l := range rows {
			if err := f.send(l); err != nil {
				return err
			}
		}
		if len(rows) > 0 {
			if err := f.sse.Flush(); err != nil {
				return err
			}
		}
		if len(rows) < sseReadBatch {
			return nil
		}
	}
}

// live sends a line pushed by the hub. A line beyond the next seq means
// lines were persisted that this follower has not seen (they were
// published before it subscribed); they are read from the store first.
func (f *follower) live(ctx context.Context, l store.LogLine) error {
	if l.Seq <= f.last {
		return nil
	}
	if l.Seq > f.last+1 {
		if err := f.catchUp(ctx); err != nil {
			return err
		}
		if l.Seq <= f.last {
			return nil
		}
	}
	if err := f.send(l); err != nil {
		return err
	}
	return f.sse.Flush()
}

// ended checks the execution's status. The stream ends when the execution
// was already terminal at the previous check and nothing new is stored:
// the agent sends an action's log before its result, but the server
// persists logs in batches, so the last lines may land just after the
// result; one check interval covers that.
func (f *follower) ended(ctx context.Context, terminalBefore bool) (bool, error) {
	e, err := f.a.store.GetExecution(ctx, f.tenant, f.exec)
	if err != nil {
		return false, fmt.Errorf("getting execution %s: %w", f.exec, err)
	}
	f.terminal, f.status = store.Terminal(e.Status), e.Status
	if !f.terminal {
		return false, nil
	}
	before := f.last
	if err := f.catchUp(ctx); err != nil {
		return false, err
	}
	if !terminalBefore || f.last != before {
		return false, nil
	}
	payload, err := json.Marshal(map[string]any{"status": f.status, "last_seq": f.last})
	if err != nil {
		return false, fmt.Errorf("encoding end event: %w", err)
	}
	if err := f.sse.Event("", "end", payload); err != nil {
		return false, fmt.Errorf("writing end event: %w", err)
	}
	return true, f.sse.Flush()
}

func (f *follower) send(l store.LogLine) error {
	payload, err := json.Marshal(viewLogLine(l))
	if err != nil {
		return fmt.Errorf("encoding log line %d: %w", l.Seq, err)
	}
	if err := f.sse.Event(strconv.FormatInt(l.Seq, 10), "", payload); err != nil {
		return fmt.Errorf("writing log line %d: %w", l.Seq, err)
	}
	f.last = l.Seq
	return nil
}
