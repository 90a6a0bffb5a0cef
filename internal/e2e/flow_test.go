package e2e_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/pgtest"
)

func TestMainFlowSQLite(t *testing.T) {
	t.Parallel()
	mainFlow(t, "")
}

func TestMainFlowPostgres(t *testing.T) {
	t.Parallel()
	mainFlow(t, pgtest.URL(t))
}

// mainFlow: enroll, push a plan to a live agent, deliver a plan created
// while the agent was stopped, read and follow its logs, refuse a report
// on another agent's action, and revoke.
func mainFlow(t *testing.T, databaseURL string) {
	srv := newServer(t, databaseURL)
	st := srv.openStore()
	tn := srv.bootstrap("acme")

	ag := newAgent(t, srv)
	ag.enroll(srv.token(tn, 1))
	ag.run()
	srv.waitOnline(tn, ag.hostID)

	// Pushed, not polled: the heartbeat interval is 5 minutes.
	vm := createVM(t, st, tn, ag.hostID, "web-1")
	p := srv.createPlan(tn, ag.hostID, [2]any{store.ActionMicroVMCreate, vm})
	p = srv.waitPlan(tn, p.ID, store.StatusSucceeded)
	require.Equal(t, "running", ag.simState(vm))
	eventually(t, "vm reported running", func() bool {
		var v struct {
			ActualState string `json:"actual_state"`
		}
		srv.must(http.StatusOK, "GET", "/v1/vms/"+vm.String(), tn.key, nil).into(t, &v)
		return v.ActualState == store.VMRunning
	})
	exec := p.Actions[0].ExecutionID
	eventually(t, "execution log stored", func() bool {
		starts, _ := srv.runsOf(tn, exec)
		return starts == 1 && len(srv.logs(tn, exec)) >= 3
	})
	followToEnd(t, srv, tn, exec)

	// A plan created while the agent is stopped runs when it comes back.
	ag.stop()
	p2 := srv.createPlan(tn, ag.hostID, [2]any{store.ActionMicroVMStop, vm})
	require.Equal(t, store.StatusPending, srv.getPlan(tn, p2.ID).Status)
	ag.run()
	srv.waitPlan(tn, p2.ID, store.StatusSucceeded)
	require.Equal(t, "stopped", ag.simState(vm))
	starts, resumes := srv.runsOf(tn, p.Actions[0].ExecutionID)
	require.Equal(t, [2]int{1, 0}, [2]int{starts, resumes}, "the first plan's action ran again after the restart")

	// A second agent cannot report on the first one's actions.
	other := newAgent(t, srv)
	other.enroll(srv.token(tn, 1))
	ag.stop() // keep the plan from running while the intruder tries
	p3 := srv.createPlan(tn, ag.hostID, [2]any{store.ActionMicroVMStart, vm})
	intruder := dialAgent(t, srv, other)
	intruder.hello()
	intruder.send(&agentproto.ActionResult{PlanID: p3.ID, ActionID: p3.Actions[0].ID, ExecutionID: p3.Actions[0].ExecutionID,
		Status: agentproto.ResultFailed, Error: "forged", At: time.Now().UTC()})
	require.Equal(t, agentproto.TypeError, intruder.nextNonAck().Type)
	require.NotEqual(t, store.StatusFailed, srv.getPlan(tn, p3.ID).Status)
	intruder.close()
	ag.run()
	srv.waitPlan(tn, p3.ID, store.StatusSucceeded)

	// Revocation disconnects the live agent at once; it exits for good.
	srv.must(http.StatusOK, "POST", "/v1/agents/"+ag.id.String()+"/revoke", tn.key, nil)
	err := ag.proc.wait()
	require.Error(t, err, "a revoked agent must exit non-zero")
	require.Contains(t, strings.ToLower(ag.proc.output()), "revoked")
	// Its next handshake is refused.
	status := handshakeStatus(t, srv, ag)
	require.Equal(t, http.StatusForbidden, status)
}

