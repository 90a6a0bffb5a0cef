package event

import (
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Event types, as sent in the "event:" field of the stream and the "type"
// field of its data.
const (
	TypeHostUpdated  = "host.updated"
	TypeAgentUpdated = "agent.updated"
	TypeVMUpdated    = "vm.updated"
	TypeVMDeleted    = "vm.deleted"
	TypePlanUpdated  = "plan.updated"
	TypeSiteUpdated  = "site.updated"
	TypeSiteDeleted  = "site.deleted"
	// TypeResync is never published: a stream sends it when it cannot
	// deliver every event after the point the client asked for.
	TypeResync = "resync"
)

// Defaults applied by NewBroker to zero Options fields.
const (
	// DefaultHistory is how many recent events are kept for resuming
	// clients: at 10,000 heartbeats a second it covers about a second of
	// a busy fleet, and minutes of a quiet one.
	DefaultHistory = 10000
	// DefaultSubscriberBuffer bounds the events waiting for one
	// subscriber before it is cut off as lagging.
	DefaultSubscriberBuffer = 1024
)

// Sentinel errors, reported by Subscription.Err once its channel is closed.
var (
	// ErrLagged: the subscriber did not keep up and events were dropped
	// for it. Resubscribe from the last event received.
	ErrLagged = errors.New("event subscriber lagged behind")
	// ErrClosed: the subscription was closed by its owner.
	ErrClosed = errors.New("event subscription closed")
)

// Event is one change of one object. Object is the changed object as the
// store returns it (store.Host, store.Agent, store.VM, store.Plan,
// store.Site) or a HostPatch for the high-rate partial host updates;
// renderers turn it into the API's JSON view when sending. Object is
// shared between subscribers and must be treated as read-only.
type Event struct {
	Seq      uint64
	Type     string
	TenantID uuid.UUID
	ID       uuid.UUID
	At       time.Time
	Object   any
}

// Options tune a Broker; zero fields take defaults.
type Options struct {
	History          int
	SubscriberBuffer int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Broker fans events out to per-tenant subscribers and keeps recent ones
// for resuming. Publish never blocks on a subscriber. The zero value is
// not usable; build one with NewBroker.
type Broker struct {
	now    func() time.Time
	bufLen int

	mu sync.Mutex // guards the following
	// seq is the sequence number of the last published event (the start
	// value when none was published yet).
	seq uint64
	// ring holds the last count events; next is where the next one goes.
	ring  []Event
	next  int
	count int
	subs  map[uuid.UUID]map[*Subscription]struct{}
	// floor is the head when events were last lost (see Gap): a client
	// resuming at or before it must resync.
	floor uint64
	// tap, when set, receives every locally originated event (a Relay
	// forwarding them to other replicas). It must not block.
	tap func(Event)
}

// NewBroker returns a broker whose sequence starts at the current time in
// microseconds (see the package doc).
func NewBroker(opts Options) *Broker {
	if opts.History <= 0 {
		opts.History = DefaultHistory
	}
	if opts.SubscriberBuffer <= 0 {
		opts.SubscriberBuffer = DefaultSubscriberBuffer
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	start := opts.Now().UnixMicro()
	if start < 0 {
		start = 0
	}
	return &Broker{
		now:    opts.Now,
		bufLen: opts.SubscriberBuffer,
		seq:    uint64(start),
		ring:   make([]Event, opts.History),
		subs:   make(map[uuid.UUID]map[*Subscription]struct{}),
	}
}

// Head returns the sequence number of the last published event.
func (b *Broker) Head() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq
}

// Publish assigns e the next sequence number, records it for resuming
// clients and hands it to every subscriber of e.TenantID. A subscriber
// whose buffer is full is cut off (ErrLagged) instead of being waited
// for, so Publish costs O(subscribers of the tenant) and never blocks.
// A zero At is set to the broker's clock. It returns the event as
// published.
func (b *Broker) Publish(e Event) Event {
	return b.publish(e, true)
}

// publish is Publish; local says whether the event originated on this
// replica (and goes to the tap) or was relayed from another.
func (b *Broker) publish(e Event, local bool) Event {
	if e.At.IsZero() {
		e.At = b.now()
	}
	e.At = e.At.UTC()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	e.Seq = b.seq
	b.ring[b.next] = e
	b.next = (b.next + 1) % len(b.ring)
	if b.count < len(b.ring) {
		b.count++
	}
	subs := b.subs[e.TenantID]
	for s := range subs {
		select {
		case s.ch <- e:
		default:
			b.dropLocked(s, ErrLagged)
		}
	}
	if local && b.tap != nil {
		b.tap(e)
	}
	return e
}

// setTap installs the receiver of locally originated events.
func (b *Broker) setTap(fn func(Event)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tap = fn
}

// Gap records that events were lost (another replica's changes never
// reached this broker): every subscriber is cut off with ErrLagged, and
// resuming at or before the current head answers resync, so each client
// re-lists instead of silently missing a change.
func (b *Broker) Gap() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.floor = b.seq
	for _, set := range b.subs {
		for s := range set {
			b.dropLocked(s, ErrLagged)
		}
	}
}

// Subscribe starts delivering the events of tenantID published from now
// on. With since > 0 the caller resumes after the event numbered since:
// replay holds that tenant's buffered events after it, in order, unless
// they are no longer all buffered (too old, or numbered by an earlier
// incarnation of the server), in which case resync is true and the caller
// must re-list everything. Registration and the replay happen under one
// lock, so no event is both replayed and delivered, and none is missed.
func (b *Broker) Subscribe(tenantID uuid.UUID, since uint64) (sub *Subscription, replay []Event, resync bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	sub = &Subscription{b: b, tenant: tenantID, ch: make(chan Event, b.bufLen), start: b.seq}
	set := b.subs[tenantID]
	if set == nil {
		set = make(map[*Subscription]struct{})
		b.subs[tenantID] = set
	}
	set[sub] = struct{}{}

	head := b.seq
	switch {
	case since != 0 && since <= b.floor:
		// Events were lost after since.
		return sub, nil, true
	case since == 0 || since == head:
		return sub, nil, false
	case since > head:
		// Not a number this broker handed out.
		return sub, nil, true
	}
	oldest := head - uint64(b.count) + 1
	if b.count == 0 || since+1 < oldest {
		return sub, nil, true
	}
	// Events since+1 … head are buffered; the one numbered s sits
	// head-s slots before the write position.
	for s := since + 1; s <= head; s++ {
		back := int(head - s)
		i := (b.next - 1 - back + 2*len(b.ring)) % len(b.ring)
		if e := b.ring[i]; e.TenantID == tenantID {
			replay = append(replay, e)
		}
	}
	return sub, replay, false
}

// dropLocked ends a subscription with err. b.mu must be held.
func (b *Broker) dropLocked(s *Subscription, err error) {
	if s.err != nil {
		return
	}
	s.err = err
	close(s.ch)
	set := b.subs[s.tenant]
	delete(set, s)
	if len(set) == 0 {
		delete(b.subs, s.tenant)
	}
}

// Subscription is one subscriber's feed of a tenant's events.
type Subscription struct {
	b      *Broker
	tenant uuid.UUID
	ch     chan Event
	start  uint64
	err    error // guarded by b.mu; set when ch is closed
}

// C delivers the events in sequence order. It is closed when the
// subscription ends; Err then says why.
func (s *Subscription) C() <-chan Event { return s.ch }

// Start is the sequence number of the last event published before the
// subscription began: every event delivered on C is numbered after it.
// It is what a resync tells the client to continue from.
func (s *Subscription) Start() uint64 { return s.start }

// Err is nil while the subscription runs, then ErrLagged or ErrClosed.
func (s *Subscription) Err() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.err
}

// Close ends the subscription. It is safe to call more than once and
// after the broker cut the subscriber off.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.dropLocked(s, ErrClosed)
}
