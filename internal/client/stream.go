package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/backoff"
)

// streamIdleTimeout is how long a stream may stay silent before the
// connection is presumed dead: the server sends a keepalive comment every
// 15 s, so three missed ones mean a half-open connection a reconnect
// will fix.
const streamIdleTimeout = 45 * time.Second

// Event types of the live event stream (GET /v1/events).
const (
	EventHostUpdated  = "host.updated"
	EventAgentUpdated = "agent.updated"
	EventVMUpdated    = "vm.updated"
	EventVMDeleted    = "vm.deleted"
	EventPlanUpdated  = "plan.updated"
	EventSiteUpdated  = "site.updated"
	EventSiteDeleted  = "site.deleted"
	// EventResync says events were lost (server restart, buffer overflow,
	// a subscriber that fell behind): the receiver must re-list
	// everything, then carry on with the events that follow.
	EventResync = "resync"
)

// Event is one change of the tenant's objects. Object is the same JSON
// view the REST API returns for the object; decode it with the typed
// accessors. A resync event carries only Type and Seq.
type Event struct {
	Seq    uint64          `json:"seq"`
	Type   string          `json:"type"`
	At     time.Time       `json:"at"`
	ID     uuid.UUID       `json:"id"`
	Object json.RawMessage `json:"object"`
}

// DecodeObject decodes an event's object into T.
func DecodeObject[T any](e Event) (T, error) {
	var out T
	if len(e.Object) == 0 {
		return out, fmt.Errorf("decoding %s event %d: %w: no object", e.Type, e.Seq, ErrInvalidResponse)
	}
	if err := json.Unmarshal(e.Object, &out); err != nil {
		return out, fmt.Errorf("decoding %s event %d: %w: %w", e.Type, e.Seq, ErrInvalidResponse, err)
	}
	return out, nil
}

// Host decodes the object of a host.updated event. The server may send
// only what a heartbeat changed (id, online, last_seen_at, usage…); to
// keep the other fields, merge with UpdateHost instead.
func (e Event) Host() (Host, error) { return DecodeObject[Host](e) }

// UpdateHost returns h with the fields present in a host.updated event's
// object applied; fields the event leaves out keep h's values.
func (e Event) UpdateHost(h Host) (Host, error) {
	if err := e.ApplyTo(&h); err != nil {
		return Host{}, err
	}
	return h, nil
}

// ApplyTo decodes the event's object onto dst, which keeps every field
// the object does not carry: the merge a partial (patch) event needs.
func (e Event) ApplyTo(dst any) error {
	if len(e.Object) == 0 {
		return fmt.Errorf("decoding %s event %d: %w: no object", e.Type, e.Seq, ErrInvalidResponse)
	}
	if err := json.Unmarshal(e.Object, dst); err != nil {
		return fmt.Errorf("decoding %s event %d: %w: %w", e.Type, e.Seq, ErrInvalidResponse, err)
	}
	return nil
}

// Agent decodes the object of an agent.updated event.
func (e Event) Agent() (Agent, error) { return DecodeObject[Agent](e) }

// VM decodes the object of a vm.updated or vm.deleted event.
func (e Event) VM() (VM, error) { return DecodeObject[VM](e) }

// Plan decodes the object of a plan.updated event.
func (e Event) Plan() (Plan, error) { return DecodeObject[Plan](e) }

// Site decodes the object of a site.updated or site.deleted event.
func (e Event) Site() (Site, error) { return DecodeObject[Site](e) }

// handlerError marks an error returned by the caller's callback, which
// ends a stream as is instead of causing a reconnect.
type handlerError struct{ err error }

func (h handlerError) Error() string { return h.err.Error() }
func (h handlerError) Unwrap() error { return h.err }

// errStreamDone: the server said the stream is complete.
var errStreamDone = errors.New("stream complete")

// streamSession is one connection of a resumable stream. It returns
// whether it delivered anything (which resets the backoff) and why it
// ended.
type streamSession func(ctx context.Context) (progressed bool, err error)

// resume runs session until it completes, the context ends, the callback
// fails or the server refuses the request; other failures (network,
// 5xx, 429, a stream cut short) reconnect after a capped, jittered
// backoff.
func (c *Client) resume(ctx context.Context, path string, session streamSession) error {
	b := backoff.Backoff{Base: c.reconBase, Max: c.reconMax}
	for {
		progressed, err := session(ctx)
		var he handlerError
		switch {
		case errors.Is(err, errStreamDone):
			c.streamState(ctx, path, false, nil)
			return nil
		case errors.As(err, &he):
			return he.err
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && !retryable(err):
			c.streamState(ctx, path, false, err)
			return err
		}
		if err == nil {
			// A session only ends without an error when the body ended
			// cleanly, which for a live stream is still a cut.
			err = fmt.Errorf("reading stream %s: %w: the server closed it", path, ErrUnreachable)
		}
		c.streamState(ctx, path, false, err)
		if progressed {
			b.Reset()
		}
		if werr := b.Wait(ctx); werr != nil {
			return ctx.Err()
		}
	}
}

