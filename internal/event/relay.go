package event

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/notify"
	"github.com/kubedoio/n-kudo/internal/store"
)

// TopicEvents is the notify topic on which replicas exchange their
// brokers' events.
const TopicEvents = "events"

// Relay tuning.
const (
	// relayQueue bounds the local events waiting to be announced: about a
	// second of a 10,000-agent fleet's heartbeats. When it is full the
	// other replicas are told they lost events (their clients resync).
	relayQueue = 16384
	// relayDelay is the longest a local event waits to share a notice
	// with others.
	relayDelay = 10 * time.Millisecond
	// relayPayloadBytes is the size a notice is flushed at, below
	// notify.MaxPayloadBytes with room for one more item.
	relayPayloadBytes = 6000
	// inlinePatchBytes is the largest host patch carried in a notice;
	// a larger one (big facts) is re-read from the store by receivers.
	inlinePatchBytes = 1500
	// relayReadTimeout bounds the read-back of one relayed object.
	relayReadTimeout = 5 * time.Second
)

// relayItem is one event in a notice: its identity, never the object
// (except small host patches, which are the heartbeat hot path and have
// no stored form to re-read).
type relayItem struct {
	Type     string     `json:"t"`
	TenantID uuid.UUID  `json:"n"`
	ID       uuid.UUID  `json:"i"`
	At       time.Time  `json:"a"`
	Patch    *HostPatch `json:"p,omitempty"`
}

// relayNotice is one payload on TopicEvents.
type relayNotice struct {
	Origin uuid.UUID `json:"o"`
	// Lost says the origin dropped events it could not announce.
	Lost  bool        `json:"l,omitempty"`
	Items []relayItem `json:"e,omitempty"`
}

// Relay makes a broker's stream cover every replica: it announces the
// broker's local events on a notify.Bus (as ids), and publishes into the
// broker the events other replicas announce, re-read from the shared
// store. Each broker numbers events itself, so seq values are per
// replica: they start at the replica's start time in microseconds and all
// replicas see the same events, so their ranges stay apart by the time
// between their starts, and a Last-Event-ID from another replica falls
// outside this broker's history and is answered with resync.
type Relay struct {
	broker *Broker
	store  store.Store
	bus    notify.Bus
	log    *slog.Logger
	node   uuid.UUID
	queue  chan Event
	// lost is signalled when queue overflowed; the next notice says so.
	lost chan struct{}
}

// NewRelay links b to the other replicas over bus, reading relayed
// objects from st (the undecorated store: reads only). It subscribes to
// bus, which must not be running yet. Run it for as long as the broker.
func NewRelay(b *Broker, st store.Store, bus notify.Bus, log *slog.Logger) (*Relay, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Relay{
		broker: b, store: st, bus: bus, log: log, node: uuid.New(),
		queue: make(chan Event, relayQueue), lost: make(chan struct{}, 1),
	}
	if err := bus.Subscribe(TopicEvents, r.receive); err != nil {
		return nil, fmt.Errorf("subscribing event relay: %w", err)
	}
	b.setTap(r.offer)
	return r, nil
}

// offer queues a local event for announcement; it runs under the
// broker's lock and never blocks.
func (r *Relay) offer(e Event) {
	select {
	case r.queue <- e:
	default:
		select {
		case r.lost <- struct{}{}:
		default:
		}
	}
}

// Run announces local events until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		items []relayItem
		size  int
		lost  bool
	)
	flush := func() {
		if len(items) == 0 && !lost {
			return
		}
		r.announce(ctx, relayNotice{Origin: r.node, Lost: lost, Items: items})
		items, size, lost = items[:0], 0, false
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.lost:
			lost = true
			flush()
		case e := <-r.queue:
			it, n := r.item(e)
			if size+n > relayPayloadBytes {
				flush()
			}
			if len(items) == 0 {
				timer.Reset(relayDelay)
			}
			items = append(items, it)
			size += n
		case <-timer.C:
			flush()
		}
	}
}

// item turns an event into a notice item and its encoded size.
func (r *Relay) item(e Event) (relayItem, int) {
	it := relayItem{Type: e.Type, TenantID: e.TenantID, ID: e.ID, At: e.At}
	if p, ok := e.Object.(HostPatch); ok {
		it.Patch = &p
	}
	b, err := json.Marshal(it)
	if err == nil && len(b) <= inlinePatchBytes {
		return it, len(b) + 1
	}
	it.Patch = nil
	b, _ = json.Marshal(it)
	return it, len(b) + 1
}

func (r *Relay) announce(ctx context.Context, n relayNotice) {
	payload, err := json.Marshal(n)
	if err != nil {
		r.log.Error("encoding event notice", "err", err)
		return
	}
	if err := r.bus.Publish(ctx, TopicEvents, payload); err != nil && ctx.Err() == nil {
		// The other replicas will not see these events: tell them with
		// the next notice, so their clients resync.
		r.log.Warn("announcing events to other replicas", "count", len(n.Items), "err", err)
		r.offerLost()
	}
}

func (r *Relay) offerLost() {
	select {
	case r.lost <- struct{}{}:
	default:
	}
}

// receive publishes another replica's events into the broker. A gap on
// the bus, or an origin that lost events, makes every client resync.
func (r *Relay) receive(payload []byte) {
	if payload == nil {
		r.broker.Gap()
		return
	}
	var n relayNotice
	if err := json.Unmarshal(payload, &n); err != nil {
		r.log.Warn("ignoring malformed event notice", "err", err)
		return
	}
	if n.Origin == r.node {
		return
	}
	if n.Lost {
		r.broker.Gap()
	}
	for _, it := range n.Items {
		obj, err := r.object(it)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				r.log.Warn("reading an object changed on another replica", "type", it.Type, "id", it.ID, "err", err)
			}
			continue
		}
		r.broker.publish(Event{Type: it.Type, TenantID: it.TenantID, ID: it.ID, At: it.At, Object: obj}, false)
	}
}

// object returns what the origin's broker published for it: the small
// patch it carried, or the object read back from the store.
func (r *Relay) object(it relayItem) (any, error) {
	if it.Patch != nil {
		return *it.Patch, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), relayReadTimeout)
	defer cancel()
	switch it.Type {
	case TypeHostUpdated:
		return r.store.GetHost(ctx, it.TenantID, it.ID)
	case TypeAgentUpdated:
		return r.store.GetAgent(ctx, it.ID)
	case TypeVMUpdated, TypeVMDeleted:
		return r.store.GetVM(ctx, it.TenantID, it.ID)
	case TypePlanUpdated:
		return r.store.GetPlan(ctx, it.TenantID, it.ID)
	case TypeSiteUpdated:
		return r.store.GetSite(ctx, it.TenantID, it.ID)
	case TypeSiteDeleted:
		return store.Site{ID: it.ID, TenantID: it.TenantID}, nil
	}
	return nil, fmt.Errorf("relaying event type %q: unknown type", it.Type)
}
