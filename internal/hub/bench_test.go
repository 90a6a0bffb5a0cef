package hub_test

import (
	"context"
	"os"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/store"
)

// benchSessions is the fleet size of the session benchmarks;
// NKUDO_BENCH_SESSIONS overrides it.
func benchSessions(b *testing.B) int {
	if v := os.Getenv("NKUDO_BENCH_SESSIONS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(b, err)
		return n
	}
	return 1000
}

// raiseFileLimit lifts the soft open-file limit to the hard one: each
// loopback session costs two descriptors in this process.
func raiseFileLimit(b *testing.B, need int) {
	var lim syscall.Rlimit
	require.NoError(b, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Cur < uint64(need) {
		lim.Cur = min(lim.Max, uint64(need))
		require.NoError(b, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))
	}
}

// fleet connects n agents, hello included.
func fleet(b *testing.B, e *env, n int) ([]*agent, []*client) {
	raiseFileLimit(b, 2*n+256)
	agents := make([]*agent, n)
	clients := make([]*client, n)
	for i := range n {
		agents[i] = e.enroll()
		clients[i], _ = e.connect(agents[i])
	}
	return agents, clients
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// BenchmarkIdleSessionMemory connects a fleet and reports heap+stack bytes
// and goroutines per idle session. Client and server share the process,
// so bytes/session includes the client side's connection too: it is an
// upper bound on the server's cost.
func BenchmarkIdleSessionMemory(b *testing.B) {
	n := benchSessions(b)
	for b.Loop() {
		b.StopTimer()
		e := newEnv(b, nil)
		before, goBefore := heapInUse(), runtime.NumGoroutine()
		b.StartTimer()
		_, clients := fleet(b, e, n)
		b.StopTimer()
		require.Equal(b, n, e.hub.Sessions())
		after, goAfter := heapInUse(), runtime.NumGoroutine()
		b.ReportMetric(float64(after-before)/float64(n), "bytes/session")
		b.ReportMetric(float64(goAfter-goBefore)/float64(n), "goroutines/session")
		for _, c := range clients {
			_ = c.conn.CloseNow()
		}
		b.StartTimer()
	}
}

// BenchmarkPlanDispatchLatency measures DispatchPlan → the agent holding
// the frame, with a full fleet connected.
func BenchmarkPlanDispatchLatency(b *testing.B) {
	n := benchSessions(b)
	e := newEnv(b, nil)
	agents, clients := fleet(b, e, n)
	vm := uuid.New()
	var lat []time.Duration
	i := 0
	b.ResetTimer()
	for b.Loop() {
		k := i % n
		i++
		p := store.Plan{ID: store.NewID(), AgentID: agents[k].id, Actions: []store.PlanAction{{
			ID: store.NewID(), Type: store.ActionMicroVMStart, VMID: vm, ExecutionID: store.NewID(), Status: store.StatusPending,
		}}}
		start := time.Now()
		e.hub.DispatchPlan(p)
		env := clients[k].expect(agentproto.TypePlan)
		lat = append(lat, time.Since(start))
		if env.Type != agentproto.TypePlan {
			b.Fatalf("got %s", env.Type)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkShutdown measures Run's shutdown with a full fleet connected
// and reading (as agents do): every session is closed with going-away and
// the batchers flush. It bounds how long a restarting server keeps its
// agents waiting before the new process can take them back.
func BenchmarkShutdown(b *testing.B) {
	n := benchSessions(b)
	for b.Loop() {
		b.StopTimer()
		e := newEnv(b, nil)
		_, clients := fleet(b, e, n)
		done := make(chan struct{}, n)
		for _, c := range clients {
			go func() {
				defer func() { done <- struct{}{} }()
				for {
					if _, _, err := c.conn.Read(context.Background()); err != nil {
						return
					}
				}
			}()
		}
		b.StartTimer()
		e.stop()
		<-e.stopped
		b.StopTimer()
		for range clients {
			<-done
		}
		b.StartTimer()
	}
}
