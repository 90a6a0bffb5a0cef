package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// dispatchWorkers bounds the concurrent plan API calls.
const dispatchWorkers = 16

// dispatch creates plans at DispatchRate for Duration and measures API
// call returned → agent holds the plan.
func (r *runner) dispatch(ctx context.Context) error {
	targets := r.cfg.DispatchAgents
	if err := r.ensureVMs(ctx, targets); err != nil {
		return err
	}
	total := int(float64(r.cfg.DispatchRate) * r.cfg.Duration.Seconds())
	jobs := make(chan int, dispatchWorkers)
	var created, failed, limited, skipped atomic.Int64
	var mu sync.Mutex // guards ids and firstErr
	var ids []uuid.UUID
	var firstErr error
	var wg sync.WaitGroup
	for range dispatchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				p, sent, at, err := r.createPlan(ctx, k%targets, k)
				if err != nil {
					if statusOf(err) == http.StatusTooManyRequests {
						limited.Add(1)
					}
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				r.fleet.tracker.created(p.ID, sent, at)
				created.Add(1)
				mu.Lock()
				ids = append(ids, p.ID)
				mu.Unlock()
			}
		}()
	}
	// Open loop: a plan every 1/rate whatever the answers, so a slow
	// server shows as latency rather than as a lower offered rate.
	tick := time.NewTicker(time.Second / time.Duration(r.cfg.DispatchRate))
	start := time.Now()
	for k := 0; k < total && ctx.Err() == nil; k++ {
		select {
		case jobs <- k:
		default:
			skipped.Add(1)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	// Plans still in flight get 10 s to arrive; the rest count as lost.
	_ = waitFor(ctx, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if !r.fleet.tracker.isHeld(id) {
				return false
			}
		}
		return true
	})
	lat, fromSend, early := r.fleet.tracker.snapshot()
	res := &DispatchResult{
		Offered: total, Created: created.Load(), Failed: failed.Load(), RateLimited: limited.Load(),
		SkippedClientBehind: skipped.Load(), Held: int64(len(lat)), HeldBeforeReturn: early,
		Targets: targets, PlansPerSecond: float64(created.Load()) / elapsed.Seconds(),
		P50ms: ms(percentile(lat, 50)), P99ms: ms(percentile(lat, 99)), Maxms: ms(percentile(lat, 100)),
		SentP50ms: ms(percentile(fromSend, 50)), SentP99ms: ms(percentile(fromSend, 99)), SentMaxms: ms(percentile(fromSend, 100)),
	}
	res.Lost = res.Created - res.Held
	if firstErr != nil {
		res.FirstError = firstErr.Error()
	}
	r.report.Dispatch = res
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// logWindow is the batches a log sender keeps in flight.
const logWindow = 2

// logs has LogAgents agents write batches of LogBatchLines lines for the
// execution of a plan created for each, and counts acknowledged lines.
func (r *runner) logs(ctx context.Context) error {
	n := r.cfg.LogAgents
	if err := r.ensureVMs(ctx, n); err != nil {
		return err
	}
	agents := r.fleet.agents[:n]
	for _, a := range agents {
		a.plans = make(chan agentproto.Plan, 4)
		a.logAcks = make(chan agentproto.LogAck, 16)
		a.logMode.Store(true)
	}
	defer func() {
		for _, a := range agents {
			a.logMode.Store(false)
		}
	}()
	plans := make([]agentproto.Plan, n)
	for i, a := range agents {
		p, _, _, err := r.createPlan(ctx, i, i)
		if err != nil {
			return fmt.Errorf("creating plan for log agent %d: %w", i, err)
		}
		got, err := awaitPlan(ctx, a, p.ID)
		if err != nil {
			return fmt.Errorf("waiting for plan %s on log agent %d: %w", p.ID, i, err)
		}
		plans[i] = got
	}
	var acked, sent, stalls atomic.Int64
	var lastAck atomic.Int64
	start := time.Now()
	deadline := start.Add(r.cfg.Duration)
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := r.sendLogs(ctx, a, plans[i].Actions[0].ExecutionID, deadline)
			acked.Add(s.acked)
			sent.Add(s.sent)
			stalls.Add(s.stalls)
			for {
				prev := lastAck.Load()
				if s.lastAck <= prev || lastAck.CompareAndSwap(prev, s.lastAck) {
					break
				}
			}
		}()
	}
	wg.Wait()
	end := time.Unix(0, lastAck.Load())
	if lastAck.Load() == 0 {
		end = time.Now()
	}
	for i, a := range agents {
		a.logMode.Store(false)
		r.fleet.complete(ctx, a, plans[i])
	}
	secs := end.Sub(start).Seconds()
	r.report.Logs = &LogsResult{
		Agents: n, BatchLines: r.cfg.LogBatchLines, LinesSent: sent.Load(), LinesAcked: acked.Load(),
		Seconds: secs, AckedPerSecond: float64(acked.Load()) / secs, AckStalls: stalls.Load(),
	}
	return nil
}