// followToEnd follows a finished execution's log over SSE and requires
// every stored line, in order, then the end event.
func followToEnd(t *testing.T, srv *server, tn tenant, exec uuid.UUID) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", srv.url()+"/v1/executions/"+exec.String()+"/logs?follow=true", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tn.key)
	resp, err := srv.cli.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	var got []int64
	ended := false
	for sc.Scan() && !ended {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "data: ") && !ended:
			var l logLine
			if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &l) == nil && l.Seq > 0 {
				got = append(got, l.Seq)
			}
		case line == "event: end":
			ended = true
		}
	}
	require.True(t, ended, "stream did not end")
	// Read after the end: lines may still have been landing when the
	// follow began (they are flushed apart from the result).
	stored := srv.logs(tn, exec)
	want := make([]int64, 0, len(stored))
	for _, l := range stored {
		want = append(want, l.Seq)
	}
	require.Equal(t, want, got)
}

// TestServerKilledMidPlan: the server dies (SIGKILL) after handing a plan
// to the agent and before any result arrives; the agent runs the plan
// alone, and after the restart the plan finishes with every action run
// exactly once.
func TestServerKilledMidPlan(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "")
	st := srv.openStore()
	tn := srv.bootstrap("acme")
	ag := newAgent(t, srv)
	ag.enroll(srv.token(tn, 1))
	ag.run()
	srv.waitOnline(tn, ag.hostID)
	vm := createVM(t, st, tn, ag.hostID, "db-1")

	// Freeze the agent so the plan waits in its socket, then kill the
	// server: the agent reads the plan, then finds the server gone.
	ag.proc.signal(syscall.SIGSTOP)
	p := srv.createPlan(tn, ag.hostID,
		[2]any{store.ActionMicroVMCreate, vm}, [2]any{store.ActionMicroVMStop, vm}, [2]any{store.ActionMicroVMStart, vm})
	// The API answers once the plan is queued for the session; the frame
	// must be on the wire before the server dies.
	eventually(t, "plan frame written", func() bool { return srv.plansSent() >= 1 })
	srv.kill9()
	ag.proc.signal(syscall.SIGCONT)
	// Wait until the agent ran all three actions while the server was down.
	eventually(t, "agent ran the plan alone", func() bool {
		return strings.Count(ag.proc.output(), "action succeeded") >= 3
	})
	require.Equal(t, "running", ag.simState(vm))

	srv.restart()
	p = srv.waitPlan(tn, p.ID, store.StatusSucceeded)
	for _, a := range p.Actions {
		require.Equal(t, store.StatusSucceeded, a.Status)
		eventually(t, "action log stored", func() bool {
			starts, _ := srv.runsOf(tn, a.ExecutionID)
			return starts > 0
		})
		starts, resumes := srv.runsOf(tn, a.ExecutionID)
		require.Equal(t, [2]int{1, 0}, [2]int{starts, resumes}, "action %s (%s) ran more than once", a.ID, a.Type)
	}
}

// TestAgentKilledBeforeReporting: the agent finishes an action while the
// server is unreachable and is killed (SIGKILL) before it could report;
// after both restart, the result is reported once, the action is not run
// again, and the agent's state files are intact.
func TestAgentKilledBeforeReporting(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "")
	st := srv.openStore()
	tn := srv.bootstrap("acme")
	ag := newAgent(t, srv)
	ag.enroll(srv.token(tn, 1))
	ag.run()
	srv.waitOnline(tn, ag.hostID)
	vm := createVM(t, st, tn, ag.hostID, "cache-1")

	ag.proc.signal(syscall.SIGSTOP)
	p := srv.createPlan(tn, ag.hostID, [2]any{store.ActionMicroVMCreate, vm})
	// The API answers once the plan is queued for the session; the frame
	// must be on the wire before the server dies.
	eventually(t, "plan frame written", func() bool { return srv.plansSent() >= 1 })
	srv.kill9()
	ag.proc.signal(syscall.SIGCONT)
	// Kill it once the result is durable in its action cache: the log
	// line "action succeeded" comes just before that write.
	eventually(t, "agent recorded the result", func() bool { return ag.finished(p.Actions[0].ID) })
	ag.proc.kill()
	require.Equal(t, "running", ag.simState(vm))

	// Every state file the agent left behind is complete JSON.
	entries, err := os.ReadDir(ag.stateDir)
	require.NoError(t, err)
	jsonFiles := 0
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".json" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(ag.stateDir, e.Name()))
		require.NoError(t, err)
		require.True(t, json.Valid(raw), "%s is not valid JSON after SIGKILL", e.Name())
		jsonFiles++
	}
	require.NotZero(t, jsonFiles)

	srv.restart()
	ag.run()
	p = srv.waitPlan(tn, p.ID, store.StatusSucceeded)
	exec := p.Actions[0].ExecutionID
	eventually(t, "action log stored", func() bool {
		starts, _ := srv.runsOf(tn, exec)
		return starts > 0
	})
	starts, resumes := srv.runsOf(tn, exec)
	require.Equal(t, [2]int{1, 0}, [2]int{starts, resumes}, "the finished action ran again")
	got, err := st.GetExecution(context.Background(), tn.id, exec)
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, got.Status)
	// The log lines were stored once each, without gaps.
	for i, l := range srv.logs(tn, exec) {
		require.Equal(t, int64(i+1), l.Seq)
	}
}

