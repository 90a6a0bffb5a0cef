package e2e_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/pgtest"
)

// newReplicaOf starts another nkudo-server process, with an empty data
// dir, on first's PostgreSQL database: it loads the CA first stored there
// (sealed with the harness's NKUDO_PKI_SEAL_KEY), so agents pinning that CA
// trust both — no files copied between replicas.
func newReplicaOf(t *testing.T, first *server) *server {
	t.Helper()
	s := &server{t: t, dir: t.TempDir(), addr: freeAddr(t), metricsAddr: freeAddr(t), databaseURL: first.databaseURL}
	s.start()
	require.Equal(t, string(first.caPEM), string(s.caPEM), "the replicas must share one CA")
	return s
}

// gauge reads one series of the server's metrics (exact name and labels);
// 0 when the server does not answer or has no such series yet.
func (s *server) gauge(series string) float64 {
	s.t.Helper()
	resp, err := http.Get("http://" + s.metricsAddr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			require.NoError(s.t, err, "%s", line)
			return f
		}
	}
	return 0
}

const (
	seriesSessions     = "nkudo_hub_sessions"
	seriesRelayHolders = `nkudo_hub_console_relays{role="holder"}`
	seriesRelayReaders = `nkudo_hub_console_relays{role="reader"}`
	simBooted          = "[simulated] web-1 login: "
	simRebooted        = "[simulated] reboot: restarting system"
)

// A real agent connected to replica A; its VM's console and execution
// logs are read through replica B: the one-shot answer, a followed tail
// that sees new output, the tail stopped on A when the follower leaves,
// and a clear "offline" once the agent is on no replica.
func TestConsoleThroughAnotherReplica(t *testing.T) {
	t.Parallel()
	a := newServer(t, pgtest.URL(t))
	b := newReplicaOf(t, a)
	tn := b.bootstrap("relay")
	ag := newAgent(t, a)
	ag.enroll(a.token(tn, 1))
	f := &vmFlow{t: t, srv: b, tn: tn, ag: ag, images: t.TempDir()}
	require.NoError(t, os.WriteFile(filepath.Join(f.images, "root.img"), make([]byte, 1<<20), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(f.images, "vmlinux"), []byte("kernel"), 0o600))
	f.startAgent("--hypervisor", "sim")
	eventually(t, "the agent's session on A", func() bool { return a.gauge(seriesSessions) == 1 })
	require.Zero(t, b.gauge(seriesSessions), "the agent only knows A")

	vm, p := f.createVM("web-1", filepath.Join(f.images, "root.img"), store.StatusSucceeded)
	f.waitActual(vm.ID, store.VMRunning)
	require.Contains(t, f.console(vm.ID), simBooted, "one-shot console through B")
	followToEnd(t, b, tn, p.Actions[0].ExecutionID)

	follow := f.followConsole(vm.ID)
	follow.until(t, simBooted)
	eventually(t, "the tail relayed by A", func() bool {
		return a.gauge(seriesRelayHolders) == 1 && b.gauge(seriesRelayReaders) == 1
	})
	f.act("POST", "/v1/vms/"+vm.ID.String()+"/reboot")
	follow.until(t, simRebooted)
	follow.cancel()
	eventually(t, "the tail on A stopped after the follower left B", func() bool {
		return a.gauge(seriesRelayHolders) == 0 && b.gauge(seriesRelayReaders) == 0
	})

	// The agent leaves; the store still calls the host online (the
	// offline sweep is minutes away), and B finds no replica holding it.
	ag.stop()
	eventually(t, "the session on A gone", func() bool { return a.gauge(seriesSessions) == 0 })
	r := b.do("GET", "/v1/vms/"+vm.ID.String()+"/console", tn.key, nil)
	require.Equal(t, http.StatusConflict, r.status, "%s", r.body)
	require.Contains(t, string(r.body), "host_offline")
}

