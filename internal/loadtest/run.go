package loadtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/pki"
)

// runner holds the state shared by the scenarios of one run.
type runner struct {
	cfg    Config
	log    *slog.Logger
	api    *apiClient
	probe  *probe
	ts     tenantSetup
	fleet  *fleet
	report *Report
	// vms maps an agent index to the VM its plans target.
	vms map[int]uuid.UUID
}

// Run executes the configured scenarios against a running server and
// returns what they measured. It stops by itself: every scenario is
// bounded by Duration or by its own deadline, and ctx cancels all.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	api, err := newAPIClient(cfg.ServerURL, cfg.CAPEM, cfg.SourceIPs)
	if err != nil {
		return nil, err
	}
	defer api.closeIdle()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cfg.CAPEM)
	r := &runner{
		cfg: cfg, log: log, api: api,
		probe:  &probe{metricsURL: cfg.MetricsURL, pid: cfg.ServerPID, client: &http.Client{Timeout: 10 * time.Second}},
		report: &Report{Date: time.Now().UTC(), Machine: machine(), Agents: cfg.Agents, Heartbeat: cfg.Heartbeat.String(), Duration: cfg.Duration.String(), Scenarios: cfg.Scenarios},
		vms:    make(map[int]uuid.UUID),
	}
	r.fleet = newFleet(&r.cfg, log, pool)
	defer r.probe.client.CloseIdleConnections()

	// The fleet lives until Run returns; its goroutines are waited for.
	fctx, stopFleet := context.WithCancel(ctx)
	defer func() {
		stopFleet()
		r.fleet.wait()
	}()

	if r.ts, err = api.bootstrap(ctx, cfg.AdminKey, cfg.APIKeys); err != nil {
		return nil, fmt.Errorf("bootstrapping tenant: %w", err)
	}
	log.Info("bootstrapped", "tenant", r.ts.tenantID, "site", r.ts.siteID)
	if err := r.enroll(ctx); err != nil {
		return r.done(), err
	}
	if err := r.sessions(ctx, fctx); err != nil {
		return r.done(), err
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{ScenarioHeartbeats, r.heartbeats},
		{ScenarioDispatch, r.dispatch},
		{ScenarioLogs, r.logs},
		{ScenarioReconnect, r.reconnect},
	}
	for _, s := range steps {
		if !cfg.wants(s.name) {
			continue
		}
		log.Info("scenario", "name", s.name)
		if err := s.fn(ctx); err != nil {
			return r.done(), fmt.Errorf("running scenario %s: %w", s.name, err)
		}
	}
	return r.done(), nil
}

func (r *runner) done() *Report {
	r.report.Machine.LoadAfter = loadAvg()
	r.report.Fleet = FleetCounters{
		DialErrors: r.fleet.stats.dialErrors.Load(), HelloFailures: r.fleet.stats.helloFailures.Load(),
		PermanentStops: r.fleet.stats.permanent.Load(), SessionsLost: r.fleet.stats.closes.Load(),
		HeartbeatsSent: r.fleet.stats.heartbeats.Load(), HeartbeatErrors: r.fleet.stats.hbErrors.Load(),
		PlansHeld: r.fleet.stats.plansHeld.Load(), ResultAcks: r.fleet.stats.resultAcks.Load(),
		ErrorFrames: r.fleet.stats.errorFrames.Load(), SendErrors: r.fleet.stats.sendErrors.Load(),
		APIUnsentRetries: r.api.unsentRetries.Load(),
	}
	r.report.Targets = targets(r.report)
	return r.report
}

