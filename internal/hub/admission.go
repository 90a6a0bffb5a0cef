package hub

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/pki"
)

// Admission control. Every connection holds a slot of h.admit from its
// request until its hello has been processed, so a reconnect storm is
// served at the rate the machine can sustain instead of every agent
// competing for the CPU at once and timing out. A request that finds no
// slot within AdmissionWait is refused with 503 and a jittered
// Retry-After, which spreads the retries of a fleet over time.
//
// Before it may take a global slot, a connection takes a place among its
// source address's (an IPv6 /64) and its agent identity's handshakes,
// both capped well below the global limit: otherwise one agent
// certificate (or one host holding a few) could hold every slot with
// upgrades that never send their hello, and every other tenant's agents
// would be refused until the hello timeout — again and again. A
// connection over its cap waits like any other, then is refused with 429
// and Retry-After; it never holds a global slot while it waits.

// Default per-source caps of admission control.
const (
	// DefaultHandshakesPerAgent: an agent has one session; a second
	// handshake at once is its retry after a dead connection, a third is
	// no agent's behaviour.
	DefaultHandshakesPerAgent = 2
	// defaultAddressShare: one source address may hold at most this
	// fraction (1/n) of the global handshake slots — enough for a NAT in
	// front of a fleet to keep admitting agents at full speed (a
	// handshake lasts milliseconds), not enough to starve the others.
	defaultAddressShare = 4
)

// admission is what one handshake holds until its hello is processed.
type admission struct {
	addr   netip.Prefix // invalid when not held
	agent  uuid.UUID    // uuid.Nil when not held
	global bool
}

// admitHandshake takes, in order, a place for r's source address, one for its
// agent identity (when its certificate names one; a request without one
// is refused right after) and a global slot, waiting up to AdmissionWait
// in all. On refusal it has answered r and holds nothing.
func (h *Hub) admitHandshake(w http.ResponseWriter, r *http.Request) (admission, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.AdmissionWait)
	defer cancel()
	defer context.AfterFunc(h.stopCtx, cancel)()

	var a admission
	if p, ok := sourcePrefix(r.RemoteAddr); ok {
		if !h.perAddr.acquire(ctx, p) {
			h.refuseBusy(w, r, refuseAddressBusy, "too many connections from this address are in their handshake")
			return admission{}, false
		}
		a.addr = p
	}
	if id, ok := certAgent(r); ok {
		if !h.perAgent.acquire(ctx, id) {
			h.release(a)
			h.refuseBusy(w, r, refuseAgentBusy, "this agent already has connections in their handshake")
			return admission{}, false
		}
		a.agent = id
	}
	select {
	case h.admit <- struct{}{}:
		a.global = true
		return a, true
	case <-ctx.Done():
	}
	h.release(a)
	h.refuseOverload(w, r)
	return admission{}, false
}

// release gives back what a handshake held.
func (h *Hub) release(a admission) {
	if a.global {
		<-h.admit
	}
	if a.agent != uuid.Nil {
		h.perAgent.release(a.agent)
	}
	if a.addr.IsValid() {
		h.perAddr.release(a.addr)
	}
}

// sourcePrefix is the unit of the per-address cap: the address itself for
// IPv4, its /64 for IPv6 (what one host is usually given).
func sourcePrefix(remote string) (netip.Prefix, bool) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Prefix{}, false
	}
	addr := ap.Addr().Unmap()
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, err := addr.Prefix(bits)
	return p, err == nil
}

// certAgent is the agent a verified client certificate names, if any.
func certAgent(r *http.Request) (uuid.UUID, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return uuid.Nil, false
	}
	id, err := pki.IdentityFromCert(r.TLS.VerifiedChains[0][0])
	if err != nil {
		return uuid.Nil, false
	}
	return id.AgentID, true
}

// keyedLimit is a counting semaphore per key, with an entry only while a
// key has holders or waiters.
type keyedLimit[K comparable] struct {
	limit int
	mu    sync.Mutex // guards m
	m     map[K]*keyedSem
}

type keyedSem struct {
	ch   chan struct{}
	refs int // holders and waiters
}

func newKeyedLimit[K comparable](limit int) *keyedLimit[K] {
	return &keyedLimit[K]{limit: limit, m: make(map[K]*keyedSem)}
}

// acquire takes a place for k, waiting until ctx ends.
func (l *keyedLimit[K]) acquire(ctx context.Context, k K) bool {
	l.mu.Lock()
	s := l.m[k]
	if s == nil {
		s = &keyedSem{ch: make(chan struct{}, l.limit)}
		l.m[k] = s
	}
	s.refs++
	l.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
		return true
	case <-ctx.Done():
	}
	l.drop(k, s)
	return false
}

// release gives back a place acquire took for k.
func (l *keyedLimit[K]) release(k K) {
	l.mu.Lock()
	s := l.m[k]
	l.mu.Unlock()
	<-s.ch
	l.drop(k, s)
}

func (l *keyedLimit[K]) drop(k K, s *keyedSem) {
	l.mu.Lock()
	s.refs--
	if s.refs == 0 {
		delete(l.m, k)
	}
	l.mu.Unlock()
}

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

// refuseBusy answers a request over its address's or agent's cap.
func (h *Hub) refuseBusy(w http.ResponseWriter, r *http.Request, reason, what string) {
	h.metrics.refused(reason)
	h.log.Info("refusing agent connection: "+what, logKeyRemote, r.RemoteAddr, logKeyReason, reason)
	w.Header().Set("Retry-After", strconv.Itoa(h.retryAfter()))
	writeError(w, http.StatusTooManyRequests, "too_many_handshakes", what+"; retry after the Retry-After delay")
}
