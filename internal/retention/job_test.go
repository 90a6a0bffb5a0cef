package retention_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubedoio/n-kudo/internal/retention"
	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/pgtest"
	"github.com/kubedoio/n-kudo/internal/store/postgres"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Wrap(m))
}

var engines = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"sqlite", func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "nkudo.db"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}},
	{"postgres", func(t *testing.T) store.Store {
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}},
}

// seedLogs stores one execution with n log lines, line i written i
// minutes before now, and returns the execution and its tenant.
func seedLogs(t *testing.T, st store.Store, now time.Time, n int) store.Execution {
	t.Helper()
	ctx := t.Context()
	ten := store.Tenant{ID: store.NewID(), Name: "t-" + store.NewID().String(), CreatedAt: now}
	require.NoError(t, st.CreateTenant(ctx, ten))
	site := store.Site{ID: store.NewID(), TenantID: ten.ID, Name: "s", CreatedAt: now, UpdatedAt: now}
	require.NoError(t, st.CreateSite(ctx, site))
	tok := store.EnrollmentToken{ID: store.NewID(), TenantID: ten.ID, SiteID: site.ID, Hash: []byte(ten.ID.String()), ExpiresAt: now.Add(time.Hour), MaxUses: 1, CreatedAt: now}
	require.NoError(t, st.CreateEnrollmentToken(ctx, tok))
	agent, _, _, err := st.ConsumeEnrollment(ctx, store.Enrollment{TokenHash: tok.Hash, AgentID: store.NewID(), HostID: store.NewID(),
		Hostname: "edge", CertSerial: "1", CertExpiresAt: now.Add(time.Hour), Now: now})
	require.NoError(t, err)
	p := store.Plan{ID: store.NewID(), TenantID: ten.ID, SiteID: site.ID, HostID: agent.HostID, AgentID: agent.ID,
		Status: store.StatusPending, CreatedAt: now, UpdatedAt: now}
	p.Actions = []store.PlanAction{{ID: store.NewID(), PlanID: p.ID, Type: store.ActionMicroVMStart, Status: store.StatusPending,
		ExecutionID: store.NewID(), UpdatedAt: now}}
	require.NoError(t, st.CreatePlan(ctx, p))
	lines := make([]store.LogLine, n)
	for i := range lines {
		lines[i] = store.LogLine{ExecutionID: p.Actions[0].ExecutionID, Seq: int64(i + 1), At: now.Add(-time.Duration(i) * time.Minute), Stream: "stdout", Message: "x"}
	}
	if n > 0 {
		require.NoError(t, st.AppendLogLines(ctx, lines))
	}
	return store.Execution{ID: p.Actions[0].ExecutionID, TenantID: ten.ID}
}

// TestJobDeletesInBatches: one pass deletes every expired line, in as
// many batches as it takes, keeps the rest, and says so in its metrics.
func TestJobDeletesInBatches(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			st := eng.open(t)
			now := time.Now().UTC().Truncate(time.Microsecond)
			exec := seedLogs(t, st, now, 20)
			reg := prometheus.NewRegistry()
			policy := retention.DefaultPolicy()
			policy.Logs = 10*time.Minute - time.Second // lines 0..9 minutes old stay
			job, err := retention.New(retention.Options{Store: st, Policy: policy, Batch: 3, Registerer: reg, Now: func() time.Time { return now }})
			require.NoError(t, err)
			require.NoError(t, job.RunOnce(t.Context()))

			lines, err := st.ListLogLines(t.Context(), exec.TenantID, exec.ID, 0, 100)
			require.NoError(t, err)
			require.Len(t, lines, 10)
			require.EqualValues(t, 10, lines[len(lines)-1].Seq)
			require.InDelta(t, 10, (metric(t, reg, "nkudo_retention_deleted_rows_total", "logs")), 0)
			require.InDelta(t, (9 * time.Minute).Seconds(), (metric(t, reg, "nkudo_retention_oldest_row_age_seconds", "logs")), 1)
			require.InDelta(t, 0, (metric(t, reg, "nkudo_retention_oldest_row_age_seconds", "audit")), 0, "no audit events")
		})
	}
}

// TestJobZeroAgeKeepsForever: an age of 0 turns a kind's retention off.
func TestJobZeroAgeKeepsForever(t *testing.T) {
	t.Parallel()
	st := engines[0].open(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	exec := seedLogs(t, st, now, 5)
	policy := retention.DefaultPolicy()
	policy.Logs = 0
	job, err := retention.New(retention.Options{Store: st, Policy: policy, Now: func() time.Time { return now.Add(1000 * time.Hour) }})
	require.NoError(t, err)
	require.NoError(t, job.RunOnce(t.Context()))
	lines, err := st.ListLogLines(t.Context(), exec.TenantID, exec.ID, 0, 100)
	require.NoError(t, err)
	require.Len(t, lines, 5)
}

// TestJobRunStops: Run makes a pass at once and returns when its
// context ends.
func TestJobRunStops(t *testing.T) {
	t.Parallel()
	st := engines[0].open(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	exec := seedLogs(t, st, now, 5)
	policy := retention.DefaultPolicy()
	policy.Logs = time.Minute + time.Second
	policy.Interval = time.Hour
	job, err := retention.New(retention.Options{Store: st, Policy: policy})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		lines, err := st.ListLogLines(t.Context(), exec.TenantID, exec.ID, 0, 100)
		require.NoError(t, err)
		if len(lines) == 2 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the first pass never ran")
		<-tick.C
	}
	cancel()
	require.NoError(t, <-done)
}

func TestNewRefusesBadOptions(t *testing.T) {
	t.Parallel()
	_, err := retention.New(retention.Options{Policy: retention.DefaultPolicy()})
	require.ErrorContains(t, err, "store")
	st := engines[0].open(t)
	p := retention.DefaultPolicy()
	p.Interval = 0
	_, err = retention.New(retention.Options{Store: st, Policy: p})
	require.ErrorContains(t, err, "interval")
}

// metric reads the value of a counter or gauge with a kind label.
func metric(t *testing.T, reg *prometheus.Registry, name, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{kind=%q} not found", name, kind)
	return 0
}