// enroll creates the fleet's identities through POST /v1/enroll. Keys and
// CSRs are generated before the clock starts: the figure is the server's.
func (r *runner) enroll(ctx context.Context) error {
	n := r.cfg.Agents
	tokens, err := r.api.enrollmentTokens(ctx, r.ts, n)
	if err != nil {
		return err
	}
	keys := make([]*ecdsa.PrivateKey, n)
	csrs := make([]string, n)
	suffix := uuid.NewString()[:8]
	for i := range n {
		if keys[i], err = pki.GenerateKey(); err != nil {
			return fmt.Errorf("generating key %d: %w", i, err)
		}
		csr, err := pki.CreateCSR(keys[i], hostname(suffix, i))
		if err != nil {
			return fmt.Errorf("creating CSR %d: %w", i, err)
		}
		csrs[i] = string(csr)
	}
	agents := make([]*simAgent, n)
	var next, limited, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range min(r.cfg.EnrollConcurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				a, lim, err := r.enrollOne(ctx, i, tokens[i/maxTokenUses], csrs[i], keys[i], suffix)
				limited.Add(int64(lim))
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				agents[i] = a
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	ok := int64(n) - failed.Load()
	res := &EnrollResult{
		Enrolled: ok, Failed: failed.Load(), RateLimited: limited.Load(),
		Seconds: elapsed.Seconds(), PerSecond: float64(ok) / elapsed.Seconds(),
		SourceIPs: max(1, len(r.cfg.SourceIPs)),
	}
	if firstErr != nil {
		res.FirstError = firstErr.Error()
	}
	if r.cfg.wants(ScenarioEnroll) {
		r.report.Enroll = res
	}
	r.log.Info("enrolled", "agents", ok, "failed", failed.Load(), "rate_limited", limited.Load(), "per_second", res.PerSecond)
	if failed.Load() > 0 {
		return fmt.Errorf("enrolling agents: %d of %d failed, first: %w", failed.Load(), n, firstErr)
	}
	for i, a := range agents {
		a.idx = i
		if len(r.cfg.SourceIPs) > 0 {
			a.local = &net.TCPAddr{IP: r.cfg.SourceIPs[i%len(r.cfg.SourceIPs)].AsSlice()}
		}
	}
	r.fleet.agents = agents
	return nil
}

func hostname(suffix string, i int) string { return fmt.Sprintf("load-%s-%05d", suffix, i) }

// maxEnrollAttempts bounds the retries of one enrollment after 429s.
const maxEnrollAttempts = 30

func (r *runner) enrollOne(ctx context.Context, i int, token, csr string, key *ecdsa.PrivateKey, suffix string) (*simAgent, int, error) {
	var out struct {
		AgentID     uuid.UUID `json:"agent_id"`
		HostID      uuid.UUID `json:"host_id"`
		Certificate string    `json:"certificate"`
	}
	limited := 0
	for attempt := 0; ; attempt++ {
		err := r.api.do(ctx, call{method: http.MethodPost, path: "/v1/enroll", slot: i,
			body: map[string]string{"token": token, "csr": csr, "hostname": hostname(suffix, i)},
			want: http.StatusCreated}, &out)
		if err == nil {
			break
		}
		var se *StatusError
		if errors.As(err, &se) && se.Status == http.StatusTooManyRequests && attempt < maxEnrollAttempts {
			limited++
			if sleepCtx(ctx, max(se.RetryAfter, 100*time.Millisecond)) != nil {
				return nil, limited, ctx.Err()
			}
			continue
		}
		return nil, limited, fmt.Errorf("enrolling agent %d: %w", i, err)
	}
	cert, err := pki.KeyPair([]byte(out.Certificate), key)
	if err != nil {
		return nil, limited, fmt.Errorf("enrolling agent %d: %w", i, err)
	}
	return &simAgent{id: out.AgentID, hostID: out.HostID, hostname: hostname(suffix, i), cert: cert}, limited, nil
}

// sessions connects the whole fleet and measures what the server spends
// per session.
func (r *runner) sessions(ctx, fctx context.Context) error {
	before, err := r.settledSample(ctx)
	if err != nil {
		return fmt.Errorf("sampling server before connecting: %w", err)
	}
	start := time.Now()
	r.fleet.start(fctx)
	n := int64(r.cfg.Agents)
	limit := 60*time.Second + time.Duration(n)*10*time.Millisecond
	// Agents the server stopped for good (a permanent close) are not
	// waited for; the report shows how many connected.
	if err := waitFor(ctx, limit, func() bool {
		return r.fleet.stats.connected.Load()+r.fleet.stats.permanent.Load() >= n
	}); err != nil {
		return fmt.Errorf("connecting %d agents: %d connected after %s (dial errors %d, hello failures %d): %w",
			n, r.fleet.stats.connected.Load(), limit, r.fleet.stats.dialErrors.Load(), r.fleet.stats.helloFailures.Load(), err)
	}
	connectTime := time.Since(start)
	if stopped := r.fleet.stats.permanent.Load(); stopped > 0 {
		r.log.Warn("agents stopped for good while connecting", "count", stopped)
	}
	after, err := r.settledSample(ctx)
	if err != nil {
		return fmt.Errorf("sampling server after connecting: %w", err)
	}
	r.log.Info("connected", "agents", n, "seconds", connectTime.Seconds())
	if !r.cfg.wants(ScenarioSessions) {
		return nil
	}
	live := r.fleet.stats.connected.Load()
	n = max(live, 1)
	res := &SessionsResult{
		Connected: live, ConnectSeconds: connectTime.Seconds(),
		HandshakesPerSecond: float64(live) / connectTime.Seconds(),
		RSSPerSessionKiB:    -1, HeapPerSessionKiB: -1, GoroutinesPerSession: -1, ServerSessions: -1,
	}
	if before.rss >= 0 && after.rss >= 0 {
		res.RSSBeforeMiB, res.RSSAfterMiB = before.rss/(1<<20), after.rss/(1<<20)
		res.RSSPerSessionKiB = (after.rss - before.rss) / float64(n) / 1024
	}
	if h0, h1 := before.get(metricHeap), after.get(metricHeap); h0 >= 0 && h1 >= 0 {
		res.HeapPerSessionKiB = (h1 - h0) / float64(n) / 1024
	}
	if g0, g1 := before.get(metricGoroutines), after.get(metricGoroutines); g0 >= 0 && g1 >= 0 {
		res.GoroutinesPerSession = (g1 - g0) / float64(n)
	}
	res.ServerSessions = after.get(metricSessions)
	r.report.Sessions = res
	return nil
}

// settledSample takes three samples a second apart and keeps the lowest
// heap: a single scrape can land just before a GC and count garbage.
func (r *runner) settledSample(ctx context.Context) (sample, error) {
	var best sample
	for i := range 3 {
		if i > 0 {
			if err := sleepCtx(ctx, time.Second); err != nil {
				return best, err
			}
		}
		s, err := r.probe.sample(ctx)
		if err != nil {
			return best, err
		}
		if i == 0 || (s.get(metricHeap) >= 0 && s.get(metricHeap) < best.get(metricHeap)) {
			best = s
		}
	}
	return best, nil
}

// heartbeats raises the fleet's heartbeat rate to HeartbeatRate for
// Duration and reads how many the server received and wrote.
func (r *runner) heartbeats(ctx context.Context) error {
	n := r.cfg.Agents
	iv := time.Duration(float64(time.Second) * float64(n) / float64(r.cfg.HeartbeatRate))
	before, err := r.probe.sample(ctx)
	if err != nil {
		return err
	}
	sent0, err0 := r.fleet.stats.heartbeats.Load(), r.fleet.stats.hbErrors.Load()
	start := time.Now()
	r.fleet.setHeartbeatInterval(iv)
	runErr := sleepCtx(ctx, r.cfg.Duration)
	r.fleet.setHeartbeatInterval(r.cfg.Heartbeat)
	elapsed := time.Since(start)
	if runErr != nil {
		return runErr
	}
	// One flush interval for the last batch to be written.
	if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	after, err := r.probe.sample(ctx)
	if err != nil {
		return err
	}
	secs := elapsed.Seconds()
	res := &HeartbeatsResult{
		TargetPerSecond: r.cfg.HeartbeatRate, PerAgentInterval: iv.String(), Seconds: secs,
		SentPerSecond:     float64(r.fleet.stats.heartbeats.Load()-sent0) / secs,
		SendErrors:        r.fleet.stats.hbErrors.Load() - err0,
		ReceivedPerSecond: -1, RowsFlushedPerSecond: -1, FlushErrors: -1,
	}
	if a, b := before.counter(metricHBReceived), after.counter(metricHBReceived); a >= 0 && b >= 0 {
		res.ReceivedPerSecond = (b - a) / secs
	}
	if a, b := before.get(metricHBFlushed), after.get(metricHBFlushed); a >= 0 && b >= 0 {
		res.RowsFlushedPerSecond = (b - a) / secs
	}
	if a, b := before.counter(metricHBFlushErrors), after.counter(metricHBFlushErrors); a >= 0 && b >= 0 {
		res.FlushErrors = b - a
	}
	res.SessionsAtEnd = r.fleet.stats.connected.Load()
	r.report.Heartbeats = res
	return nil
}

// waitFor polls cond every 50 ms until it holds or limit passes.
func waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return errTimeout
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

var errTimeout = errors.New("timed out")

// ensureVMs gives each of the first n agents one VM, created through
// POST /v1/vms with "start": false; the create plan it makes reaches the
// agent, which completes it like any other.
func (r *runner) ensureVMs(ctx context.Context, n int) error {
	for i := range n {
		if _, ok := r.vms[i]; ok {
			continue
		}
		a := r.fleet.agents[i]
		// The answer is {"vm":{…},"plan":{…}}.
		var created struct {
			VM struct {
				ID uuid.UUID `json:"id"`
			} `json:"vm"`
		}
		err := r.api.do(ctx, call{method: http.MethodPost, path: "/v1/vms", key: r.ts.keys[i%len(r.ts.keys)], slot: i,
			want: http.StatusCreated,
			body: map[string]any{"name": "load-vm-" + a.hostname, "site_id": r.ts.siteID, "host_id": a.hostID,
				"vcpus": 1, "memory_mib": 128, "disk_image": "/var/lib/nkudo/images/load.raw", "start": false}}, &created)
		if st := statusOf(err); st == http.StatusNotFound || st == http.StatusMethodNotAllowed {
			return fmt.Errorf("creating VM for agent %d: %w: %w", i, ErrNoVMRoute, err)
		}
		if err != nil {
			return fmt.Errorf("creating VM for agent %d: %w", i, err)
		}
		if created.VM.ID == uuid.Nil {
			return fmt.Errorf("creating VM for agent %d: the answer names no vm id", i)
		}
		r.vms[i] = created.VM.ID
	}
	return nil
}

// createPlan posts a one-action raw plan for agent i and returns it with
// the moments the call was sent and returned.
func (r *runner) createPlan(ctx context.Context, i, k int) (planView, time.Time, time.Time, error) {
	a := r.fleet.agents[i]
	var p planView
	sent := time.Now()
	err := r.api.do(ctx, call{method: http.MethodPost, path: "/v1/sites/" + r.ts.siteID.String() + "/plans",
		key: r.ts.keys[k%len(r.ts.keys)], slot: k, want: http.StatusCreated,
		body: map[string]any{"host_id": a.hostID, "actions": []map[string]any{{"type": agentproto.ActionMicroVMStart, "vm_id": r.vms[i]}}}}, &p)
	return p, sent, time.Now(), err
}
