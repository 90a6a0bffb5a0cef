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

// Idempotency-Key tuning: see Options.IdempotencyWait and
// Options.IdempotencyLease.
const (
	DefaultIdempotencyWait  = 10 * time.Second
	DefaultIdempotencyLease = 2 * time.Minute
	// idemPollFirst and idemPollMax pace a duplicate's polls of the store
	// while the first request runs: quick for a fast handler, then at most
	// a few reads a second per waiting request.
	idemPollFirst = 5 * time.Millisecond
	idemPollMax   = 200 * time.Millisecond
)

// errKeyInProgress answers a duplicate that waited IdempotencyWait for the
// request holding its key to answer.
var errKeyInProgress = &Error{Status: http.StatusConflict, Code: CodeConflict,
	Message: "a request with this Idempotency-Key is still in progress; retry later"}

// errKeyFree: the reservation a duplicate waited on was released or has
// lapsed, so the duplicate may reserve the key itself.
var errKeyFree = errors.New("idempotency key free again")

// idempotent makes a creating POST safe to retry. The record is scoped to
// the tenant and the route pattern; its fingerprint covers the method, the
// concrete path and the body, so reusing a key for another body or another
// target answers 422 and never another request's result.
//
// The store decides which request runs: the key is reserved there before
// the handler runs (exactly one of concurrent requests wins, on any
// replica), and the winner then stores its answer. A duplicate arriving
// meanwhile waits, up to IdempotencyWait, and answers the stored answer,
// or 409 with Retry-After if the first is still running. A request that
// fails (any answer outside 2xx) releases the key: it changed nothing, so
// its retry must run again rather than replay the failure.
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
	body, err := bufferBody(c)
	if err != nil {
		a.writeError(c, err)
		return
	}
	want := store.IdempotencyRecord{
		TenantID:    tenantOf(c),
		Route:       c.Request.Method + " " + c.FullPath(),
		Key:         key,
		Fingerprint: fingerprint(c.Request.Method, c.Request.URL.Path, body),
		Holder:      store.NewID(),
	}
	rec, won, err := a.claimKey(c.Request.Context(), want)
	switch {
	case errors.Is(err, errKeyInProgress):
		c.Header("Retry-After", "1")
		a.writeError(c, err)
	case err != nil:
		a.writeError(c, fmt.Errorf("reserving idempotency key: %w", err))
	case !won:
		a.replay(c, rec, want.Fingerprint)
	default:
		a.runReserved(c, rec)
	}
}

// bufferBody reads the whole body, so that it can be fingerprinted, and
// puts it back for the handler.
func bufferBody(c *gin.Context) ([]byte, error) {
	var body []byte
	if c.Request.Body != nil {
		b, err := io.ReadAll(c.Request.Body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, errBodyTooLarge
			}
			return nil, invalidJSON("reading request body: %v", err)
		}
		body = b
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// claimKey reserves want's key, or returns the record of the request that
// holds it: its answer once it has one, or — when the holder's body or
// target differs — the pending record at once (the caller answers 422).
// It returns errKeyInProgress when the holder did not answer within
// IdempotencyWait.
func (a *API) claimKey(ctx context.Context, want store.IdempotencyRecord) (store.IdempotencyRecord, bool, error) {
	deadline := time.Now().Add(a.idemWait)
	for {
		now := a.now()
		want.CreatedAt, want.ReservedUntil = now, now.Add(a.idemLease)
		cur, won, err := a.store.ReserveIdempotency(ctx, want)
		if err != nil || won || !cur.Pending() || !bytes.Equal(cur.Fingerprint, want.Fingerprint) {
			return cur, won, err
		}
		cur, err = a.awaitAnswer(ctx, cur, deadline)
		if errors.Is(err, errKeyFree) {
			continue
		}
		return cur, false, err
	}
}

// awaitAnswer polls the store until the pending record cur gets its
// answer (returned), is released or lapses (errKeyFree), or deadline
// passes (errKeyInProgress).
func (a *API) awaitAnswer(ctx context.Context, cur store.IdempotencyRecord, deadline time.Time) (store.IdempotencyRecord, error) {
	delay := idemPollFirst
	for cur.Pending() {
		if !cur.ReservedUntil.After(a.now()) {
			return cur, errKeyFree
		}
		wait := min(delay, time.Until(deadline))
		if wait <= 0 {
			return cur, errKeyInProgress
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return cur, fmt.Errorf("waiting for the request holding the idempotency key: %w", ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, idemPollMax)
		next, err := a.store.GetIdempotency(ctx, cur.TenantID, cur.Route, cur.Key)
		if errors.Is(err, store.ErrNotFound) {
			return cur, errKeyFree
		}
		if err != nil {
			return cur, fmt.Errorf("polling idempotency key: %w", err)
		}
		cur = next
	}
	return cur, nil
}

// runReserved runs the handler of the request holding rec's key, then
// stores its answer, or releases the key when it failed or panicked. The
// handler gets half the reservation's lease, so that it has ended long
// before another request could take a lapsed key over.
func (a *API) runReserved(c *gin.Context, rec store.IdempotencyRecord) {
	ctx := c.Request.Context()
	runCtx, cancel := context.WithTimeout(ctx, a.idemLease/2)
	defer cancel()
	c.Request = c.Request.WithContext(runCtx)
	settled := false
	defer func() {
		if !settled {
			a.settleKey(c, rec, false)
		}
	}()

	rw := &capturingWriter{ResponseWriter: c.Writer}
	c.Writer = rw
	c.Next()
	c.Writer = rw.ResponseWriter
	c.Request = c.Request.WithContext(ctx)
	settled = true

	status := rw.Status()
	if status < 200 || status > 299 || errorCode(c) != "" {
		a.settleKey(c, rec, false)
		return
	}
	resp, err := redact(rw.buf.Bytes(), c.GetStringSlice(ctxKeyRedact))
	if err != nil {
		a.log.LogAttrs(ctx, slog.LevelError, "storing idempotency record failed",
			slog.String(logKeyRequestID, requestID(c)), slog.String(logKeyError, err.Error()))
		a.settleKey(c, rec, false)
		return
	}
	rec.Status, rec.Response = status, resp
	a.settleKey(c, rec, true)
}

// settleKey stores the answer of the request holding rec's key (complete)
// or releases the key. The client may be gone already; the key must still
// be settled, or duplicates would wait for it until it lapses.
func (a *API) settleKey(c *gin.Context, rec store.IdempotencyRecord, complete bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), 5*time.Second)
	defer cancel()
	var err error
	if complete {
		err = a.store.CompleteIdempotency(ctx, rec)
	} else {
		err = a.store.ReleaseIdempotency(ctx, rec.TenantID, rec.Route, rec.Key, rec.Holder)
	}
	if err != nil {
		a.log.LogAttrs(ctx, slog.LevelError, "settling idempotency key failed",
			slog.String(logKeyRequestID, requestID(c)), slog.Bool("complete", complete),
			slog.String(logKeyError, err.Error()))
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
