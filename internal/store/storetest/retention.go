package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
)

// row is one seeded row of a retention kind, with a way to tell whether
// it is still stored.
type row struct {
	at     time.Time
	exists func() bool
}

// timedKinds seed rows of the kinds whose age is one column, at a given
// time, so one test covers each.
var timedKinds = []struct {
	kind store.RetentionKind
	seed func(t *testing.T, f *fixture, sc scope, at time.Time) row
}{
	{store.RetainLogs, func(t *testing.T, f *fixture, sc scope, at time.Time) row {
		p := f.plan(sc.agent)
		exec := p.Actions[0].ExecutionID
		require.NoError(t, f.s.AppendLogLines(f.ctx, []store.LogLine{{ExecutionID: exec, Seq: 1, At: at, Stream: "stdout", Message: "x"}}))
		return row{at, func() bool {
			lines, err := f.s.ListLogLines(f.ctx, sc.tenant.ID, exec, 0, 10)
			require.NoError(t, err)
			return len(lines) == 1
		}}
	}},
	{store.RetainAudit, func(t *testing.T, f *fixture, sc scope, at time.Time) row {
		e := store.AuditEvent{ID: store.NewID(), TenantID: sc.tenant.ID, Actor: "admin", Action: "site.create", Result: "ok", At: at}
		require.NoError(t, f.s.AppendAudit(f.ctx, e))
		return row{at, func() bool {
			items, _, err := f.s.ListAudit(f.ctx, sc.tenant.ID, store.Page{Limit: 1000})
			require.NoError(t, err)
			for _, it := range items {
				if it.ID == e.ID {
					return true
				}
			}
			return false
		}}
	}},
	{store.RetainIdempotencyKeys, func(t *testing.T, f *fixture, sc scope, at time.Time) row {
		r := store.IdempotencyRecord{TenantID: sc.tenant.ID, Route: "POST /v1/sites", Key: fmt.Sprintf("k-%d", f.seq()),
			Fingerprint: []byte{1}, CreatedAt: at, Holder: store.NewID(), ReservedUntil: at.Add(time.Minute)}
		_, won, err := f.s.ReserveIdempotency(f.ctx, r)
		require.NoError(t, err)
		require.True(t, won)
		r.Status, r.Response = 201, []byte(`{}`)
		require.NoError(t, f.s.CompleteIdempotency(f.ctx, r))
		return row{at, func() bool {
			_, err := f.s.GetIdempotency(f.ctx, sc.tenant.ID, r.Route, r.Key)
			if err != nil {
				require.ErrorIs(t, err, store.ErrNotFound)
			}
			return err == nil
		}}
	}},
	{store.RetainPlans, func(t *testing.T, f *fixture, sc scope, at time.Time) row {
		p := f.finishedPlan(sc.agent, at, store.StatusSucceeded)
		return row{at, func() bool { return f.planStored(sc, p) }}
	}},
}

// testRetentionTimed: rows older than the cutoff go, oldest first, at
// most limit per call; younger rows stay; OldestRetained follows.
func testRetentionTimed(t *testing.T, f *fixture) {
	for _, k := range timedKinds {
		t.Run(string(k.kind), func(t *testing.T) {
			sc := newScope(f)
			_, ok, err := f.s.OldestRetained(f.ctx, k.kind)
			require.NoError(t, err)
			require.False(t, ok, "nothing stored yet")
			var rows []row
			for _, age := range []time.Duration{50 * time.Hour, 40 * time.Hour, 30 * time.Hour, time.Hour} {
				rows = append(rows, k.seed(t, f, sc, base.Add(-age)))
			}
			oldest, ok, err := f.s.OldestRetained(f.ctx, k.kind)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, ts(rows[0].at), oldest)

			cutoff := base.Add(-24 * time.Hour)
			n, err := f.s.DeleteExpired(f.ctx, k.kind, cutoff, 2)
			require.NoError(t, err)
			require.Equal(t, 2, n, "a full batch")
			require.False(t, rows[0].exists(), "the oldest goes first")
			require.False(t, rows[1].exists())
			require.True(t, rows[2].exists(), "beyond the batch")
			oldest, _, err = f.s.OldestRetained(f.ctx, k.kind)
			require.NoError(t, err)
			require.Equal(t, ts(rows[2].at), oldest)

			n, err = f.s.DeleteExpired(f.ctx, k.kind, cutoff, 2)
			require.NoError(t, err)
			require.Equal(t, 1, n, "a short batch: nothing older left")
			n, err = f.s.DeleteExpired(f.ctx, k.kind, cutoff, 2)
			require.NoError(t, err)
			require.Zero(t, n)
			require.True(t, rows[3].exists(), "a row younger than the cutoff stays")
			require.NoError(t, f.s.ReclaimSpace(f.ctx, k.kind))
			require.True(t, rows[3].exists())
		})
	}
}

