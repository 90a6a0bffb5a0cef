package client

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors. An *APIError matches the one that fits its code or
// status with errors.Is, so callers never compare strings.
var (
	// ErrInvalidConfig: New was given a configuration it cannot use.
	ErrInvalidConfig = errors.New("invalid client configuration")
	// ErrUnreachable: no HTTP exchange took place (DNS, refused, TLS).
	ErrUnreachable = errors.New("server unreachable")
	// ErrInvalidResponse: the server answered something that is not the
	// API's JSON.
	ErrInvalidResponse = errors.New("invalid response from server")

	ErrNotFound            = errors.New("not found")
	ErrUnauthenticated     = errors.New("unauthenticated")
	ErrForbidden           = errors.New("forbidden")
	ErrConflict            = errors.New("conflict")
	ErrInvalidArgument     = errors.New("invalid argument")
	ErrIdempotencyMismatch = errors.New("idempotency key mismatch")
	ErrRateLimited         = errors.New("rate limited")
	ErrUnavailable         = errors.New("service unavailable")
	ErrServer              = errors.New("server error")
)

// Error codes of the API's {"error":{"code","message"}} body.
const (
	CodeInvalidArgument     = "invalid_argument"
	CodeInvalidJSON         = "invalid_json"
	CodeUnauthenticated     = "unauthenticated"
	CodeForbidden           = "forbidden"
	CodeNotFound            = "not_found"
	CodeConflict            = "conflict"
	CodeIdempotencyMismatch = "idempotency_mismatch"
	CodeRateLimited         = "rate_limited"
	CodeUnavailable         = "unavailable"
	CodeTokenInvalid        = "token_invalid"
)

// APIError is an error answered by the server.
type APIError struct {
	Status    int    // HTTP status
	Code      string // the API's error code; derived from Status when the body had none
	Message   string // the server's message, safe to show to a user
	RequestID string // X-Request-ID of the exchange, for the server's logs
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.RequestID != "" {
		return fmt.Sprintf("%s (%s, request %s)", msg, e.Code, e.RequestID)
	}
	return fmt.Sprintf("%s (%s)", msg, e.Code)
}

// Is matches the sentinel that fits the error's code, falling back on
// the status so that errors from proxies in front of the server classify
// too.
func (e *APIError) Is(target error) bool {
	return e.sentinel() == target
}

func (e *APIError) sentinel() error {
	switch e.Code {
	case CodeNotFound:
		return ErrNotFound
	case CodeUnauthenticated, CodeTokenInvalid:
		return ErrUnauthenticated
	case CodeForbidden:
		return ErrForbidden
	case CodeConflict:
		return ErrConflict
	case CodeInvalidArgument, CodeInvalidJSON:
		return ErrInvalidArgument
	case CodeIdempotencyMismatch:
		return ErrIdempotencyMismatch
	case CodeRateLimited:
		return ErrRateLimited
	case CodeUnavailable:
		return ErrUnavailable
	}
	switch {
	case e.Status == http.StatusNotFound:
		return ErrNotFound
	case e.Status == http.StatusUnauthorized:
		return ErrUnauthenticated
	case e.Status == http.StatusForbidden:
		return ErrForbidden
	case e.Status == http.StatusConflict:
		return ErrConflict
	case e.Status == http.StatusUnprocessableEntity:
		return ErrIdempotencyMismatch
	case e.Status == http.StatusTooManyRequests:
		return ErrRateLimited
	case e.Status == http.StatusServiceUnavailable, e.Status == http.StatusBadGateway, e.Status == http.StatusGatewayTimeout:
		return ErrUnavailable
	case e.Status >= 500:
		return ErrServer
	case e.Status >= 400:
		return ErrInvalidArgument
	}
	return nil
}

// IsNotFound reports whether err says the object does not exist (or is
// another tenant's, which the API does not distinguish).
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsUnauthenticated reports whether the API key was missing or refused.
func IsUnauthenticated(err error) bool { return errors.Is(err, ErrUnauthenticated) }

// IsForbidden reports whether the key's role does not allow the call.
func IsForbidden(err error) bool { return errors.Is(err, ErrForbidden) }

// IsConflict reports a uniqueness or dependency conflict.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsInvalidArgument reports a request the server refused as malformed.
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// IsRateLimited reports a 429.
func IsRateLimited(err error) bool { return errors.Is(err, ErrRateLimited) }

// IsUnreachable reports that no exchange with the server took place.
func IsUnreachable(err error) bool { return errors.Is(err, ErrUnreachable) }

// retryable reports whether a stream may reconnect after err: transport
// failures, throttling and server-side trouble pass; a refusal of the
// request itself (4xx) would only repeat.
func retryable(err error) bool {
	var re transientError
	if errors.As(err, &re) {
		return true
	}
	if errors.Is(err, ErrInvalidResponse) {
		// The same bytes would come back on a reconnect.
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status == http.StatusTooManyRequests || ae.Status >= 500
	}
	return true
}

// transientError marks a refusal that a stream outlives: the condition
// (e.g. the VM's host being offline) is expected to pass, so the stream
// retries instead of failing.
type transientError struct{ err error }

func (t transientError) Error() string { return t.err.Error() }
func (t transientError) Unwrap() error { return t.err }
