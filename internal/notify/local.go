package notify

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// Local is the Bus of a single replica: notifications never leave the
// process. Publish before Run is queued (up to the queue size) and
// delivered once Run starts.
type Local struct {
	reg  registry
	done atomic.Bool
	// listening is closed when Run starts delivering.
	listening chan struct{}
}

var _ Bus = (*Local)(nil)

// LocalOptions tune a Local bus; zero fields take defaults.
type LocalOptions struct {
	// QueueSize bounds each subscription's queue; DefaultQueueSize when 0.
	QueueSize int
	Logger    *slog.Logger
}

// NewLocal returns an in-process bus.
func NewLocal(opts LocalOptions) *Local {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Local{reg: registry{queueSize: opts.QueueSize, log: opts.Logger}, listening: make(chan struct{})}
}

// Subscribe registers fn for topic. It fails once Run has started.
func (l *Local) Subscribe(topic string, fn Handler) error {
	return l.reg.subscribe(topic, fn)
}

// Publish queues payload for the topic's subscribers. It never blocks: a
// full queue becomes a gap for that subscriber.
func (l *Local) Publish(_ context.Context, topic string, payload []byte) error {
	if err := checkPublish(topic, payload); err != nil {
		return fmt.Errorf("publishing on %s: %w", topic, err)
	}
	if l.done.Load() {
		return fmt.Errorf("publishing on %s: %w", topic, ErrNotRunning)
	}
	l.reg.deliver(topic, payload)
	return nil
}

// Listening is closed once Run delivers notifications.
func (l *Local) Listening() <-chan struct{} { return l.listening }

// Run delivers notifications until ctx ends.
func (l *Local) Run(ctx context.Context) error {
	byTopic, err := l.reg.start()
	if err != nil {
		return fmt.Errorf("running local bus: %w", err)
	}
	var wg sync.WaitGroup
	runAll(ctx, byTopic, &wg)
	close(l.listening)
	<-ctx.Done()
	l.done.Store(true)
	wg.Wait()
	return nil
}