// finishedPlan stores a plan with a log line and moves it to status at.
func (f *fixture) finishedPlan(agent store.Agent, at time.Time, status string) store.Plan {
	f.t.Helper()
	p := f.newPlan(agent, at.Add(-time.Minute))
	require.NoError(f.t, f.s.CreatePlan(f.ctx, p))
	_, err := f.s.MarkPlanDispatched(f.ctx, agent.ID, p.ID, at.Add(-time.Minute))
	require.NoError(f.t, err)
	require.NoError(f.t, f.s.AppendLogLines(f.ctx, []store.LogLine{{ExecutionID: p.Actions[0].ExecutionID, Seq: 1, At: at, Stream: "stdout", Message: "done"}}))
	_, err = f.s.ApplyActionResult(f.ctx, agent.ID, store.ActionResult{ActionID: p.Actions[0].ID, Status: status, At: at})
	require.NoError(f.t, err)
	return p
}

// planStored reports whether the plan is stored, and checks that its
// execution went with it.
func (f *fixture) planStored(sc scope, p store.Plan) bool {
	f.t.Helper()
	_, err := f.s.GetPlan(f.ctx, sc.tenant.ID, p.ID)
	if err != nil {
		require.ErrorIs(f.t, err, store.ErrNotFound)
		_, err = f.s.GetExecution(f.ctx, sc.tenant.ID, p.Actions[0].ExecutionID)
		require.ErrorIs(f.t, err, store.ErrNotFound, "the execution goes with its plan")
		return false
	}
	return true
}

// testRetentionPlansOnlyFinished: a plan that is not finished is never
// deleted, however old.
func testRetentionPlansOnlyFinished(t *testing.T, f *fixture) {
	sc := newScope(f)
	old := base.Add(-100 * time.Hour)
	pending := f.newPlan(sc.agent, old)
	require.NoError(t, f.s.CreatePlan(f.ctx, pending))
	failed := f.finishedPlan(sc.agent, old, store.StatusFailed)
	n, err := f.s.DeleteExpired(f.ctx, store.RetainPlans, base, 10)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.False(t, f.planStored(sc, failed))
	require.True(t, f.planStored(sc, pending), "a pending plan stays")
	plans, err := f.s.PendingPlans(f.ctx, sc.agent.ID)
	require.NoError(t, err)
	require.Len(t, plans, 1)
}

