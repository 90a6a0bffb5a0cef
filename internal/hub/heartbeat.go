package hub

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// hostUpdate is what one hello or heartbeat changes about a host. Facts,
// netbird and VM states are set only when they changed; usage comes with
// every heartbeat.
type hostUpdate struct {
	hostID   uuid.UUID
	agentID  uuid.UUID
	tenantID uuid.UUID
	seen     time.Time
	facts    json.RawMessage
	netbird  json.RawMessage
	usage    json.RawMessage
	vms      []store.VMStateReport
	hasVMs   bool
}

// merge folds a newer update of the same host into u: the newer wins
// field by field, VM by VM; what it does not mention is kept.
func (u *hostUpdate) merge(newer hostUpdate) {
	if newer.seen.After(u.seen) {
		u.seen = newer.seen
	}
	u.agentID = newer.agentID
	u.tenantID = newer.tenantID
	if newer.usage != nil {
		u.usage = newer.usage
	}
	if newer.facts != nil {
		u.facts = newer.facts
	}
	if newer.netbird != nil {
		u.netbird = newer.netbird
	}
	if !newer.hasVMs {
		return
	}
	if !u.hasVMs {
		u.vms, u.hasVMs = newer.vms, true
		return
	}
	for _, r := range newer.vms {
		replaced := false
		for i := range u.vms {
			if u.vms[i].VMID == r.VMID {
				u.vms[i], replaced = r, true
				break
			}
		}
		if !replaced {
			u.vms = append(u.vms, r)
		}
	}
}

// heartbeatBatcher coalesces host updates from every session and writes
// them with one UpsertHostStates and one ReportVMStates per host per
// flush. Updates are keyed by host, so the buffer is bounded by the number
// of connected hosts however fast they send, and a host that sent twice in
// one window costs one row.
type heartbeatBatcher struct {
	hub *Hub

	mu      sync.Mutex // guards pending
	pending map[uuid.UUID]*hostUpdate

	// kick asks for an early flush when the batch is full.
	kick chan struct{}
}

func newHeartbeatBatcher(h *Hub) *heartbeatBatcher {
	return &heartbeatBatcher{
		hub:     h,
		pending: make(map[uuid.UUID]*hostUpdate),
		kick:    make(chan struct{}, 1),
	}
}

func (b *heartbeatBatcher) add(u hostUpdate) {
	b.mu.Lock()
	if cur, ok := b.pending[u.hostID]; ok {
		cur.merge(u)
	} else {
		b.pending[u.hostID] = &u
	}
	n := len(b.pending)
	b.mu.Unlock()
	if n >= b.hub.opts.FlushSize {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// forgetVM drops a queued VM state of a host, superseded by an action
// result already written.
func (b *heartbeatBatcher) forgetVM(hostID, vmID uuid.UUID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, ok := b.pending[hostID]
	if !ok {
		return
	}
	u.vms = removeVM(u.vms, vmID)
}

func removeVM(vms []store.VMStateReport, vmID uuid.UUID) []store.VMStateReport {
	out := vms[:0]
	for _, r := range vms {
		if r.VMID != vmID {
			out = append(out, r)
		}
	}
	return out
}

// run flushes every FlushInterval or when kicked, and once more when ctx
// ends.
func (b *heartbeatBatcher) run(ctx context.Context) {
	t := time.NewTicker(b.hub.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownFlushTimeout)
			b.flush(fctx)
			cancel()
			return
		case <-t.C:
		case <-b.kick:
		}
		b.flush(ctx)
	}
}

func (b *heartbeatBatcher) take() map[uuid.UUID]*hostUpdate {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) == 0 {
		return nil
	}
	batch := b.pending
	b.pending = make(map[uuid.UUID]*hostUpdate, len(batch))
	return batch
}

// requeue puts back updates whose write failed, under any newer ones.
func (b *heartbeatBatcher) requeue(batch map[uuid.UUID]*hostUpdate) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, old := range batch {
		if newer, ok := b.pending[id]; ok {
			old.merge(*newer)
		}
		b.pending[id] = old
	}
}

func (b *heartbeatBatcher) flush(ctx context.Context) {
	batch := b.take()
	if len(batch) == 0 {
		return
	}
	h := b.hub
	states := make([]store.HostState, 0, len(batch))
	for id, u := range batch {
		states = append(states, store.HostState{
			HostID: id, AgentID: u.agentID, TenantID: u.tenantID, LastSeenAt: u.seen,
			Facts: u.facts, NetBird: u.netbird, Usage: u.usage,
		})
	}
	start := time.Now()
	if err := h.store.UpsertHostStates(ctx, states); err != nil {
		h.metrics.flushErrors.WithLabelValues("heartbeat").Inc()
		if ctx.Err() == nil {
			h.log.Error("flushing heartbeats", logKeyCount, len(states), logKeyErr, err)
			b.requeue(batch)
		}
		return
	}
	h.metrics.heartbeatsFlushed.Add(float64(len(states)))
	for id, u := range batch {
		if len(u.vms) == 0 {
			continue
		}
		// The changed VMs are for store decorators (the event stream);
		// the hub itself needs nothing back.
		if _, err := h.store.ReportVMStates(ctx, id, u.vms, u.seen); err != nil {
			h.metrics.flushErrors.WithLabelValues("vm_state").Inc()
			if ctx.Err() == nil {
				h.log.Error("flushing vm states", "host_id", id, logKeyErr, err)
			}
		}
	}
	h.metrics.flushDuration.WithLabelValues("heartbeat").Observe(time.Since(start).Seconds())
}
