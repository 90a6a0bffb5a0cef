package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// MaxPayloadBytes is the largest payload Publish accepts: PostgreSQL's
// NOTIFY refuses payloads of 8000 bytes or more.
const MaxPayloadBytes = 7999

// maxTopicLen keeps a topic a valid unquoted-length PostgreSQL identifier.
const maxTopicLen = 63

// DefaultQueueSize bounds each subscription's pending notifications.
const DefaultQueueSize = 1024

// Sentinel errors.
var (
	// ErrInvalidTopic: a topic must be 1..63 characters of [a-z0-9_].
	ErrInvalidTopic = errors.New("invalid notification topic")
	// ErrPayloadTooLarge: the payload exceeds MaxPayloadBytes.
	ErrPayloadTooLarge = errors.New("notification payload too large")
	// ErrStarted: Subscribe after Run began, or Run called twice.
	ErrStarted = errors.New("notification bus already running")
	// ErrNotRunning: Publish on a bus whose Run has returned.
	ErrNotRunning = errors.New("notification bus not running")
)

// Handler receives one notification's payload. A nil payload means
// notifications of the topic may have been lost since the last call.
type Handler func(payload []byte)

// Bus is a publish/subscribe channel between the replicas of a cluster.
type Bus interface {
	// Publish sends payload to every subscriber of topic on every
	// replica, this one included. It never waits for handlers.
	Publish(ctx context.Context, topic string, payload []byte) error
	// Subscribe registers fn for topic; call it before Run.
	Subscribe(topic string, fn Handler) error
	// Run delivers notifications until ctx ends.
	Run(ctx context.Context) error
}

// CheckTopic reports whether topic can name a notification channel.
func CheckTopic(topic string) error {
	if topic == "" || len(topic) > maxTopicLen {
		return fmt.Errorf("%w: %q must be 1..%d characters", ErrInvalidTopic, topic, maxTopicLen)
	}
	for _, r := range topic {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return fmt.Errorf("%w: %q may hold only a-z, 0-9 and _", ErrInvalidTopic, topic)
		}
	}
	return nil
}

func checkPublish(topic string, payload []byte) error {
	if err := CheckTopic(topic); err != nil {
		return err
	}
	if len(payload) > MaxPayloadBytes {
		return fmt.Errorf("%w: %d bytes on %s (max %d)", ErrPayloadTooLarge, len(payload), topic, MaxPayloadBytes)
	}
	return nil
}

// subscription is one handler with its bounded queue.
type subscription struct {
	topic string
	fn    Handler
	queue chan []byte
	// lost is set when a notification was dropped or may have been
	// missed; kick wakes the delivery goroutine to report it.
	lost atomic.Bool
	kick chan struct{}
}

func newSubscription(topic string, fn Handler, size int) *subscription {
	return &subscription{topic: topic, fn: fn, queue: make(chan []byte, size), kick: make(chan struct{}, 1)}
}

// offer queues payload without blocking; a full queue turns into a gap.
func (s *subscription) offer(payload []byte) bool {
	select {
	case s.queue <- payload:
		return true
	default:
		s.gap()
		return false
	}
}

// gap records that notifications may have been missed.
func (s *subscription) gap() {
	s.lost.Store(true)
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run calls the handler for each queued payload until ctx ends,
// reporting a gap (nil payload) before the payloads that follow it.
func (s *subscription) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
			if s.lost.Swap(false) {
				s.fn(nil)
			}
		case p := <-s.queue:
			if s.lost.Swap(false) {
				s.fn(nil)
			}
			s.fn(p)
		}
	}
}

// registry holds the subscriptions of a bus and starts their goroutines.
type registry struct {
	queueSize int
	log       *slog.Logger

	mu      sync.Mutex // guards the following
	started bool
	byTopic map[string][]*subscription
}

func (r *registry) subscribe(topic string, fn Handler) error {
	if err := CheckTopic(topic); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("subscribing to %s: nil handler", topic)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return fmt.Errorf("subscribing to %s: %w", topic, ErrStarted)
	}
	if r.byTopic == nil {
		r.byTopic = make(map[string][]*subscription)
	}
	r.byTopic[topic] = append(r.byTopic[topic], newSubscription(topic, fn, r.queueSize))
	return nil
}

// start freezes the subscriptions and returns them by topic.
func (r *registry) start() (map[string][]*subscription, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return nil, ErrStarted
	}
	r.started = true
	return r.byTopic, nil
}

// subs returns the subscriptions of topic.
func (r *registry) subs(topic string) []*subscription {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byTopic[topic]
}

// deliver hands payload to every subscription of topic without blocking.
func (r *registry) deliver(topic string, payload []byte) {
	for _, s := range r.subs(topic) {
		if !s.offer(payload) {
			r.log.Warn("notification queue full; subscriber will resynchronise", "topic", topic)
		}
	}
}

// gapAll tells every subscription that notifications may have been lost.
func (r *registry) gapAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, subs := range r.byTopic {
		for _, s := range subs {
			s.gap()
		}
	}
}

// runAll runs every subscription's delivery goroutine until ctx ends.
func runAll(ctx context.Context, byTopic map[string][]*subscription, wg *sync.WaitGroup) {
	for _, subs := range byTopic {
		for _, s := range subs {
			wg.Go(func() { s.run(ctx) })
		}
	}
}
