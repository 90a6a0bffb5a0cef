package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/notify"
	"github.com/kubedoio/n-kudo/internal/store"
)

// Topics the hub uses on its notify.Bus to reach the replica that holds an
// agent's session (plans, revocations) or serves a log follower.
const (
	TopicPlanDispatch = "plan_dispatch"
	TopicAgentRevoke  = "agent_revoke"
	TopicLogLines     = "log_lines"
)

// Cluster tuning.
const (
	// publishTimeout bounds one notification: a replica whose database is
	// unreachable must not hold an API request for long; the agent gets
	// its plan at its next hello anyway.
	publishTimeout = 2 * time.Second
	// clusterReadTimeout bounds the store reads a notification causes.
	clusterReadTimeout = 10 * time.Second
	// remoteLogPage is how many lines one store read fetches for remote
	// followers.
	remoteLogPage = 1000
	// logNoticeExecs keeps a log_lines payload well under
	// notify.MaxPayloadBytes (about 120 bytes per execution).
	logNoticeExecs = 50
)

// planNotice asks the replica holding agent's session to send the plan.
type planNotice struct {
	Origin   uuid.UUID `json:"origin"`
	TenantID uuid.UUID `json:"tenant_id"`
	AgentID  uuid.UUID `json:"agent_id"`
	PlanID   uuid.UUID `json:"plan_id"`
}

// revokeNotice asks the replica holding agent's session to close it.
type revokeNotice struct {
	Origin  uuid.UUID `json:"origin"`
	AgentID uuid.UUID `json:"agent_id"`
}

// logNotice tells followers on other replicas that lines FirstSeq..MaxSeq
// of each execution were just stored.
type logNotice struct {
	Origin uuid.UUID     `json:"origin"`
	Execs  []logNoticeEx `json:"execs"`
}

type logNoticeEx struct {
	ExecutionID uuid.UUID `json:"execution_id"`
	TenantID    uuid.UUID `json:"tenant_id"`
	FirstSeq    int64     `json:"first_seq"`
	MaxSeq      int64     `json:"max_seq"`
}

// subscribeBus registers the hub's handlers on its bus.
func (h *Hub) subscribeBus() error {
	topics := map[string]notify.Handler{
		TopicPlanDispatch: h.onPlanNotice,
		TopicAgentRevoke:  h.onRevokeNotice,
		TopicLogLines:     h.onLogNotice,
	}
	if h.opts.Clustered {
		topics[TopicConsoleOpen] = h.onConsoleOpen
		topics[TopicConsoleData] = h.onConsoleData
		topics[TopicConsoleCtl] = h.onConsoleCtl
	}
	for topic, fn := range topics {
		if err := h.bus.Subscribe(topic, fn); err != nil {
			return fmt.Errorf("subscribing hub to %s: %w", topic, err)
		}
	}
	return nil
}

// publish sends a notice on the bus, logging (not returning) a failure:
// every notice is an optimisation over what the agent or the follower
// gets anyway after a reconnect.
func (h *Hub) publish(topic string, v any) {
	if err := h.publishNow(topic, v); err != nil {
		h.metrics.flushErrors.WithLabelValues("notify").Inc()
		h.log.Warn("publishing cluster notice", "topic", topic, logKeyErr, err)
	}
}

// decode parses a notice, reporting whether it came from another replica.
func (h *Hub) decode(topic string, payload []byte, v any, origin *uuid.UUID) bool {
	if err := json.Unmarshal(payload, v); err != nil {
		h.log.Warn("ignoring malformed cluster notice", "topic", topic, logKeyErr, err)
		return false
	}
	return *origin != h.node
}

func (h *Hub) readCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), clusterReadTimeout)
}

// onPlanNotice sends a plan created on another replica to the agent's
// session here, if there is one. A gap re-sends the plans no agent has
// acknowledged yet; the agent ignores a plan it already holds.
func (h *Hub) onPlanNotice(payload []byte) {
	if payload == nil {
		h.resendAllPending()
		return
	}
	var n planNotice
	if !h.decode(TopicPlanDispatch, payload, &n, &n.Origin) {
		return
	}
	s := h.lookup(n.AgentID)
	if s == nil {
		return
	}
	ctx, cancel := h.readCtx()
	defer cancel()
	p, err := h.store.GetPlan(ctx, n.TenantID, n.PlanID)
	if err != nil {
		h.log.Warn("loading plan announced by another replica", "plan_id", n.PlanID, logKeyErr, err)
		return
	}
	if p.AgentID != n.AgentID || store.Terminal(p.Status) {
		return
	}
	s.dispatch(p)
}

