package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kubedoio/n-kudo/internal/store"
)

// Error codes of the {"error":{"code","message"}} body. Clients script
// against them, so they never change once released.
const (
	CodeInvalidArgument     = "invalid_argument"
	CodeInvalidJSON         = "invalid_json"
	CodeUnauthenticated     = "unauthenticated"
	CodeForbidden           = "forbidden"
	CodeNotFound            = "not_found"
	CodeMethodNotAllowed    = "method_not_allowed"
	CodeConflict            = "conflict"
	CodeBodyTooLarge        = "body_too_large"
	CodeRequestTimeout      = "request_timeout"
	CodeIdempotencyMismatch = "idempotency_mismatch"
	CodeRateLimited         = "rate_limited"
	CodeInternal            = "internal"
	CodeUnavailable         = "unavailable"
)

// Sentinel errors of the package.
var (
	// ErrInvalidOptions: New was given options it cannot work with.
	ErrInvalidOptions = errors.New("invalid api options")
	// ErrOpenAPIMismatch: the OpenAPI document and the routes disagree.
	ErrOpenAPIMismatch = errors.New("openapi document does not match routes")
)

// Error is an error with a known HTTP status and client-facing code. Its
// message is shown to the client, so it never carries internal details.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// errorBody is the one error shape of the API.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func invalidArgument(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidArgument, Message: fmt.Sprintf(format, args...)}
}

func invalidJSON(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Message: fmt.Sprintf(format, args...)}
}

var (
	errUnauthenticated = &Error{Status: http.StatusUnauthorized, Code: CodeUnauthenticated, Message: "missing or invalid API key"}
	errForbidden       = &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: "the API key's role does not allow this"}
	errBodyTooLarge    = &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge, Message: "request body is too large"}
)

// ctxKeyErrorCode is where writeError leaves the code it answered, for the
// audit and access-log middleware.
const ctxKeyErrorCode = "nkudo.error_code"

// classify maps any error to the status, code and message the client sees.
// Every error response of the package goes through it, so the mapping
// from store sentinels to HTTP lives in exactly one place.
func classify(err error) *Error {
	var ae *Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return errBodyTooLarge
	case errors.Is(err, store.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "not found"}
	case errors.Is(err, store.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: "conflicts with an existing object or its dependents"}
	case errors.Is(err, store.ErrIdempotencyMismatch):
		return &Error{Status: http.StatusUnprocessableEntity, Code: CodeIdempotencyMismatch, Message: "Idempotency-Key was already used with a different request"}
	case errors.Is(err, store.ErrInvalid):
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidArgument, Message: "invalid argument"}
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "the service is temporarily unavailable"}
	default:
		return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
	}
}

// writeError answers err in the API's error shape and aborts the chain.
// Internal errors are logged with the request id and never sent out.
func (a *API) writeError(c *gin.Context, err error) {
	e := classify(err)
	if e.Status >= http.StatusInternalServerError {
		a.log.LogAttrs(c.Request.Context(), slog.LevelError, "request failed",
			slog.String(logKeyRequestID, requestID(c)),
			slog.String(logKeyRoute, c.FullPath()),
			slog.String(logKeyError, err.Error()))
	}
	if c.GetBool(ctxKeyBodyTimeout) {
		// However the handler described its failed read, the cause is
		// the body's deadline; the connection cannot serve another
		// request.
		e = errRequestTimeout
		c.Header("Connection", "close")
	}
	c.Set(ctxKeyErrorCode, e.Code)
	if c.Writer.Written() {
		c.Abort()
		return
	}
	c.AbortWithStatusJSON(e.Status, errorBody{Error: errorDetail{Code: e.Code, Message: e.Message}})
}

// errorCode returns the code writeError answered for this request, if any.
func errorCode(c *gin.Context) string {
	if v, ok := c.Get(ctxKeyErrorCode); ok {
		if s, ok := v.(string); ok {
			return s
		}
	}
	return ""
}
