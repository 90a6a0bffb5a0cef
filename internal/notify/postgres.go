package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kubedoio/n-kudo/internal/backoff"
)

// Reconnect bounds of the LISTEN connection: a database restart is
// noticed and recovered from within seconds, and a long outage settles
// at one attempt every few seconds per replica.
const (
	reconnectBase = 100 * time.Millisecond
	reconnectMax  = 5 * time.Second
	// publishConns is the size of the publishing pool: pg_notify is a
	// short statement, and publishers are few (plan creation, revoke,
	// log flushes, event relay).
	publishConns = 4
)

// PostgresOptions configure a Postgres bus. URL is required.
type PostgresOptions struct {
	// URL is the database URL, the one the store uses.
	URL string
	// QueueSize bounds each subscription's queue; DefaultQueueSize when 0.
	QueueSize int
	Logger    *slog.Logger
}

// Postgres is a Bus over PostgreSQL LISTEN/NOTIFY, shared by every
// replica on the same database.
type Postgres struct {
	url     string
	poolCfg *pgxpool.Config
	log     *slog.Logger
	reg     registry
	// pool publishes; it exists while Run runs, so a bus that never ran
	// holds no connection nor goroutine.
	pool atomic.Pointer[pgxpool.Pool]

	// listening is closed once the first LISTEN round succeeded.
	listening chan struct{}
	readyOnce sync.Once
	// connects counts successful LISTEN rounds (tests observe reconnects).
	connects atomic.Int64
}

var _ Bus = (*Postgres)(nil)

// NewPostgres builds a Postgres bus; Run opens its connections, so it
// fails only on a malformed URL.
func NewPostgres(opts PostgresOptions) (*Postgres, error) {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("parsing database url for the notification bus: %w", err)
	}
	cfg.MaxConns = publishConns
	cfg.MinConns = 0
	return &Postgres{
		url:       opts.URL,
		poolCfg:   cfg,
		log:       opts.Logger,
		reg:       registry{queueSize: opts.QueueSize, log: opts.Logger},
		listening: make(chan struct{}),
	}, nil
}

// Subscribe registers fn for topic. It fails once Run has started.
func (p *Postgres) Subscribe(topic string, fn Handler) error {
	return p.reg.subscribe(topic, fn)
}

// Publish sends payload with pg_notify, which reaches every replica
// LISTENing on topic once the publishing transaction commits. It fails
// with ErrNotRunning outside Run.
func (p *Postgres) Publish(ctx context.Context, topic string, payload []byte) error {
	if err := checkPublish(topic, payload); err != nil {
		return fmt.Errorf("publishing on %s: %w", topic, err)
	}
	pool := p.pool.Load()
	if pool == nil {
		return fmt.Errorf("publishing on %s: %w", topic, ErrNotRunning)
	}
	if _, err := pool.Exec(ctx, "SELECT pg_notify($1, $2)", topic, string(payload)); err != nil {
		return fmt.Errorf("publishing on %s: %w", topic, err)
	}
	return nil
}

// Listening is closed once the bus first LISTENs on every topic; a
// notification published after that reaches this replica.
func (p *Postgres) Listening() <-chan struct{} { return p.listening }

// Connects returns how many times the LISTEN connection was established.
func (p *Postgres) Connects() int64 { return p.connects.Load() }

// Run LISTENs until ctx ends, re-connecting with backoff when the
// connection drops. After a reconnect every handler receives a gap (nil
// payload): what was published meanwhile is lost.
func (p *Postgres) Run(ctx context.Context) error {
	byTopic, err := p.reg.start()
	if err != nil {
		return fmt.Errorf("running postgres bus: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, p.poolCfg)
	if err != nil {
		return fmt.Errorf("creating notification publish pool: %w", err)
	}
	p.pool.Store(pool)
	defer func() {
		p.pool.Store(nil)
		pool.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	runAll(ctx, byTopic, &wg)

	topics := make([]string, 0, len(byTopic))
	for t := range byTopic {
		topics = append(topics, t)
	}
	if len(topics) == 0 {
		p.readyOnce.Do(func() { close(p.listening) })
		<-ctx.Done()
		return nil
	}
	bo := backoff.Backoff{Base: reconnectBase, Max: reconnectMax}
	for {
		before := p.connects.Load()
		err := p.listen(ctx, topics)
		if ctx.Err() != nil {
			return nil
		}
		if p.connects.Load() > before {
			// The connection had been up: retry quickly again.
			bo.Reset()
		}
		p.log.Warn("notification connection lost; reconnecting", "err", err)
		if bo.Wait(ctx) != nil {
			return nil
		}
	}
}

// listen runs one connection: LISTEN on every topic, then hand each
// notification to its subscribers until the connection fails.
func (p *Postgres) listen(ctx context.Context, topics []string) error {
	conn, err := pgx.Connect(ctx, p.url)
	if err != nil {
		return fmt.Errorf("connecting the listener: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	for _, t := range topics {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{t}.Sanitize()); err != nil {
			return fmt.Errorf("listening on %s: %w", t, err)
		}
	}
	if p.connects.Add(1) > 1 {
		// Whatever was published while no connection listened is lost.
		p.reg.gapAll()
	}
	p.readyOnce.Do(func() { close(p.listening) })
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return fmt.Errorf("waiting for notifications: %w", err)
		}
		p.reg.deliver(n.Channel, []byte(n.Payload))
	}
}
