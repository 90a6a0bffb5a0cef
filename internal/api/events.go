package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/event"
	"github.com/kubedoio/n-kudo/internal/store"
)

// eventFlushBatch bounds how many queued events are written before the
// stream is flushed: a burst (heartbeats of a whole fleet) goes out in a
// few writes instead of one per event.
const eventFlushBatch = 256

var errEventsDisabled = &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "the event stream is not enabled on this server"}

// eventData is the JSON of one event's data line.
type eventData struct {
	Seq    uint64    `json:"seq"`
	Type   string    `json:"type"`
	At     time.Time `json:"at"`
	ID     uuid.UUID `json:"id"`
	Object any       `json:"object"`
}

// hostPatchView renders an event.HostPatch: only what the write changed,
// for the receiver to merge into the host it holds. Absent fields are
// unchanged, not empty.
type hostPatchView struct {
	ID         uuid.UUID       `json:"id"`
	AgentID    uuid.UUID       `json:"agent_id"`
	Online     bool            `json:"online"`
	LastSeenAt *time.Time      `json:"last_seen_at,omitempty"`
	Facts      json.RawMessage `json:"facts,omitempty"`
	NetBird    json.RawMessage `json:"netbird,omitempty"`
	Usage      json.RawMessage `json:"usage,omitempty"`
}

func viewHostPatch(p event.HostPatch) hostPatchView {
	v := hostPatchView{ID: p.ID, AgentID: p.AgentID, Online: p.Online, Facts: p.Facts, NetBird: p.NetBird, Usage: knownObject(p.Usage)}
	if !p.LastSeenAt.IsZero() {
		t := p.LastSeenAt.UTC()
		v.LastSeenAt = &t
	}
	return v
}

// viewEventObject renders an event's object with the view the REST API
// uses for it.
func viewEventObject(obj any) (any, bool) {
	switch o := obj.(type) {
	case store.Host:
		return viewHost(o), true
	case event.HostPatch:
		return viewHostPatch(o), true
	case store.Agent:
		return viewAgent(o), true
	case store.VM:
		return viewVM(o), true
	case store.Plan:
		return viewPlan(o), true
	case store.Site:
		return viewSite(o), true
	}
	return nil, false
}

// eventCursor reads where a client resumes: the Last-Event-ID header of a
// reconnecting EventSource wins over ?since=. 0 means "from now on".
func eventCursor(c *gin.Context) (uint64, error) {
	for _, src := range []struct{ name, raw string }{
		{"Last-Event-ID", c.GetHeader("Last-Event-ID")},
		{"since", c.Query("since")},
	} {
		if src.raw == "" {
			continue
		}
		n, err := strconv.ParseUint(src.raw, 10, 64)
		if err != nil {
			return 0, invalidArgument("%s must be an event seq (a non-negative integer)", src.name)
		}
		return n, nil
	}
	return 0, nil
}

// streamEvents serves GET /v1/events: the caller's tenant's changes as
// Server-Sent Events (see internal/event). After the events missed since
// the cursor, or a resync event when they are no longer all known, it
// follows the live feed until the client goes or the server shuts down.
// A stream that falls behind the feed is resumed from the last event it
// sent, or told to resync when that is no longer possible; it never slows
// the publishers.
func (a *API) streamEvents(c *gin.Context) {
	if a.events == nil {
		a.writeError(c, errEventsDisabled)
		return
	}
	since, err := eventCursor(c)
	if err != nil {
		a.writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	tenant := tenantOf(c)
	sub, replay, resync := a.events.Subscribe(tenant, since)
	defer func() { sub.Close() }()

	sse, err := newSSE(c)
	if err != nil {
		a.eventStreamEnd(c, err)
		return
	}
	s := &eventStream{a: a, c: c, sse: sse}
	if err := s.start(sub, replay, resync); err != nil {
		a.eventStreamEnd(c, err)
		return
	}
	beat := time.NewTicker(sseHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.streamsDone:
			return
		case <-beat.C:
			if err := sse.Comment("keepalive"); err != nil {
				return
			}
		case e, ok := <-sub.C():
			if !ok {
				if !errors.Is(sub.Err(), event.ErrLagged) {
					return
				}
				// Cut off for lagging: resume from the last event sent;
				// the broker's history usually still holds the gap.
				sub.Close()
				sub, replay, resync = a.events.Subscribe(tenant, s.last)
				if err := s.start(sub, replay, resync); err != nil {
					a.eventStreamEnd(c, err)
					return
				}
				continue
			}
			if err := s.sendBurst(sub, e); err != nil {
				a.eventStreamEnd(c, err)
				return
			}
		}
	}
}

// eventStreamEnd logs why a stream ended early, unless the client left.
func (a *API) eventStreamEnd(c *gin.Context, err error) {
	if c.Request.Context().Err() != nil {
		return
	}
	a.log.Warn("event stream ended", logKeyRequestID, requestID(c), logKeyError, err)
}

// eventStream is the state of one SSE event stream.
type eventStream struct {
	a   *API
	c   *gin.Context
	sse *sseWriter
	// last is the seq up to which the client has every event of its
	// tenant.
	last uint64
}

// start sends what a fresh subscription owes the client: the replay, or a
// resync. Either way the client then holds everything up to the
// subscription's start.
func (s *eventStream) start(sub *event.Subscription, replay []event.Event, resync bool) error {
	if resync {
		start := strconv.FormatUint(sub.Start(), 10)
		if err := s.sse.Event(start, event.TypeResync, []byte(`{"seq":`+start+`}`)); err != nil {
			return fmt.Errorf("writing resync event: %w", err)
		}
	}
	for _, e := range replay {
		if err := s.send(e); err != nil {
			return err
		}
	}
	s.last = max(s.last, sub.Start())
	return s.sse.Flush()
}

// sendBurst sends e and whatever else is already queued (up to a batch),
// then flushes once.
func (s *eventStream) sendBurst(sub *event.Subscription, e event.Event) error {
	if err := s.send(e); err != nil {
		return err
	}
	for range eventFlushBatch - 1 {
		select {
		case next, ok := <-sub.C():
			if !ok {
				// The caller sees the closed channel at its next receive.
				return s.sse.Flush()
			}
			if err := s.send(next); err != nil {
				return err
			}
			continue
		default:
		}
		break
	}
	return s.sse.Flush()
}

func (s *eventStream) send(e event.Event) error {
	obj, ok := viewEventObject(e.Object)
	if !ok {
		// A publisher bug, not the client's problem: skip the event but
		// say so, since the client's view now misses a change.
		s.a.log.Error("event with an object of unknown type", logKeyRequestID, requestID(s.c), "type", e.Type, "seq", e.Seq, "object", fmt.Sprintf("%T", e.Object))
		s.last = e.Seq
		return nil
	}
	payload, err := json.Marshal(eventData{Seq: e.Seq, Type: e.Type, At: e.At.UTC(), ID: e.ID, Object: obj})
	if err != nil {
		return fmt.Errorf("encoding event %d: %w", e.Seq, err)
	}
	if err := s.sse.Event(strconv.FormatUint(e.Seq, 10), e.Type, payload); err != nil {
		return fmt.Errorf("writing event %d: %w", e.Seq, err)
	}
	s.last = e.Seq
	return nil
}
