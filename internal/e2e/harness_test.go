package e2e_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/pgtest"
	"github.com/kubedoio/n-kudo/internal/store/postgres"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
)

// Paths of the binaries built once by TestMain, and the image directory
// every agent runs with (--image-dir), holding sampleImage.
var (
	serverBin string
	agentBin  string
	imagesDir string
)

// sampleImage is the disk image of the VMs the harness seeds.
const sampleImage = "alpine.raw"

const adminKey = "e2e-admin-key-0123456789abcdef"

// sealKey is NKUDO_PKI_SEAL_KEY: 32 bytes, base64.
const sealKey = "ZTJlLXNlYWwta2V5LTAxMjM0NTY3ODlhYmNkZWYwMTI="

// waitFor bounds every poll of the tests. Processes built with -race on a
// busy 2-core machine are slow; nothing here waits for it unless broken.
const waitFor = 90 * time.Second

func TestMain(m *testing.M) {
	// The test binary doubles as the stand-in `netbird` executable that
	// agents run (see netbird_test.go).
	if filepath.Base(os.Args[0]) == "netbird" {
		os.Exit(netbirdStandin(os.Args[1:]))
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nkudo-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating bin dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	serverBin = filepath.Join(dir, "nkudo-server")
	agentBin = filepath.Join(dir, "nkudo-agent")
	imagesDir = filepath.Join(dir, "images")
	if err := os.Mkdir(imagesDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "creating image dir:", err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(imagesDir, sampleImage), make([]byte, 4096), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "creating sample image:", err)
		return 1
	}
	for bin, pkg := range map[string]string{serverBin: "./cmd/nkudo-server", agentBin: "./cmd/nkudo-agent"} {
		args := []string{"build", "-o", bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	return pgtest.Wrap(m).Run()
}

// proc is a child process with its output in a file.
type proc struct {
	t       testing.TB
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

func start(t testing.TB, logPath string, env []string, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	require.NoError(t, cmd.Start())
	p := &proc{t: t, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- %s output (tail) ---\n%s", filepath.Base(logPath), tail(p.output(), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// kill sends SIGKILL (also to a stopped process) and waits for the exit.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig))
}

// wait waits for the process to exit on its own and returns its error.
func (p *proc) wait() error {
	p.t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(waitFor):
		require.FailNow(p.t, "process did not exit", "%s", tail(p.output(), 2000))
		return nil
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out waiting: "+what)
		}
		<-tick.C
	}
}

// server is one nkudo-server process that can be killed and restarted on
// the same address and data.
type server struct {
	t           testing.TB
	dir         string
	addr        string
	metricsAddr string
	databaseURL string
	// env is added to the server's environment after the defaults of
	// start, so it can override them.
	env   []string
	proc  *proc
	cli   *http.Client
	caPEM []byte
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func newServer(t testing.TB, databaseURL string) *server {
	t.Helper()
	s := &server{t: t, dir: t.TempDir(), addr: freeAddr(t), metricsAddr: freeAddr(t), databaseURL: databaseURL}
	s.start()
	return s
}

func (s *server) url() string { return "https://" + s.addr }

func (s *server) caFile() string { return filepath.Join(s.dir, "data", "pki", "ca.crt") }

func (s *server) start() {
	s.t.Helper()
	env := []string{
		"NKUDO_ADMIN_KEY=" + adminKey,
		// A heartbeat far beyond any wait of the tests: whatever reaches
		// an agent here is pushed, never picked up by a heartbeat.
		"NKUDO_HEARTBEAT_INTERVAL=5m",
		"NKUDO_HEARTBEAT_OFFLINE_AFTER=20m",
		// Replicas on PostgreSQL share their CA through it, sealed.
		"NKUDO_PKI_SEAL_KEY=" + sealKey,
		"NKUDO_LOG_LEVEL=debug",
	}
	env = append(env, s.env...)
	args := []string{"serve", "--addr", s.addr, "--data-dir", filepath.Join(s.dir, "data"), "--metrics-addr", s.metricsAddr}
	if s.databaseURL != "" {
		args = append(args, "--database-url", s.databaseURL)
	}
	s.proc = start(s.t, filepath.Join(s.dir, "server.log"), env, serverBin, args...)
	eventually(s.t, "server ready", func() bool {
		if s.proc.exited() {
			require.FailNow(s.t, "server exited", "%s", s.proc.output())
		}
		if s.cli == nil {
			pem, err := os.ReadFile(s.caFile())
			if err != nil {
				return false
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return false
			}
			s.caPEM = pem
			s.cli = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
			}}
			s.t.Cleanup(s.cli.CloseIdleConnections)
		}
		resp, err := s.cli.Get(s.url() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// plansSent reads how many plan frames this server process has written to
// agent connections, from its Prometheus metrics.
func (s *server) plansSent() int {
	s.t.Helper()
	return int(s.gauge(`nkudo_hub_frames_sent_total{type="plan"}`))
}

// kill9 kills the server with SIGKILL: no shutdown, no flush.
func (s *server) kill9() {
	s.proc.kill()
	s.cli.CloseIdleConnections()
}

func (s *server) restart() {
	s.t.Helper()
	s.start()
}

// openStore opens the server's database from the test process, to seed
// what the API cannot create yet (VMs) and to inspect results.
func (s *server) openStore() store.Store {
	s.t.Helper()
	ctx := context.Background()
	var st store.Store
	var err error
	if s.databaseURL != "" {
		st, err = postgres.Open(ctx, s.databaseURL)
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(s.dir, "data", "nkudo.db"))
	}
	require.NoError(s.t, err)
	s.t.Cleanup(func() { _ = st.Close() })
	return st
}

type apiResp struct {
	status int
	body   []byte
}

func (r apiResp) into(t testing.TB, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "%s", r.body)
}

func (s *server) do(method, path, key string, body any, header ...string) apiResp {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(s.t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.url()+path, rd)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.cli.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return apiResp{status: resp.StatusCode, body: raw}
}

func (s *server) must(status int, method, path, key string, body any) apiResp {
	s.t.Helper()
	r := s.do(method, path, key, body)
	require.Equal(s.t, status, r.status, "%s %s: %s", method, path, r.body)
	return r
}

// tenant is a bootstrapped tenant with an admin key and one site.
type tenant struct {
	id   uuid.UUID
	key  string
	site uuid.UUID
}

func (s *server) bootstrap(name string) tenant {
	s.t.Helper()
	var tn struct{ ID uuid.UUID }
	s.must(http.StatusCreated, "POST", "/v1/tenants", adminKey, map[string]string{"name": name}).into(s.t, &tn)
	var key struct{ Key string }
	s.must(http.StatusCreated, "POST", "/v1/tenants/"+tn.ID.String()+"/api-keys", adminKey,
		map[string]string{"name": "ops", "role": "admin"}).into(s.t, &key)
	var site struct{ ID uuid.UUID }
	s.must(http.StatusCreated, "POST", "/v1/sites", key.Key, map[string]string{"name": name + "-site"}).into(s.t, &site)
	return tenant{id: tn.ID, key: key.Key, site: site.ID}
}

func (s *server) token(tn tenant, uses int) string {
	s.t.Helper()
	var out struct{ Token string }
	s.must(http.StatusCreated, "POST", "/v1/sites/"+tn.site.String()+"/enrollment-tokens", tn.key,
		map[string]any{"max_uses": uses}).into(s.t, &out)
	return out.Token
}

// agent is one nkudo-agent installation: a state dir and a runtime dir.
type agent struct {
	t        testing.TB
	srv      *server
	dir      string
	stateDir string
	runtime  string
	proc     *proc
	id       uuid.UUID
	hostID   uuid.UUID
}

func newAgent(t testing.TB, srv *server) *agent {
	dir := t.TempDir()
	return &agent{t: t, srv: srv, dir: dir, stateDir: filepath.Join(dir, "state"), runtime: filepath.Join(dir, "runtime")}
}

// enrollCmd runs `nkudo-agent enroll` and returns its exit error and output.
func (a *agent) enrollCmd(token string, trust ...string) (string, error) {
	a.t.Helper()
	args := append([]string{"enroll", "--server", a.srv.url(), "--token", token, "--state-dir", a.stateDir,
		"--hostname", "edge-" + uuid.NewString()[:8]}, trust...)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	out, err := exec.CommandContext(ctx, agentBin, args...).CombinedOutput()
	return string(out), err
}

// enroll enrolls with --ca-file and records the agent's ids.
func (a *agent) enroll(token string) {
	a.t.Helper()
	out, err := a.enrollCmd(token, "--ca-file", a.srv.caFile())
	require.NoError(a.t, err, "%s", out)
	a.loadIDs()
}

func (a *agent) loadIDs() {
	a.t.Helper()
	raw, err := os.ReadFile(filepath.Join(a.stateDir, "identity.json"))
	require.NoError(a.t, err)
	var info struct {
		AgentID uuid.UUID `json:"agent_id"`
		HostID  uuid.UUID `json:"host_id"`
	}
	require.NoError(a.t, json.Unmarshal(raw, &info), "%s", raw)
	require.NotEqual(a.t, uuid.Nil, info.AgentID, "%s", raw)
	a.id, a.hostID = info.AgentID, info.HostID
}

func (a *agent) run() {
	a.t.Helper()
	a.proc = start(a.t, filepath.Join(a.dir, "agent.log"), nil, agentBin,
		"run", "--state-dir", a.stateDir, "--runtime-dir", a.runtime, "--hypervisor", "sim", "--image-dir", imagesDir, "--log-level", "debug")
}

// stop stops the agent gracefully (SIGTERM) and waits for it.
func (a *agent) stop() {
	a.t.Helper()
	a.proc.signal(syscall.SIGTERM)
	require.NoError(a.t, a.proc.wait(), "%s", tail(a.proc.output(), 2000))
}

// finished reports whether the agent's action cache holds a result for
// the action.
func (a *agent) finished(action uuid.UUID) bool {
	raw, err := os.ReadFile(filepath.Join(a.stateDir, "actions.json"))
	if err != nil {
		return false
	}
	var f struct {
		Entries []struct {
			ActionID   uuid.UUID `json:"action_id"`
			FinishedAt time.Time `json:"finished_at"`
		} `json:"entries"`
	}
	if json.Unmarshal(raw, &f) != nil {
		return false
	}
	for _, e := range f.Entries {
		if e.ActionID == action && !e.FinishedAt.IsZero() {
			return true
		}
	}
	return false
}

// simState reads the sim hypervisor's view of a VM ("" when unknown).
func (a *agent) simState(vm uuid.UUID) string {
	raw, err := os.ReadFile(filepath.Join(a.runtime, "sim-vms.json"))
	if err != nil {
		return ""
	}
	var f struct {
		VMs []struct {
			Spec struct {
				ID uuid.UUID `json:"id"`
			} `json:"spec"`
			State string `json:"state"`
		} `json:"vms"`
	}
	if json.Unmarshal(raw, &f) != nil {
		return ""
	}
	for _, v := range f.VMs {
		if v.Spec.ID == vm {
			return v.State
		}
	}
	return ""
}

// hostOnline polls the API until the agent's host is online.
func (s *server) waitOnline(tn tenant, host uuid.UUID) {
	s.t.Helper()
	eventually(s.t, "host online", func() bool {
		var h struct{ Online bool }
		r := s.do("GET", "/v1/hosts/"+host.String(), tn.key, nil)
		if r.status != http.StatusOK {
			return false
		}
		r.into(s.t, &h)
		return h.Online
	})
}

// createVM seeds a VM record on the agent's host.
func createVM(t testing.TB, st store.Store, tn tenant, host uuid.UUID, name string) uuid.UUID {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	vm := store.VM{
		ID: store.NewID(), TenantID: tn.id, SiteID: tn.site, HostID: host, Name: name,
		DesiredState: store.VMRunning, ActualState: store.VMCreating, VCPUs: 1, MemoryMiB: 128,
		Spec: json.RawMessage(fmt.Sprintf(`{"disk_image":%q}`, filepath.Join(imagesDir, sampleImage))), CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(t, st.CreateVM(context.Background(), vm))
	return vm.ID
}

type plan struct {
	ID      uuid.UUID `json:"id"`
	Status  string    `json:"status"`
	Actions []struct {
		ID          uuid.UUID `json:"id"`
		Type        string    `json:"type"`
		Status      string    `json:"status"`
		ExecutionID uuid.UUID `json:"execution_id"`
		Error       string    `json:"error"`
	} `json:"actions"`
}

func (s *server) createPlan(tn tenant, host uuid.UUID, actions ...[2]any) plan {
	s.t.Helper()
	list := make([]map[string]any, 0, len(actions))
	for _, a := range actions {
		list = append(list, map[string]any{"type": a[0], "vm_id": a[1]})
	}
	var p plan
	s.must(http.StatusCreated, "POST", "/v1/sites/"+tn.site.String()+"/plans", tn.key,
		map[string]any{"host_id": host, "actions": list}).into(s.t, &p)
	return p
}

func (s *server) getPlan(tn tenant, id uuid.UUID) plan {
	s.t.Helper()
	var p plan
	s.must(http.StatusOK, "GET", "/v1/plans/"+id.String(), tn.key, nil).into(s.t, &p)
	return p
}

func (s *server) waitPlan(tn tenant, id uuid.UUID, status string) plan {
	s.t.Helper()
	var p plan
	eventually(s.t, "plan "+status, func() bool {
		p = s.getPlan(tn, id)
		require.False(s.t, status != store.StatusFailed && p.Status == store.StatusFailed, "plan failed: %+v", p)
		return p.Status == status
	})
	return p
}

type logLine struct {
	Seq     int64  `json:"seq"`
	Stream  string `json:"stream"`
	Message string `json:"message"`
}

func (s *server) logs(tn tenant, exec uuid.UUID) []logLine {
	s.t.Helper()
	var page struct{ Items []logLine }
	s.must(http.StatusOK, "GET", "/v1/executions/"+exec.String()+"/logs", tn.key, nil).into(s.t, &page)
	return page.Items
}

// runsOf counts how often the agent started the action of an execution,
// from the lines the executor writes when it starts one ("<verb> vm …
// (action …)") and when it resumes an interrupted one.
func (s *server) runsOf(tn tenant, exec uuid.UUID) (starts, resumes int) {
	for _, l := range s.logs(tn, exec) {
		if strings.Contains(l.Message, "(action ") {
			starts++
		}
		if strings.HasPrefix(l.Message, "resuming ") {
			resumes++
		}
	}
	return starts, resumes
}