// TestEnrollCLI: two concurrent enrollments with a one-time token, exactly
// one wins; unknown and expired tokens fail with a clear error; the CA can
// be trusted by file or by fingerprint.
func TestEnrollCLI(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "")
	st := srv.openStore()
	tn := srv.bootstrap("acme")
	caPEM, err := os.ReadFile(srv.caFile())
	require.NoError(t, err)
	fp := caFingerprint(t, caPEM)

	token := srv.token(tn, 1)
	a, b := newAgent(t, srv), newAgent(t, srv)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	outs := make([]string, 2)
	for i, ag := range []*agent{a, b} {
		trust := []string{"--ca-file", srv.caFile()}
		if i == 1 {
			trust = []string{"--ca-fingerprint", fp}
		}
		wg.Go(func() { outs[i], errs[i] = ag.enrollCmd(token, trust...) })
	}
	wg.Wait()
	require.True(t, (errs[0] == nil) != (errs[1] == nil), "exactly one enrollment must win: %v / %v\n%s\n%s", errs[0], errs[1], outs[0], outs[1])
	for i := range errs {
		if errs[i] != nil {
			require.Contains(t, outs[i], "token_invalid", "the loser must say why")
		}
	}

	// Fingerprint trust alone is enough to enroll.
	c := newAgent(t, srv)
	out, err := c.enrollCmd(srv.token(tn, 1), "--ca-fingerprint", fp)
	require.NoError(t, err, "%s", out)

	expired := "nket_e2e-expired-token"
	sum := sha256.Sum256([]byte(expired))
	past := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	require.NoError(t, st.CreateEnrollmentToken(context.Background(), store.EnrollmentToken{
		ID: store.NewID(), TenantID: tn.id, SiteID: tn.site, Hash: sum[:], ExpiresAt: past, MaxUses: 1, CreatedAt: past.Add(-time.Minute),
	}))
	for _, tok := range []string{"nket_no-such-token", expired} {
		d := newAgent(t, srv)
		out, err := d.enrollCmd(tok, "--ca-file", srv.caFile())
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%s", out)
		require.NotZero(t, ee.ExitCode())
		require.Contains(t, out, "token_invalid")
		_, statErr := os.Stat(filepath.Join(d.stateDir, "identity.json"))
		require.True(t, errors.Is(statErr, os.ErrNotExist), "a refused enrollment left an identity behind")
	}
}

func caFingerprint(t testing.TB, caPEM []byte) string {
	t.Helper()
	block, _ := pem.Decode(caPEM)
	require.NotNil(t, block)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return pki.FingerprintOf(cert)
}

// wireAgent is a hand-written agent: it speaks the protocol with an
// enrolled agent's certificate, to do what the real agent never would.
type wireAgent struct {
	t    testing.TB
	conn *websocket.Conn
	tr   *http.Transport
	seq  uint64
}

func agentTLS(t testing.TB, srv *server, ag *agent) *tls.Config {
	t.Helper()
	certPEM, err := os.ReadFile(filepath.Join(ag.stateDir, "cert.pem"))
	require.NoError(t, err)
	key, err := pki.LoadKeyFile(filepath.Join(ag.stateDir, "key.pem"))
	require.NoError(t, err)
	cert, err := pki.KeyPair(certPEM, key)
	require.NoError(t, err)
	cfg, err := pki.NewCertStore(cert).ClientTLSConfig(srv.caPEM)
	require.NoError(t, err)
	return cfg
}

