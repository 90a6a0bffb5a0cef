package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kubedoio/n-kudo/internal/store"
)

// HeaderIdempotencyKey names the client's key for a creating POST.
const HeaderIdempotencyKey = "Idempotency-Key"

// HeaderIdempotentReplay marks a response replayed from a stored record.
const HeaderIdempotentReplay = "Idempotent-Replayed"

const maxIdempotencyKeyLen = 255

// ctxKeyRedact lists top-level response fields that hold a secret shown
// once (an API key, an enrollment token). They are removed from the stored
// record: secrets are only ever stored hashed, so a replay answers the
// created object without its secret.
const ctxKeyRedact = "nkudo.idempotency_redact"

// idempotent makes a creating POST safe to retry. The record is scoped to
// the tenant and the route pattern; its fingerprint covers the method, the
// concrete path and the body, so reusing a key for another body or another
// target answers 422 and never another request's result.
func (a *API) idempotent(c *gin.Context) {
	key := c.GetHeader(HeaderIdempotencyKey)
	if key == "" {
		c.Next()
		return
	}
	if !validIdempotencyKey(key) {
		a.writeError(c, invalidArgument("%s must be 1 to %d printable ASCII characters", HeaderIdempotencyKey, maxIdempotencyKeyLen))
		return
	}
	var body []byte
	if c.Request.Body != nil {
		b, err := io.ReadAll(c.Request.Body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				a.writeError(c, errBodyTooLarge)
				return
			}
			a.writeError(c, invalidJSON("reading request body: %v", err))
			return
		}
		body = b
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))

	tenant := tenantOf(c)
	route := c.Request.Method + " " + c.FullPath()
	fp := fingerprint(c.Request.Method, c.Request.URL.Path, body)
	ctx := c.Request.Context()

	rec, err := a.store.GetIdempotency(ctx, tenant, route, key)
	switch {
	case err == nil:
		a.replay(c, rec, fp)
		return
	case !errors.Is(err, store.ErrNotFound):
		a.writeError(c, fmt.Errorf("getting idempotency record: %w", err))
		return
	}

	// Two concurrent requests with one key on this replica: the second
	// waits for nothing and is told to retry, instead of running twice.
	slot := tenant.String() + "\x00" + route + "\x00" + key
	if !a.inflight.acquire(slot) {
		a.writeError(c, &Error{Status: http.StatusConflict, Code: CodeConflict, Message: "a request with this Idempotency-Key is still in progress"})
		return
	}
	defer a.inflight.release(slot)

	rw := &capturingWriter{ResponseWriter: c.Writer}
	c.Writer = rw
	c.Next()
	c.Writer = rw.ResponseWriter

	status := rw.Status()
	if status < 200 || status > 299 || errorCode(c) != "" {
		return
	}
	resp, err := redact(rw.buf.Bytes(), c.GetStringSlice(ctxKeyRedact))
	if err != nil {
		a.log.LogAttrs(ctx, slog.LevelError, "storing idempotency record failed",
			slog.String(logKeyRequestID, requestID(c)), slog.String(logKeyError, err.Error()))
		return
	}
	putCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = a.store.PutIdempotency(putCtx, store.IdempotencyRecord{
		TenantID:    tenant,
		Route:       route,
		Key:         key,
		Fingerprint: fp,
		Status:      status,
		Response:    resp,
		CreatedAt:   a.now(),
	})
	// ErrConflict: another replica stored the same key first; its record
	// wins and ours is redundant.
	if err != nil && !errors.Is(err, store.ErrConflict) {
		a.log.LogAttrs(ctx, slog.LevelError, "storing idempotency record failed",
			slog.String(logKeyRequestID, requestID(c)), slog.String(logKeyError, err.Error()))
	}
}

func (a *API) replay(c *gin.Context, rec store.IdempotencyRecord, fp []byte) {
	if !bytes.Equal(rec.Fingerprint, fp) {
		a.writeError(c, store.ErrIdempotencyMismatch)
		return
	}
	c.Header(HeaderIdempotentReplay, "true")
	c.Data(rec.Status, "application/json; charset=utf-8", rec.Response)
	c.Abort()
}

// fingerprint hashes what makes two requests "the same request". Lengths
// are written before each part so no two different requests can collide
// by moving bytes between parts.
func fingerprint(method, path string, body []byte) []byte {
	h := sha256.New()
	for _, part := range [][]byte{[]byte(method), []byte(path), body} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	return h.Sum(nil)
}

func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > maxIdempotencyKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// redact removes the named top-level fields from a JSON object.
func redact(resp []byte, fields []string) ([]byte, error) {
	if len(fields) == 0 {
		return resp, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(resp, &obj); err != nil {
		return nil, fmt.Errorf("redacting response: %w", err)
	}
	for _, f := range fields {
		delete(obj, f)
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("redacting response: %w", err)
	}
	return out, nil
}

// capturingWriter keeps a copy of the response body for the record.
type capturingWriter struct {
	gin.ResponseWriter
	buf bytes.Buffer
}

func (w *capturingWriter) Write(b []byte) (int, error) {
	w.buf.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *capturingWriter) WriteString(s string) (int, error) {
	w.buf.WriteString(s)
	return w.ResponseWriter.WriteString(s)
}

// inflightSet holds the idempotency slots being served on this replica.
type inflightSet struct {
	mu    sync.Mutex // guards slots
	slots map[string]struct{}
}

func newInflightSet() *inflightSet {
	return &inflightSet{slots: make(map[string]struct{})}
}

func (s *inflightSet) acquire(slot string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, busy := s.slots[slot]; busy {
		return false
	}
	s.slots[slot] = struct{}{}
	return true
}

func (s *inflightSet) release(slot string) {
	s.mu.Lock()
	delete(s.slots, slot)
	s.mu.Unlock()
}
