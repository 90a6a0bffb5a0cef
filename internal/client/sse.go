package client

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// Bounds of the Server-Sent Events decoder: one field line and one whole
// event. Our events are small (a JSON view); anything bigger is a broken
// or hostile server.
const (
	maxSSELine  = 1 << 20
	maxSSEEvent = 4 << 20
)

// sseEvent is one dispatched Server-Sent Event.
type sseEvent struct {
	ID    string // value of the last id: field of the event, if HasID
	HasID bool
	Type  string // event: field; "" means the default "message"
	Data  []byte // data: lines joined with \n
}

// sseDecoder reads events per the WHATWG EventSource parsing rules:
// fields until a blank line, comment lines (":") ignored, a single space
// after the colon dropped, data lines joined with newlines. An event
// with neither data nor type (e.g. only a keepalive comment) is not
// dispatched.
type sseDecoder struct {
	sc *bufio.Scanner
	// onLine is called for every line read, comments included, so the
	// caller's idle watchdog sees keepalives.
	onLine func()
}

func newSSEDecoder(r io.Reader, onLine func()) *sseDecoder {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxSSELine)
	return &sseDecoder{sc: sc, onLine: onLine}
}

// Next returns the next event, io.EOF at a clean end of stream, or
// io.ErrUnexpectedEOF when the stream ended inside an event.
func (d *sseDecoder) Next() (sseEvent, error) {
	var ev sseEvent
	var data bytes.Buffer
	started, hasData := false, false
	for d.sc.Scan() {
		if d.onLine != nil {
			d.onLine()
		}
		line := d.sc.Bytes()
		if len(line) == 0 {
			if hasData || ev.Type != "" {
				ev.Data = bytes.Clone(data.Bytes())
				return ev, nil
			}
			// An id-only block still moves the last event id.
			if ev.HasID {
				return ev, nil
			}
			started = false
			continue
		}
		if line[0] == ':' {
			continue
		}
		started = true
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			value = bytes.TrimPrefix(value, []byte{' '})
		}
		switch string(field) {
		case "event":
			ev.Type = string(value)
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			hasData = true
			data.Write(value)
			if data.Len() > maxSSEEvent {
				return sseEvent{}, fmt.Errorf("reading event stream: %w: event larger than %d bytes", ErrInvalidResponse, maxSSEEvent)
			}
		case "id":
			// Per the standard, an id containing NUL is ignored.
			if bytes.IndexByte(value, 0) < 0 {
				ev.ID, ev.HasID = string(value), true
			}
		default:
			// retry: and unknown fields are ignored; the client runs its
			// own capped backoff.
		}
	}
	if err := d.sc.Err(); err != nil {
		return sseEvent{}, fmt.Errorf("reading event stream: %w", err)
	}
	if started {
		return sseEvent{}, io.ErrUnexpectedEOF
	}
	return sseEvent{}, io.EOF
}
