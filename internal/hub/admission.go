package hub

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Admission control. Every connection holds a slot of h.admit from its
// request until its hello has been processed, so a reconnect storm is
// served at the rate the machine can sustain instead of every agent
// competing for the CPU at once and timing out. A request that finds no
// slot within AdmissionWait is refused with 503 and a jittered
// Retry-After, which spreads the retries of a fleet over time.

// acquireSlot takes an admission slot, waiting up to AdmissionWait. It
// reports false when none freed up, the request ended or the hub stops.
func (h *Hub) acquireSlot(ctx context.Context) bool {
	select {
	case h.admit <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(h.opts.AdmissionWait)
	defer t.Stop()
	select {
	case h.admit <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	case <-h.stopCtx.Done():
	}
	return false
}

func (h *Hub) releaseSlot() { <-h.admit }

// retryAfter is the Retry-After, in whole seconds as HTTP wants it, of an
// overload refusal: uniform in [1, RetryAfter] so that agents refused
// together do not come back together.
func (h *Hub) retryAfter() int {
	return 1 + rand.IntN(int(h.opts.RetryAfter/time.Second))
}

// refuseOverload answers a request that found no admission slot.
func (h *Hub) refuseOverload(w http.ResponseWriter, r *http.Request) {
	h.metrics.refused(refuseOverloaded)
	h.log.Debug("refusing agent connection: handshakes saturated", logKeyRemote, r.RemoteAddr)
	w.Header().Set("Retry-After", strconv.Itoa(h.retryAfter()))
	writeError(w, http.StatusServiceUnavailable, "overloaded",
		"the server is busy admitting other agents; retry after the Retry-After delay")
}
