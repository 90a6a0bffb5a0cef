package retention_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/retention"
	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/pgtest"
	"github.com/kubedoio/n-kudo/internal/store/postgres"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
)

// Soak settings: NKUDO_SOAK=60s runs TestSoakLogRetention for that long;
// it is skipped otherwise, being a benchmark that takes minutes and two
// cores. NKUDO_SOAK_ENGINES=sqlite,postgres picks the engines (default
// sqlite).
const (
	soakEnv        = "NKUDO_SOAK"
	soakEnginesEnv = "NKUDO_SOAK_ENGINES"
	soakRate       = 50_000 // log lines per second offered
	soakBatch      = 1000   // lines per AppendLogLines, as the hub batches them
	soakExecutions = 20     // executions the lines are spread over
	soakRetention  = 10 * time.Second
	soakInterval   = time.Second
	soakEvery      = 5 * time.Second
)

// sizer reports the bytes the database takes on disk.
type sizer func(ctx context.Context) (int64, error)

// TestSoakLogRetention offers 50,000 log lines a second for NKUDO_SOAK
// with a 10 s log retention and prints, every 5 s, the lines ingested,
// the rows left and the database size. It fails when the size at the end
// is more than 1.5× the size once the retention window first filled: the
// database must stay flat, however long the ingest runs.
func TestSoakLogRetention(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv(soakEnv))
	if err != nil || d <= 0 {
		t.Skipf("a soak benchmark: set %s=60s to run it", soakEnv)
	}
	engines := os.Getenv(soakEnginesEnv)
	if engines == "" {
		engines = "sqlite"
	}
	for _, eng := range []string{"sqlite", "postgres"} {
		if !contains(engines, eng) {
			continue
		}
		t.Run(eng, func(t *testing.T) {
			st, size := openSoakStore(t, eng)
			soak(t, st, size, d)
		})
	}
}

func contains(list, s string) bool {
	for i := 0; i+len(s) <= len(list); i++ {
		if list[i:i+len(s)] == s && (i+len(s) == len(list) || list[i+len(s)] == ',') && (i == 0 || list[i-1] == ',') {
			return true
		}
	}
	return false
}

func openSoakStore(t *testing.T, engine string) (store.Store, sizer) {
	t.Helper()
	if engine == "sqlite" {
		path := filepath.Join(t.TempDir(), "nkudo.db")
		st, err := sqlite.Open(context.Background(), path)
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		return st, func(context.Context) (int64, error) {
			var total int64
			for _, p := range []string{path, path + "-wal"} {
				if fi, err := os.Stat(p); err == nil {
					total += fi.Size()
				}
			}
			return total, nil
		}
	}
	url := pgtest.URL(t)
	st, err := postgres.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st, func(ctx context.Context) (int64, error) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return 0, err
		}
		defer conn.Close(ctx)
		var n int64
		err = conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&n)
		return n, err
	}
}

type soakSample struct {
	at       time.Duration
	ingested int64
	oldest   time.Duration
	size     int64
}

func soak(t *testing.T, st store.Store, size sizer, d time.Duration) {
	execs := seedExecutions(t, st, soakExecutions)
	policy := retention.DefaultPolicy()
	policy.Logs, policy.Interval = soakRetention, soakInterval
	job, err := retention.New(retention.Options{Store: st, Policy: policy})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var ingested atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { _ = job.Run(ctx) })
	wg.Go(func() { ingest(ctx, t, st, execs, &ingested) })

	start := time.Now()
	var samples []soakSample
	tick := time.NewTicker(soakEvery)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			s := soakSample{at: time.Since(start).Round(time.Second), ingested: ingested.Load()}
			if at, ok, err := st.OldestRetained(t.Context(), store.RetainLogs); err == nil && ok {
				s.oldest = time.Since(at).Round(100 * time.Millisecond)
			}
			s.size, err = size(t.Context())
			require.NoError(t, err)
			samples = append(samples, s)
			t.Logf("t=%-4s lines ingested %10d (%6.0f/s)  oldest line %-6s  database %6.1f MiB",
				s.at, s.ingested, float64(s.ingested)/time.Since(start).Seconds(), s.oldest, float64(s.size)/(1<<20))
		}
	}
	wg.Wait()
	report(t, samples, time.Since(start))
}

// ingest appends soakBatch lines every soakBatch/soakRate seconds (an
// open loop: a slow store shows as a lower achieved rate).
func ingest(ctx context.Context, t *testing.T, st store.Store, execs []store.Execution, ingested *atomic.Int64) {
	seqs := make([]int64, len(execs))
	tick := time.NewTicker(time.Second * soakBatch / soakRate)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		e := i % len(execs)
		now := time.Now()
		lines := make([]store.LogLine, soakBatch)
		for j := range lines {
			seqs[e]++
			lines[j] = store.LogLine{ExecutionID: execs[e].ID, Seq: seqs[e], At: now, Stream: "stdout",
				Message: fmt.Sprintf("step %d of the soak: a log line of ordinary length for a provisioning run", seqs[e])}
		}
		if err := st.AppendLogLines(ctx, lines); err != nil {
			if ctx.Err() == nil {
				t.Errorf("appending log lines: %v", err)
			}
			return
		}
		ingested.Add(soakBatch)
	}
}

// report checks that the size stayed flat once the retention window had
// filled (twice the retention, plus a pass).
func report(t *testing.T, samples []soakSample, elapsed time.Duration) {
	t.Helper()
	require.NotEmpty(t, samples)
	last := samples[len(samples)-1]
	t.Logf("offered %d lines/s for %s: ingested %d lines (%.0f/s)", soakRate, elapsed.Round(time.Second), last.ingested, float64(last.ingested)/elapsed.Seconds())
	var filled *soakSample
	for i := range samples {
		if samples[i].at >= 2*soakRetention+soakInterval {
			filled = &samples[i]
			break
		}
	}
	if filled == nil {
		t.Skip("too short to see the retention window fill; run for at least 30s")
	}
	t.Logf("database %.1f MiB once the window filled (t=%s), %.1f MiB at the end (t=%s)",
		float64(filled.size)/(1<<20), filled.at, float64(last.size)/(1<<20), last.at)
	require.LessOrEqual(t, float64(last.size), 1.5*float64(filled.size), "the database kept growing")
}

// seedExecutions stores n executions (one tenant, agent and plan each).
func seedExecutions(t *testing.T, st store.Store, n int) []store.Execution {
	t.Helper()
	out := make([]store.Execution, n)
	for i := range out {
		out[i] = seedLogs(t, st, time.Now(), 0)
	}
	return out
}