func dialAgent(t testing.TB, srv *server, ag *agent) *wireAgent {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: agentTLS(t, srv, ag)}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "wss://"+srv.addr+"/v1/agent/connect", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: tr}, Subprotocols: []string{agentproto.Subprotocol},
	})
	require.NoError(t, err)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	w := &wireAgent{t: t, conn: conn, tr: tr}
	t.Cleanup(w.close)
	return w
}

// handshakeStatus dials the channel with the agent's certificate and
// returns the HTTP status of the refusal (101 if accepted).
func handshakeStatus(t testing.TB, srv *server, ag *agent) int {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: agentTLS(t, srv, ag)}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "wss://"+srv.addr+"/v1/agent/connect", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: tr}, Subprotocols: []string{agentproto.Subprotocol},
	})
	if err == nil {
		_ = conn.CloseNow()
		return http.StatusSwitchingProtocols
	}
	require.NotNil(t, resp, "%v", err)
	resp.Body.Close()
	return resp.StatusCode
}

func (w *wireAgent) close() {
	_ = w.conn.CloseNow()
	w.tr.CloseIdleConnections()
}

func (w *wireAgent) hello() {
	w.t.Helper()
	w.send(&agentproto.Hello{
		AgentVersion: "e2e", CapabilityVersion: agentproto.CapabilityVersion,
		Facts: agentproto.HostFacts{Hostname: "intruder", OS: "linux", Kernel: "6.8", Arch: "amd64", CPUCores: 1,
			MemoryTotalBytes: 1 << 30, Hypervisor: agentproto.Hypervisor{Kind: agentproto.HypervisorSim, Simulated: true}, AgentVersion: "e2e"},
		NetBird: agentproto.NetBirdStatus{State: agentproto.NetBirdDisabled},
	})
	require.Equal(w.t, agentproto.TypeHelloAck, w.nextNonAck().Type)
}

func (w *wireAgent) send(m agentproto.Message) {
	w.t.Helper()
	w.seq++
	frame, err := agentproto.Encode(m.MessageType(), "", w.seq, 0, m)
	require.NoError(w.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(w.t, w.conn.Write(ctx, websocket.MessageText, frame))
}

func (w *wireAgent) nextNonAck() agentproto.Envelope {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for {
		_, frame, err := w.conn.Read(ctx)
		require.NoError(w.t, err)
		env, err := agentproto.Decode(frame)
		require.NoError(w.t, err)
		switch env.Type {
		case agentproto.TypeLogAck, agentproto.TypeResultAck, agentproto.TypePlan:
			continue
		}
		return env
	}
}

// TestServerGracefulShutdown: SIGTERM with a live agent and an open log
// stream; the server ends the stream, closes the session with going-away
// and exits cleanly at once, and the agent comes back after the restart.
func TestServerGracefulShutdown(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "")
	st := srv.openStore()
	tn := srv.bootstrap("acme")
	ag := newAgent(t, srv)
	ag.enroll(srv.token(tn, 1))
	ag.run()
	srv.waitOnline(tn, ag.hostID)
	vm := createVM(t, st, tn, ag.hostID, "svc-1")

	// A stream that cannot end by itself: its execution belongs to an
	// agent that never runs.
	idle := newAgent(t, srv)
	idle.enroll(srv.token(tn, 1))
	idleVM := createVM(t, st, tn, idle.hostID, "idle-1")
	pending := srv.createPlan(tn, idle.hostID, [2]any{store.ActionMicroVMCreate, idleVM})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", srv.url()+"/v1/executions/"+pending.Actions[0].ExecutionID.String()+"/logs?follow=true", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tn.key)
	resp, err := srv.cli.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// Were the stream to hold http.Server.Shutdown past its timeout, the
	// server would exit non-zero.
	srv.proc.signal(syscall.SIGTERM)
	require.NoError(t, srv.proc.wait(), "nkudo-server must exit 0 on SIGTERM")
	require.Contains(t, srv.proc.output(), "stopped")
	require.False(t, ag.proc.exited(), "going-away must not stop the agent")

	srv.restart()
	p := srv.createPlan(tn, ag.hostID, [2]any{store.ActionMicroVMCreate, vm})
	srv.waitPlan(tn, p.ID, store.StatusSucceeded)
	require.Equal(t, "running", ag.simState(vm))
}