func awaitPlan(ctx context.Context, a *simAgent, id uuid.UUID) (agentproto.Plan, error) {
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case p := <-a.plans:
			if p.PlanID == id {
				return p, nil
			}
		case <-t.C:
			return agentproto.Plan{}, errTimeout
		case <-ctx.Done():
			return agentproto.Plan{}, ctx.Err()
		}
	}
}

type logSendStats struct {
	sent, acked, stalls int64
	lastAck             int64 // unix nanos
}

// execTag names an execution in a load line with the random last 8
// characters of its id: the first ones of a UUIDv7 are its creation time,
// the same for every execution of a run. Eight keep the line's size.
func execTag(exec uuid.UUID) string {
	s := exec.String()
	return s[len(s)-8:]
}

// sendLogs writes batches for exec until deadline with logWindow batches
// in flight, then waits for the last ack.
func (r *runner) sendLogs(ctx context.Context, a *simAgent, exec uuid.UUID, deadline time.Time) logSendStats {
	var st logSendStats
	size := r.cfg.LogBatchLines
	lines := make([]agentproto.LogLine, size)
	pad := strings.Repeat("x", 48)
	var next, ackedSeq int64 // next seq to send; highest acked seq
	for {
		now := time.Now()
		if now.Before(deadline) && next/int64(size)-ackedSeq/int64(size) < logWindow {
			at := now.UTC()
			for j := range lines {
				next++
				lines[j] = agentproto.LogLine{Seq: next, At: at, Stream: agentproto.StreamStdout,
					Message: fmt.Sprintf("load line %d of %s %s", next, execTag(exec), pad)}
			}
			if err := a.send(ctx, "", agentproto.LogBatch{ExecutionID: exec, Lines: lines}); err != nil {
				r.fleet.stats.sendErrors.Add(1)
				return st
			}
			st.sent += int64(size)
			continue
		}
		if ackedSeq >= next {
			return st
		}
		select {
		case ack := <-a.logAcks:
			if ack.ExecutionID == exec && ack.Seq > ackedSeq {
				st.acked += ack.Seq - ackedSeq
				ackedSeq = ack.Seq
				st.lastAck = time.Now().UnixNano()
			}
		case <-time.After(r.cfg.LogAckTimeout):
			st.stalls++
			return st
		case <-ctx.Done():
			return st
		}
	}
}

// reconnect waits for the server to restart (running Restart when set)
// and measures how long the whole fleet takes to be back.
func (r *runner) reconnect(ctx context.Context) error {
	n := r.cfg.Agents
	base := make([]int64, n)
	for i, a := range r.fleet.agents {
		base[i] = a.hellos.Load()
	}
	t0 := time.Now()
	restartErr := make(chan error, 1)
	if r.cfg.Restart != nil {
		go func() { restartErr <- r.cfg.Restart(ctx) }()
	} else {
		r.log.Info("waiting for the server to be restarted", "timeout", r.cfg.RestartTimeout)
		restartErr <- nil
		if err := waitFor(ctx, r.cfg.RestartTimeout, func() bool { return r.fleet.stats.connected.Load() < int64(n) }); err != nil {
			return fmt.Errorf("waiting for the server restart: no session dropped within %s", r.cfg.RestartTimeout)
		}
		t0 = time.Now()
	}
	back := func() bool {
		for i, a := range r.fleet.agents {
			if a.hellos.Load() <= base[i] && !a.stopped.Load() {
				return false
			}
		}
		return true
	}
	waitErr := waitFor(ctx, r.cfg.RestartTimeout, back)
	if err := <-restartErr; err != nil {
		return fmt.Errorf("restarting the server: %w", err)
	}
	var firstDown, lastBack int64
	backCount := 0
	for i, a := range r.fleet.agents {
		if d := a.lastDown.Load(); d >= t0.UnixNano() && (firstDown == 0 || d < firstDown) {
			firstDown = d
		}
		if a.hellos.Load() > base[i] {
			backCount++
			lastBack = max(lastBack, a.lastHello.Load())
		}
	}
	stopped := 0
	for _, a := range r.fleet.agents {
		if a.stopped.Load() {
			stopped++
		}
	}
	res := &ReconnectResult{Agents: n, Back: backCount, Stopped: stopped, AllBack: waitErr == nil && backCount == n,
		SecondsSinceRestart: -1, SecondsSinceFirstDrop: -1}
	if lastBack > 0 {
		res.SecondsSinceRestart = time.Duration(lastBack - t0.UnixNano()).Seconds()
		if firstDown > 0 {
			res.SecondsSinceFirstDrop = time.Duration(lastBack - firstDown).Seconds()
		}
	}
	r.report.Reconnect = res
	return nil
}