// resendAllPending dispatches every local session's plans still waiting
// for an ack, reading them planLookupBatch sessions per query: a gap on a
// replica holding thousands of sessions costs tens of queries, not
// thousands.
func (h *Hub) resendAllPending() {
	var all []*session
	h.forEachSession(func(s *session) { all = append(all, s) })
	for start := 0; start < len(all); start += planLookupBatch {
		chunk := all[start:min(start+planLookupBatch, len(all))]
		ids := make([]uuid.UUID, len(chunk))
		for i, s := range chunk {
			ids[i] = s.id.AgentID
		}
		ctx, cancel := h.readCtx()
		byAgent, err := h.store.PendingPlansOf(ctx, ids)
		cancel()
		if err != nil {
			h.log.Warn("re-reading pending plans after a notification gap", "sessions", len(chunk), logKeyErr, err)
			continue
		}
		for _, s := range chunk {
			for _, p := range byAgent[s.id.AgentID] {
				if p.Status == store.StatusPending {
					s.dispatch(p)
				}
			}
		}
	}
}

// onRevokeNotice closes the session of an agent revoked on another
// replica. A gap checks every local session's agent in the store.
func (h *Hub) onRevokeNotice(payload []byte) {
	if payload == nil {
		h.forEachSession(func(s *session) {
			ctx, cancel := h.readCtx()
			defer cancel()
			a, err := h.store.GetAgent(ctx, s.id.AgentID)
			if err != nil {
				h.log.Warn("re-checking agent after a notification gap", logKeyAgent, s.id.AgentID, logKeyErr, err)
				return
			}
			if a.Revoked {
				h.revokeLocal(a.ID)
			}
		})
		return
	}
	var n revokeNotice
	if !h.decode(TopicAgentRevoke, payload, &n, &n.Origin) {
		return
	}
	h.revokeLocal(n.AgentID)
}

// onLogNotice reads lines stored by another replica for the executions
// followed here. A gap drops every follower with ErrLagged, which makes
// it catch up from the store and subscribe again.
func (h *Hub) onLogNotice(payload []byte) {
	if payload == nil {
		h.subs.dropAll()
		return
	}
	var n logNotice
	if !h.decode(TopicLogLines, payload, &n, &n.Origin) {
		return
	}
	for _, ex := range n.Execs {
		h.readRemoteLines(ex)
	}
}

// readRemoteLines delivers the stored lines of ex that its followers
// here have not seen. Lines before FirstSeq were announced earlier: a
// follower that has not seen them subscribed after they were stored, and
// reads them from the store itself, so they are not re-read for it (a
// long log would otherwise overflow a new follower on every notice).
func (h *Hub) readRemoteLines(ex logNoticeEx) {
	after, ok := h.subs.minSeq(ex.ExecutionID)
	if !ok {
		return
	}
	after = max(after, ex.FirstSeq-1)
	if after >= ex.MaxSeq {
		return
	}
	ctx, cancel := h.readCtx()
	defer cancel()
	for after < ex.MaxSeq {
		lines, err := h.store.ListLogLines(ctx, ex.TenantID, ex.ExecutionID, after, remoteLogPage)
		if err != nil {
			h.log.Warn("reading log lines stored by another replica", "execution_id", ex.ExecutionID, logKeyErr, err)
			return
		}
		if len(lines) == 0 {
			return
		}
		h.subs.publish(ex.ExecutionID, lines)
		after = lines[len(lines)-1].Seq
	}
}

// announceLogs tells other replicas which executions got new lines.
func (h *Hub) announceLogs(batch []logItem) {
	seen := make(map[uuid.UUID]int, len(batch))
	var execs []logNoticeEx
	for _, it := range batch {
		last := it.lines[len(it.lines)-1]
		first := it.lines[0].Seq
		if i, ok := seen[last.ExecutionID]; ok {
			execs[i].FirstSeq = min(execs[i].FirstSeq, first)
			execs[i].MaxSeq = max(execs[i].MaxSeq, last.Seq)
			continue
		}
		seen[last.ExecutionID] = len(execs)
		execs = append(execs, logNoticeEx{ExecutionID: last.ExecutionID, TenantID: it.s.id.TenantID, FirstSeq: first, MaxSeq: last.Seq})
	}
	for len(execs) > 0 {
		n := min(len(execs), logNoticeExecs)
		h.publish(TopicLogLines, logNotice{Origin: h.node, Execs: execs[:n]})
		execs = execs[n:]
	}
}

// forEachSession calls fn for every live session, outside the shard locks.
func (h *Hub) forEachSession(fn func(*session)) {
	var all []*session
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			all = append(all, s)
		}
		sh.mu.Unlock()
	}
	for _, s := range all {
		fn(s)
	}
}

// revokeLocal closes the agent's session on this hub, if any.
func (h *Hub) revokeLocal(agentID uuid.UUID) {
	h.revoked.Store(agentID, h.now())
	s := h.lookup(agentID)
	if s == nil {
		return
	}
	h.log.Info("closing revoked agent session", logKeyAgent, agentID)
	s.kill(agentproto.CloseRevoked, agentproto.CloseRevokedReason,
		&agentproto.Revoked{Reason: "agent identity revoked by an operator"})
}