// testRetentionRevokedAgents: an agent revoked before the cutoff goes
// with its host, plans and VM records; a recently revoked one and a live
// one stay.
func testRetentionRevokedAgents(t *testing.T, f *fixture) {
	oldRev, newRev, live := newScope(f), newScope(f), newScope(f)
	for _, sc := range []scope{oldRev, newRev, live} {
		vm := f.vm(sc.site, sc.host.ID)
		f.plan(sc.agent, vm.ID)
	}
	_, err := f.s.RevokeAgent(f.ctx, oldRev.tenant.ID, oldRev.agent.ID, base.Add(-48*time.Hour))
	require.NoError(t, err)
	_, err = f.s.RevokeAgent(f.ctx, newRev.tenant.ID, newRev.agent.ID, base.Add(-time.Hour))
	require.NoError(t, err)
	oldest, ok, err := f.s.OldestRetained(f.ctx, store.RetainRevokedAgents)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, ts(base.Add(-48*time.Hour)), oldest)

	n, err := f.s.DeleteExpired(f.ctx, store.RetainRevokedAgents, base.Add(-24*time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = f.s.GetAgent(f.ctx, oldRev.agent.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = f.s.GetHost(f.ctx, oldRev.tenant.ID, oldRev.host.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	vms, _, err := f.s.ListVMs(f.ctx, oldRev.tenant.ID, store.VMFilter{IncludeDeleted: true}, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, vms, "the VM records of the retired host go too")
	plans, _, err := f.s.ListPlans(f.ctx, oldRev.tenant.ID, store.PlanFilter{}, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, plans)

	for _, sc := range []scope{newRev, live} {
		_, err := f.s.GetAgent(f.ctx, sc.agent.ID)
		require.NoError(t, err)
		vms, _, err := f.s.ListVMs(f.ctx, sc.tenant.ID, store.VMFilter{}, store.Page{Limit: 10})
		require.NoError(t, err)
		require.Len(t, vms, 1)
	}
	n, err = f.s.DeleteExpired(f.ctx, store.RetainRevokedAgents, base.Add(-24*time.Hour), 10)
	require.NoError(t, err)
	require.Zero(t, n)
}

func testRetentionBadArguments(t *testing.T, f *fixture) {
	_, err := f.s.DeleteExpired(f.ctx, "sessions", base, 10)
	require.ErrorIs(t, err, store.ErrInvalid)
	_, err = f.s.DeleteExpired(f.ctx, store.RetainLogs, base, 0)
	require.ErrorIs(t, err, store.ErrInvalid)
	_, _, err = f.s.OldestRetained(f.ctx, "sessions")
	require.ErrorIs(t, err, store.ErrInvalid)
	for _, k := range store.RetentionKinds {
		require.NoError(t, f.s.ReclaimSpace(f.ctx, k), "every kind can be reclaimed")
	}
}

func testTryExclusive(t *testing.T, f *fixture) {
	boom := fmt.Errorf("boom")
	ran, err := f.s.TryExclusive(f.ctx, "retention", func(context.Context) error { return boom })
	require.True(t, ran)
	require.ErrorIs(t, err, boom)
	ran, err = f.s.TryExclusive(f.ctx, "retention", func(context.Context) error { return nil })
	require.True(t, ran, "the lock was released after the first run")
	require.NoError(t, err)
}

// testSharedPKI: the first CA stored wins, also among racing replicas.
func testSharedPKI(t *testing.T, f *fixture) {
	_, err := f.s.LoadCA(f.ctx)
	require.ErrorIs(t, err, store.ErrNotFound)
	const racers = 8
	got := make([]store.StoredCA, racers)
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			ca := store.StoredCA{CertPEM: []byte(fmt.Sprintf("cert-%d", i)), SealedKey: []byte{byte(i), 0, 0xff}, CreatedAt: base}
			got[i], errs[i] = f.s.StoreCAIfAbsent(f.ctx, ca)
		})
	}
	wg.Wait()
	for i := range racers {
		require.NoError(t, errs[i])
		require.Equal(t, got[0], got[i], "every racer sees the winner's CA")
	}
	require.True(t, bytes.HasPrefix(got[0].CertPEM, []byte("cert-")))
	require.Equal(t, ts(base), got[0].CreatedAt)
	loaded, err := f.s.LoadCA(f.ctx)
	require.NoError(t, err)
	require.Equal(t, got[0], loaded)
	again, err := f.s.StoreCAIfAbsent(f.ctx, store.StoredCA{CertPEM: []byte("late"), SealedKey: []byte{1}, CreatedAt: base})
	require.NoError(t, err)
	require.Equal(t, got[0], again, "a stored CA is never replaced")
}