// openStream starts an SSE request. The returned cancel must be called
// when done; poke must be called on every line so the idle watchdog does
// not fire.
func (c *Client) openStream(ctx context.Context, path string, q url.Values, lastID string) (resp *http.Response, poke func(), cancel func(), err error) {
	sctx, cancelCtx := context.WithCancel(ctx)
	// The watchdog is a timer, not a goroutine: when it fires, it cancels
	// the request, which unblocks the reader.
	watchdog := time.AfterFunc(streamIdleTimeout, cancelCtx)
	cancel = func() {
		watchdog.Stop()
		cancelCtx()
	}
	poke = func() { watchdog.Reset(streamIdleTimeout) }
	req, err := c.newRequest(sctx, http.MethodGet, path, q, nil)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if lastID != "" {
		req.Header.Set(headerLastEventID, lastID)
	}
	resp, err = c.send(ctx, req)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		cancel()
		return nil, nil, nil, fmt.Errorf("opening stream %s: %w", path, decodeError(resp))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		resp.Body.Close()
		cancel()
		return nil, nil, nil, fmt.Errorf("opening stream %s: %w: content type %q is not text/event-stream", path, ErrInvalidResponse, mt)
	}
	c.streamState(ctx, path, true, nil)
	return resp, poke, cancel, nil
}

// readStream is one session of a resumable stream: it opens path with the
// resume cursor and hands every event to handle until the body ends,
// handle fails (errStreamDone, a handlerError, a decoding error) or the
// connection breaks. It reports whether any event arrived, which resets
// the reconnect backoff.
func (c *Client) readStream(ctx context.Context, path string, q url.Values, lastID string, handle func(sseEvent) error) (progressed bool, err error) {
	resp, poke, cancel, err := c.openStream(ctx, path, q, lastID)
	if err != nil {
		return false, err
	}
	defer cancel()
	defer resp.Body.Close()
	dec := newSSEDecoder(resp.Body, poke)
	for {
		ev, err := dec.Next()
		if err != nil {
			return progressed, streamEnd(path, err)
		}
		progressed = true
		if err := handle(ev); err != nil {
			return true, err
		}
	}
}

// streamState reports a stream's health to Config.OnStreamState while
// the stream's caller is still listening.
func (c *Client) streamState(ctx context.Context, path string, connected bool, err error) {
	if c.onState != nil && ctx.Err() == nil {
		c.onState(path, connected, err)
	}
}

// FollowLogs calls fn with every log line of an execution after seq
// afterSeq, first the stored ones, then live ones as the agent sends
// them, until the execution has ended and all its lines were delivered
// (nil), ctx ends (ctx.Err()) or fn fails (fn's error as is). A dropped
// connection is resumed with Last-Event-ID; lines already delivered are
// never delivered twice.
func (c *Client) FollowLogs(ctx context.Context, exec uuid.UUID, afterSeq int64, fn func(LogLine) error) error {
	last := afterSeq
	path := "/v1/executions/" + exec.String() + "/logs"
	err := c.resume(ctx, path, func(ctx context.Context) (bool, error) {
		q := url.Values{"follow": {"true"}}
		lastID := ""
		if last > 0 {
			q.Set("after", strconv.FormatInt(last, 10))
			lastID = strconv.FormatInt(last, 10)
		}
		return c.readStream(ctx, path, q, lastID, func(ev sseEvent) error {
			switch ev.Type {
			case "end":
				return errStreamDone
			case "", "message", "log":
			default:
				return nil // event types of a newer server
			}
			if len(ev.Data) == 0 {
				return nil
			}
			var line LogLine
			if err := json.Unmarshal(ev.Data, &line); err != nil {
				return fmt.Errorf("decoding log line of execution %s: %w: %w", exec, ErrInvalidResponse, err)
			}
			if line.Seq <= last {
				return nil // replayed after a reconnect
			}
			if err := fn(line); err != nil {
				return handlerError{err}
			}
			last = line.Seq
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("following logs of execution %s: %w", exec, err)
	}
	return nil
}

// Events calls fn with every change of the tenant's objects after seq
// since (0: from now on), until ctx ends (ctx.Err()) or fn fails (fn's
// error as is). The stream reconnects with backoff and resumes after the
// last seq seen; when the server cannot resume, fn receives an event of
// type EventResync and must re-list what it shows.
func (c *Client) Events(ctx context.Context, since uint64, fn func(Event) error) error {
	last := since
	const path = "/v1/events"
	err := c.resume(ctx, path, func(ctx context.Context) (bool, error) {
		q := url.Values{}
		lastID := ""
		if last > 0 {
			q.Set("since", strconv.FormatUint(last, 10))
			lastID = strconv.FormatUint(last, 10)
		}
		return c.readStream(ctx, path, q, lastID, func(sev sseEvent) error {
			if len(sev.Data) == 0 {
				return nil
			}
			var ev Event
			if err := json.Unmarshal(sev.Data, &ev); err != nil {
				return fmt.Errorf("decoding event: %w: %w", ErrInvalidResponse, err)
			}
			if sev.Type == EventResync {
				// The resync data is only {"seq":N}: the receiver
				// re-lists, and the stream carries on after N.
				ev = Event{Type: EventResync, Seq: ev.Seq}
				if err := fn(ev); err != nil {
					return handlerError{err}
				}
				last = ev.Seq
				return nil
			}
			if ev.Type == "" {
				ev.Type = sev.Type
			}
			if ev.Seq != 0 && ev.Seq <= last {
				return nil // replayed after a reconnect
			}
			if err := fn(ev); err != nil {
				return handlerError{err}
			}
			if ev.Seq > last {
				last = ev.Seq
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("following events: %w", err)
	}
	return nil
}

// streamEnd turns the end of a stream's body into the error that makes
// resume reconnect.
func streamEnd(path string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("reading stream %s: %w: the server closed it", path, ErrUnreachable)
	}
	return fmt.Errorf("reading stream %s: %w: %w", path, ErrUnreachable, err)
}