// rollingPlan is a VM created (with its create-and-boot plan) during the
// rolling restart, on one agent's host.
type rollingPlan struct {
	ag   *agent
	vm   uuid.UUID
	plan plan
}

// createOn creates and boots a VM on the agent's host through s.
func createOn(t *testing.T, s *server, tn tenant, ag *agent, name string) rollingPlan {
	t.Helper()
	var out struct {
		VM   vmView `json:"vm"`
		Plan plan   `json:"plan"`
	}
	s.must(http.StatusCreated, "POST", "/v1/vms", tn.key, map[string]any{
		"name": name, "site_id": tn.site, "host_id": ag.hostID, "vcpus": 1, "memory_mib": 128,
		"disk_image": filepath.Join(imagesDir, sampleImage),
	}).into(t, &out)
	require.Len(t, out.Plan.Actions, 1)
	return rollingPlan{ag: ag, vm: out.VM.ID, plan: out.Plan}
}

// Two replicas on PostgreSQL, real agents enrolled with both addresses,
// half connected to each. Each replica is restarted in turn while plans
// are created through the other: every plan runs exactly once and every
// agent comes back.
func TestRollingRestart(t *testing.T) {
	t.Parallel()
	a := newServer(t, pgtest.URL(t))
	b := newReplicaOf(t, a)
	replicas := []*server{a, b}
	tn := a.bootstrap("rolling")

	const agents = 4
	var fleet []*agent
	for i := range agents {
		first, second := replicas[i%2], replicas[(i+1)%2]
		ag := newAgent(t, first)
		out, err := ag.enrollCmd(first.token(tn, 1), "--ca-file", first.caFile(), "--server", second.url())
		require.NoError(t, err, "%s", out)
		ag.loadIDs()
		ag.run()
		fleet = append(fleet, ag)
	}
	allBack := func() bool { return a.gauge(seriesSessions)+b.gauge(seriesSessions) == agents }
	eventually(t, "every agent connected, half to each replica", func() bool {
		return a.gauge(seriesSessions) == agents/2 && b.gauge(seriesSessions) == agents/2
	})

	var plans []rollingPlan
	round := func(s *server, tag string) {
		for i, ag := range fleet {
			plans = append(plans, createOn(t, s, tn, ag, fmt.Sprintf("vm-%s-%d", tag, i)))
		}
	}
	for i, r := range replicas {
		other := replicas[1-i]
		r.proc.signal(syscall.SIGTERM)
		round(other, fmt.Sprintf("%d-stopping", i))
		require.NoError(t, r.proc.wait(), "%s", tail(r.proc.output(), 2000))
		round(other, fmt.Sprintf("%d-down", i))
		eventually(t, "every agent on the remaining replica", func() bool { return other.gauge(seriesSessions) == agents })
		r.cli.CloseIdleConnections()
		r.restart()
		round(other, fmt.Sprintf("%d-restarted", i))
		eventually(t, "every agent back", allBack)
	}

	for _, p := range plans {
		got := a.waitPlan(tn, p.plan.ID, store.StatusSucceeded)
		// The execution log is flushed on its own path, and may land
		// just after the result.
		eventually(t, "the execution's start line", func() bool {
			starts, _ := a.runsOf(tn, got.Actions[0].ExecutionID)
			return starts > 0
		})
		require.True(t, p.ag.finished(got.Actions[0].ID), "the agent recorded the action")
		require.Equal(t, "running", p.ag.simState(p.vm))
	}
	for _, ag := range fleet {
		a.waitOnline(tn, ag.hostID)
	}
	// Every execution's log, complete by now, shows one run.
	for _, p := range plans {
		starts, resumes := a.runsOf(tn, p.plan.Actions[0].ExecutionID)
		require.Equal(t, 1, starts, "plan %s ran once", p.plan.ID)
		require.Zero(t, resumes, "plan %s was not interrupted", p.plan.ID)
	}
}
