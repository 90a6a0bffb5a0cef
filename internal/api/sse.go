package api

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// errSSEField is returned for an event id or type that would break the
// framing: a line break there would end the field early and let the rest
// be read as another field.
var errSSEField = errors.New("server-sent event id and type must be single lines")

// sseWriter frames Server-Sent Events (the text/event-stream format of the
// HTML living standard) on one response. Event only buffers in the
// response writer, so a stream can send a burst and Flush once; Comment
// flushes at once, since its only use is a heartbeat that must reach the
// client now. It is used by one handler goroutine; it is not safe for
// concurrent use.
type sseWriter struct {
	w     gin.ResponseWriter
	flush func() error
	buf   bytes.Buffer // reused frame buffer: one Write per frame
}

// newSSE starts an event stream on c: the headers, a 200 and a flush, so
// the client sees the stream open before the first event.
func newSSE(c *gin.Context) (*sseWriter, error) {
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("Connection", "keep-alive")
	// Tell nginx-like proxies not to buffer the stream.
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sseWriter{w: w, flush: http.NewResponseController(w).Flush}
	if err := s.Flush(); err != nil {
		return nil, fmt.Errorf("opening event stream: %w", err)
	}
	return s, nil
}

// Event writes one event. An empty id or event type leaves that field out
// (the client keeps its last event id; the type defaults to "message").
// Data may span lines: each line becomes its own "data:" field, which the
// client joins back with "\n".
func (s *sseWriter) Event(id, event string, data []byte) error {
	if strings.ContainsAny(id, "\r\n") || strings.ContainsAny(event, "\r\n") {
		return fmt.Errorf("writing event %q of type %q: %w", id, event, errSSEField)
	}
	s.buf.Reset()
	if id != "" {
		s.buf.WriteString("id: ")
		s.buf.WriteString(id)
		s.buf.WriteByte('\n')
	}
	if event != "" {
		s.buf.WriteString("event: ")
		s.buf.WriteString(event)
		s.buf.WriteByte('\n')
	}
	for _, line := range sseLines(string(data)) {
		s.buf.WriteString("data: ")
		s.buf.WriteString(line)
		s.buf.WriteByte('\n')
	}
	s.buf.WriteByte('\n')
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return fmt.Errorf("writing event: %w", err)
	}
	return nil
}

// Comment writes a comment line (clients ignore it) and flushes: it keeps
// proxies and idle timeouts from cutting a quiet stream.
func (s *sseWriter) Comment(text string) error {
	s.buf.Reset()
	for _, line := range sseLines(text) {
		s.buf.WriteString(": ")
		s.buf.WriteString(line)
		s.buf.WriteByte('\n')
	}
	s.buf.WriteByte('\n')
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return fmt.Errorf("writing comment: %w", err)
	}
	return s.Flush()
}

// Flush sends what Event buffered.
func (s *sseWriter) Flush() error {
	if err := s.flush(); err != nil {
		return fmt.Errorf("flushing event stream: %w", err)
	}
	return nil
}

// sseLines splits text at every line terminator the format knows (CRLF,
// LF, CR), so no terminator can reach the stream inside a field.
func sseLines(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	return strings.Split(text, "\n")
}
