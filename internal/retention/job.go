package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubedoio/n-kudo/internal/store"
)

// DefaultBatch is how many rows one delete statement removes: small
// enough that each transaction holds its locks for milliseconds, large
// enough to keep up with 50,000 log lines a second.
const DefaultBatch = 2000

// lockName is the advisory lock that lets one replica at a time delete.
const lockName = "retention"

// Log keys.
const (
	logKeyErr     = "err"
	logKeyKind    = "kind"
	logKeyDeleted = "deleted"
)

// Options configure a Job.
type Options struct {
	Store  store.Maintenance
	Policy Policy
	// Batch is the number of rows per delete; DefaultBatch when zero.
	Batch int
	// Logger is discarded when nil.
	Logger *slog.Logger
	// Registerer receives the metrics; none are registered when nil.
	Registerer prometheus.Registerer
	// Now is time.Now when nil.
	Now func() time.Time
}

// Job deletes expired rows every Policy.Interval. Run owns its goroutine;
// it returns when its context ends.
type Job struct {
	opts    Options
	log     *slog.Logger
	deleted *prometheus.CounterVec
	oldest  *prometheus.GaugeVec
	runs    *prometheus.CounterVec
}

// New checks the options and registers the metrics.
func New(opts Options) (*Job, error) {
	if opts.Store == nil {
		return nil, errors.New("retention job needs a store")
	}
	if opts.Policy.Interval <= 0 {
		return nil, fmt.Errorf("retention interval must be positive (got %s)", opts.Policy.Interval)
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	j := &Job{
		opts: opts,
		log:  log,
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nkudo_retention_deleted_rows_total",
			Help: "Rows deleted by the retention job, by kind (rows deleted with them, such as a plan's log lines, not counted).",
		}, []string{"kind"}),
		oldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nkudo_retention_oldest_row_age_seconds",
			Help: "Age of the oldest row of each kind after the last pass; 0 when there is none.",
		}, []string{"kind"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nkudo_retention_runs_total",
			Help: "Retention passes by result: done, skipped (another replica held the lock) or failed.",
		}, []string{"result"}),
	}
	for _, k := range store.RetentionKinds {
		j.deleted.WithLabelValues(string(k))
		j.oldest.WithLabelValues(string(k))
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{j.deleted, j.oldest, j.runs} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("registering retention metrics: %w", err)
			}
		}
	}
	return j, nil
}

// Run makes a pass at once and then every interval until ctx ends. A
// failed pass is logged and counted; the next one tries again.
func (j *Job) Run(ctx context.Context) error {
	tick := time.NewTicker(j.opts.Policy.Interval)
	defer tick.Stop()
	for {
		if err := j.RunOnce(ctx); err != nil && ctx.Err() == nil {
			j.log.Warn("retention pass failed; retrying at the next interval", logKeyErr, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// RunOnce makes one pass, unless another replica is making one, and then
// refreshes the oldest-row gauges.
func (j *Job) RunOnce(ctx context.Context) error {
	ran, err := j.opts.Store.TryExclusive(ctx, lockName, j.pass)
	switch {
	case err != nil:
		j.runs.WithLabelValues("failed").Inc()
	case ran:
		j.runs.WithLabelValues("done").Inc()
	default:
		j.runs.WithLabelValues("skipped").Inc()
	}
	return errors.Join(err, j.observeOldest(ctx))
}

// pass deletes, kind by kind, every row older than its age, one batch
// per transaction. The cutoffs are fixed at the start, so a pass ends
// even while new rows keep coming.
func (j *Job) pass(ctx context.Context) error {
	now := j.opts.Now()
	var errs []error
	for _, kind := range store.RetentionKinds {
		age := j.age(kind)
		if age <= 0 {
			continue
		}
		total, err := j.deleteOlder(ctx, kind, now.Add(-age))
		if err != nil {
			errs = append(errs, err)
		}
		if total == 0 {
			continue
		}
		j.log.Debug("retention deleted rows", logKeyKind, kind, logKeyDeleted, total)
		if err := j.opts.Store.ReclaimSpace(ctx, kind); err != nil {
			errs = append(errs, fmt.Errorf("retention of %s: %w", kind, err))
		}
	}
	return errors.Join(errs...)
}

func (j *Job) deleteOlder(ctx context.Context, kind store.RetentionKind, cutoff time.Time) (int, error) {
	total := 0
	for {
		n, err := j.opts.Store.DeleteExpired(ctx, kind, cutoff, j.opts.Batch)
		total += n
		j.deleted.WithLabelValues(string(kind)).Add(float64(n))
		if err != nil {
			return total, fmt.Errorf("retention of %s: %w", kind, err)
		}
		if n < j.opts.Batch {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("retention of %s: %w", kind, err)
		}
	}
}

func (j *Job) observeOldest(ctx context.Context) error {
	now := j.opts.Now()
	var errs []error
	for _, kind := range store.RetentionKinds {
		at, ok, err := j.opts.Store.OldestRetained(ctx, kind)
		switch {
		case err != nil:
			errs = append(errs, err)
		case ok:
			j.oldest.WithLabelValues(string(kind)).Set(max(0, now.Sub(at).Seconds()))
		default:
			j.oldest.WithLabelValues(string(kind)).Set(0)
		}
	}
	return errors.Join(errs...)
}

// age is the policy's age for kind.
func (j *Job) age(kind store.RetentionKind) time.Duration {
	p := j.opts.Policy
	switch kind {
	case store.RetainLogs:
		return p.Logs
	case store.RetainAudit:
		return p.Audit
	case store.RetainPlans:
		return p.Plans
	case store.RetainIdempotencyKeys:
		return p.IdempotencyKeys
	case store.RetainRevokedAgents:
		return p.RevokedAgents
	}
	return 0
}
