package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
)

// Sizes of the hot-path benchmarks, matching the load the server must
// sustain: heartbeats batched 500 at a time over a fleet of 5,000 hosts,
// log lines ingested 1,000 at a time.
const (
	benchHosts     = 5000
	heartbeatBatch = 500
	logBatch       = 1000
	// logFlush is what the hub's log batcher hands the store at most in
	// one call (batches of many sessions coalesced).
	logFlush = 5000
	// enrollTokenUses bounds the enrollments of one benchmark token.
	enrollTokenUses = 1 << 30
)

// Benchmark measures the store's hot paths. open must return a fresh,
// migrated, empty store and release it in b.Cleanup.
func Benchmark(b *testing.B, open func(b *testing.B) store.Store) {
	b.Run("UpsertHostStates", func(b *testing.B) { benchHeartbeats(b, open(b)) })
	b.Run("AppendLogLines", func(b *testing.B) { benchLogLines(b, open(b), logBatch) })
	b.Run("AppendLogLines/flush", func(b *testing.B) { benchLogLines(b, open(b), logFlush) })
	b.Run("Enroll/three-writes", func(b *testing.B) { benchEnroll(b, open(b), false) })
	b.Run("Enroll/one-write", func(b *testing.B) { benchEnroll(b, open(b), true) })
	b.Run("CreatePlan", func(b *testing.B) { benchCreatePlan(b, open(b)) })
	b.Run("PendingPlans/per-agent", func(b *testing.B) { benchPendingPlans(b, open(b), false) })
	b.Run("PendingPlans/batched", func(b *testing.B) { benchPendingPlans(b, open(b), true) })
}

// benchPendingPlans measures the pending-plan reads of a reconnect storm:
// the hellos of pendingBatch agents (one in 50 with a plan pending), read
// one query per agent (before) or in one PendingPlansOf (the hub's plan
// lookup).
func benchPendingPlans(b *testing.B, s store.Store, batched bool) {
	const pendingBatch = 256
	f := newFixture(b, s)
	site := f.site(f.tenant().ID)
	ids := make([]uuid.UUID, pendingBatch)
	f.enrollN(site, pendingBatch, func(i int, a store.Agent, h store.Host) {
		ids[i] = a.ID
		if i%50 == 0 {
			vm := f.vm(site, h.ID)
			require.NoError(b, s.CreatePlan(f.ctx, f.newPlan(a, base, vm.ID)))
		}
	})
	for b.Loop() {
		if batched {
			if _, err := s.PendingPlansOf(f.ctx, ids); err != nil {
				b.Fatal(err)
			}
			continue
		}
		for _, id := range ids {
			if _, err := s.PendingPlans(f.ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*pendingBatch)/b.Elapsed().Seconds(), "hellos/s")
}

// enrollN enrolls n agents of site with one token, calling each for every
// agent and its host in order.
func (f *fixture) enrollN(site store.Site, n int, each func(i int, a store.Agent, h store.Host)) {
	f.t.Helper()
	tok := f.token(site, n, base.Add(time.Hour))
	for i := range n {
		a, h, _, err := f.s.ConsumeEnrollment(f.ctx, f.enrollment(tok))
		require.NoError(f.t, err)
		each(i, a, h)
	}
}

func benchHeartbeats(b *testing.B, s store.Store) {
	f := newFixture(b, s)
	site := f.site(f.tenant().ID)
	states := make([]store.HostState, benchHosts)
	f.enrollN(site, benchHosts, func(i int, a store.Agent, h store.Host) {
		states[i] = store.HostState{HostID: h.ID, AgentID: a.ID}
	})
	facts := json.RawMessage(`{"cpus":8,"memory_mib":32768,"kvm":true}`)
	at := base
	for i := 0; b.Loop(); i++ {
		start := (i * heartbeatBatch) % benchHosts
		batch := states[start : start+heartbeatBatch]
		at = at.Add(time.Millisecond)
		for j := range batch {
			batch[j].LastSeenAt = at
			// Facts change rarely; most heartbeats carry only liveness.
			batch[j].Facts = nil
			if j%50 == 0 {
				batch[j].Facts = facts
			}
		}
		if err := s.UpsertHostStates(f.ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*heartbeatBatch)/b.Elapsed().Seconds(), "heartbeats/s")
}

// benchEnroll measures the store side of one enrollment. oneWrite is the
// current path (token read, then one transaction with the certificate and
// the audit event); otherwise the former three writes (consume, certificate
// update, audit append), kept as the "before" of docs/benchmarks.md.
func benchEnroll(b *testing.B, s store.Store, oneWrite bool) {
	f := newFixture(b, s)
	site := f.site(f.tenant().ID)
	tok := f.token(site, enrollTokenUses, base.Add(time.Hour))
	for b.Loop() {
		e := f.enrollment(tok)
		ev := store.AuditEvent{ID: store.NewID(), Actor: "token:" + tok.ID.String(), Action: "agent.enroll",
			Target: e.AgentID.String(), Result: "ok", At: base}
		if oneWrite {
			if _, err := s.EnrollmentTokenByHash(f.ctx, tok.Hash, e.Now); err != nil {
				b.Fatal(err)
			}
			e.Audit = &ev
			if _, _, _, err := s.ConsumeEnrollment(f.ctx, e); err != nil {
				b.Fatal(err)
			}
			continue
		}
		serial, expires := e.CertSerial, e.CertExpiresAt
		e.CertSerial, e.CertExpiresAt = "", time.Time{}
		a, _, t, err := s.ConsumeEnrollment(f.ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.RotateAgentCert(f.ctx, a.ID, serial, expires); err != nil {
			b.Fatal(err)
		}
		ev.TenantID = t.TenantID
		if err := s.AppendAudit(f.ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "enrollments/s")
}

func benchLogLines(b *testing.B, s store.Store, batchLines int) {
	f := newFixture(b, s)
	sc := newScope(f)
	exec := f.plan(sc.agent).Actions[0].ExecutionID
	lines := make([]store.LogLine, batchLines)
	var seq int64
	for b.Loop() {
		for j := range lines {
			seq++
			lines[j] = store.LogLine{ExecutionID: exec, Seq: seq, At: base, Stream: "stdout",
				Message: fmt.Sprintf("cloud-init[%d]: step %d of the boot sequence finished", seq%1000, seq)}
		}
		if err := s.AppendLogLines(f.ctx, lines); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batchLines)/b.Elapsed().Seconds(), "lines/s")
}

func benchCreatePlan(b *testing.B, s store.Store) {
	f := newFixture(b, s)
	sc := newScope(f)
	vm := f.vm(sc.site, sc.host.ID)
	for b.Loop() {
		p := f.newPlan(sc.agent, base, vm.ID, vm.ID)
		if err := s.CreatePlan(f.ctx, p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "plans/s")
}
