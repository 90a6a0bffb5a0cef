package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubedoio/n-kudo/internal/store"
)

// Enrollments of one site usually share a multi-use token, and each takes
// the token row's lock until it commits: one after another, each waiting
// for its own WAL flush, they would be bounded by the disk's flush latency
// (≈250/s here). enrollGroup commits the enrollments that arrive while one
// is being written together, in one transaction: one lock wait and one
// WAL flush for the group.

// maxEnrollGroup bounds one group transaction.
const maxEnrollGroup = 64

// enrollGroup is a leader/follower combiner: the caller that finds no
// group being written leads: it writes the queued enrollments (its own
// first) as one group, then hands the lead to the first enrollment still
// queued, so no caller ever writes more than one group. The others wait
// for their result. It has no goroutine of its own, so nothing to stop.
type enrollGroup struct {
	mu      sync.Mutex // guards the following and enrollCall.promoted
	queue   []*enrollCall
	writing bool // a leader exists; false implies an empty queue
}

// enrollCall is one ConsumeEnrollment waiting for its group.
type enrollCall struct {
	e   store.Enrollment
	tok store.EnrollmentToken
	err error
	// wake is closed once, when the result is in or when the call is
	// promoted to lead.
	wake     chan struct{}
	promoted bool
}

// enrollGroupTimeout bounds one group's transaction: it runs detached
// from the leader's request, which may end before its followers'.
const enrollGroupTimeout = 30 * time.Second

// ConsumeEnrollment takes one use of the token, creates the agent (offline
// until its session says hello, with its first certificate) and its host
// and records the audit event in one statement, committed together with
// the enrollments that arrived at the same time.
func (s *Store) ConsumeEnrollment(ctx context.Context, e store.Enrollment) (store.Agent, store.Host, store.EnrollmentToken, error) {
	call := &enrollCall{e: e, wake: make(chan struct{})}
	g := &s.enrollments
	g.mu.Lock()
	g.queue = append(g.queue, call)
	lead := !g.writing
	g.writing = true
	g.mu.Unlock()
	if !lead {
		select {
		case <-call.wake:
		case <-ctx.Done():
			g.mu.Lock()
			if i := slices.Index(g.queue, call); i >= 0 && !call.promoted {
				g.queue = slices.Delete(g.queue, i, i+1)
				g.mu.Unlock()
				return store.Agent{}, store.Host{}, store.EnrollmentToken{}, fmt.Errorf("enrolling agent %s: %w", e.AgentID, ctx.Err())
			}
			g.mu.Unlock()
			// Already in a group being written (its result is due) or
			// promoted (the others need this call to lead).
			<-call.wake
		}
		g.mu.Lock()
		lead = call.promoted
		g.mu.Unlock()
	}
	if lead {
		s.leadEnrollGroup(ctx, call)
	}
	if call.err != nil {
		return store.Agent{}, store.Host{}, store.EnrollmentToken{}, fmt.Errorf("enrolling agent %s: %w", e.AgentID, call.err)
	}
	agent, host := enrolled(e, call.tok)
	return agent, host, call.tok, nil
}

// leadEnrollGroup writes one group, which starts with self, wakes its
// other members and hands the lead on.
func (s *Store) leadEnrollGroup(ctx context.Context, self *enrollCall) {
	g := &s.enrollments
	g.mu.Lock()
	n := min(len(g.queue), maxEnrollGroup)
	calls := slices.Clone(g.queue[:n])
	g.queue = slices.Delete(g.queue, 0, n)
	g.mu.Unlock()

	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), enrollGroupTimeout)
	s.writeEnrollGroup(gctx, calls)
	cancel()

	for _, c := range calls {
		if c != self {
			close(c.wake)
		}
	}
	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		next.promoted = true
		close(next.wake)
	} else {
		g.writing = false
	}
	g.mu.Unlock()
}

// writeEnrollGroup runs the group's statements in one transaction and one
// round trip. A statement returning no row is that enrollment's unusable
// token, not a failure of the group; any error rolls the group back and
// each enrollment is then written on its own, so one bad enrollment never
// fails the others.
func (s *Store) writeEnrollGroup(ctx context.Context, calls []*enrollCall) {
	if len(calls) == 1 {
		calls[0].tok, calls[0].err = s.enrollOne(ctx, s.pool, calls[0].e)
		return
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, c := range calls {
			b.Queue(qEnroll, enrollArgs(c.e)...)
		}
		br := tx.SendBatch(ctx, b)
		for _, c := range calls {
			c.tok, c.err = scanToken(br.QueryRow())
			if errors.Is(c.err, store.ErrNotFound) {
				c.err = store.ErrTokenInvalid
				continue
			}
			if c.err != nil {
				_ = br.Close()
				return c.err
			}
		}
		return translate(br.Close())
	})
	if err == nil {
		return
	}
	for _, c := range calls {
		c.tok, c.err = s.enrollOne(ctx, s.pool, c.e)
	}
}

// enrollOne writes one enrollment in its own statement.
func (s *Store) enrollOne(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, e store.Enrollment) (store.EnrollmentToken, error) {
	tok, err := scanToken(q.QueryRow(ctx, qEnroll, enrollArgs(e)...))
	if errors.Is(err, store.ErrNotFound) {
		return store.EnrollmentToken{}, store.ErrTokenInvalid
	}
	return tok, err
}

// enrollArgs are qEnroll's parameters; a nil audit id inserts no event.
func enrollArgs(e store.Enrollment) []any {
	var auditID any
	var a store.AuditEvent
	if e.Audit != nil {
		a = *e.Audit
		auditID = a.ID
	}
	return []any{e.TokenHash, ts(e.Now), e.AgentID, e.HostID, e.CertSerial, ts(e.CertExpiresAt), e.Hostname,
		auditID, a.Actor, a.Action, a.Target, a.Result, a.RequestID, ts(a.At), store.AgentOffline}
}

// enrolled is the agent and host an enrollment created.
func enrolled(e store.Enrollment, tok store.EnrollmentToken) (store.Agent, store.Host) {
	now := ts(e.Now)
	agent := store.Agent{
		ID:            e.AgentID,
		TenantID:      tok.TenantID,
		SiteID:        tok.SiteID,
		HostID:        e.HostID,
		Status:        store.AgentOffline,
		CertSerial:    e.CertSerial,
		CertExpiresAt: ts(e.CertExpiresAt),
		CreatedAt:     now,
	}
	host := store.Host{
		ID:        e.HostID,
		TenantID:  tok.TenantID,
		SiteID:    tok.SiteID,
		AgentID:   e.AgentID,
		Hostname:  e.Hostname,
		Facts:     rawJSON(nil),
		NetBird:   rawJSON(nil),
		Usage:     rawJSON(nil),
		CreatedAt: now,
		UpdatedAt: now,
	}
	return agent, host
}
