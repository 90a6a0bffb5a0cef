package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/internal/client/clienttest"
	"github.com/kubedoio/n-kudo/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// fixedNow is the clock of every CLI run, so relative times in golden
// tables never change.
var fixedNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// harness runs the CLI in-process with its own config file.
type harness struct {
	t        *testing.T
	env      map[string]string
	terminal bool
}

func newHarness(t *testing.T) *harness {
	dir := t.TempDir()
	return &harness{t: t, env: map[string]string{
		"NKUDO_CONFIG": filepath.Join(dir, "nkudo", "config.yaml"),
		"HOME":         dir,
	}}
}

func (h *harness) configPath() string { return h.env["NKUDO_CONFIG"] }

type result struct {
	stdout, stderr string
	code           int
}

func (h *harness) runIn(stdin string, args ...string) result {
	h.t.Helper()
	var out, errOut bytes.Buffer
	a := newApp(strings.NewReader(stdin), &out, &errOut, func(k string) string { return h.env[k] })
	a.now = func() time.Time { return fixedNow }
	a.isTerminal = func(io.Reader) bool { return h.terminal }
	a.pollEvery = 10 * time.Millisecond
	a.retryFor = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := a.run(ctx, args)
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

func (h *harness) run(args ...string) result {
	h.t.Helper()
	return h.runIn("", args...)
}

func (h *harness) ok(args ...string) string {
	h.t.Helper()
	r := h.run(args...)
	require.Equal(h.t, exitOK, r.code, "nkudo %s: stderr: %s", strings.Join(args, " "), r.stderr)
	return r.stdout
}

func (h *harness) login(srv *clienttest.Server, name, key string, extra ...string) {
	h.t.Helper()
	h.ok(append([]string{"login", "--server", srv.URL, "--ca-file", srv.CAFile, "--api-key", key, "--context", name}, extra...)...)
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", strings.SplitN(t.Name(), "/", 2)[0], name+".golden")
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -update to create %s", path)
	require.Equal(t, string(want), got)
}

// fixture is a tenant with a known, fixed inventory.
type fixture struct {
	srv    *clienttest.Server
	tenant clienttest.Tenant
	vmID   uuid.UUID
	planID uuid.UUID
	execID uuid.UUID
	hostID uuid.UUID
	siteID uuid.UUID
}

// id returns the fixed id number n of the fixture.
func id(n int) uuid.UUID {
	return uuid.MustParse(fmt.Sprintf("0190c0de-0000-7000-8000-%012d", n))
}

// newFixture seeds sites, hosts, VMs and a plan with fixed ids and times
// through the real server's store (sites, VMs and plans) and the
// enrollment path (hosts and agents).
func newFixture(t *testing.T) fixture {
	t.Helper()
	ctx := context.Background()
	srv := clienttest.Start(t)
	tn := srv.NewTenant(t, "acme")
	c := srv.Client(t, tn.OperatorKey, "")
	f := fixture{srv: srv, tenant: tn, siteID: id(1), hostID: id(12), vmID: id(21), planID: id(31), execID: id(33)}

	for i, s := range []struct {
		name, desc string
		netbird    bool
	}{{"fra1", "Frankfurt rack 1", true}, {"ams1", "", false}} {
		created := fixedNow.Add(-72 * time.Hour)
		site := store.Site{ID: id(1 + i), TenantID: tn.ID, Name: s.name, Description: s.desc, CreatedAt: created, UpdatedAt: created}
		if s.netbird {
			site.NetBirdEnabled, site.NetBirdGroups = true, []string{"edge"}
		}
		require.NoError(t, srv.Store.CreateSite(ctx, site))
	}
	// Offline first: marking it offline touches every agent seen before.
	srv.EnrollHost(t, c, clienttest.HostFixture{SiteID: id(2), AgentID: id(13), HostID: id(11), Hostname: "ams-edge-1", Online: false, SeenAt: fixedNow.Add(-2 * time.Hour)})
	srv.EnrollHost(t, c, clienttest.HostFixture{SiteID: id(1), AgentID: id(14), HostID: id(12), Hostname: "fra-sim-1", Simulated: true, Online: true, SeenAt: fixedNow.Add(-30 * time.Second)})

	vmCreated := fixedNow.Add(-5 * time.Hour)
	for i, v := range []struct {
		name, desired, actual string
	}{{"web-1", store.VMRunning, store.VMRunning}, {"db-1", store.VMRunning, store.VMStopped}} {
		require.NoError(t, srv.Store.CreateVM(ctx, store.VM{
			ID: id(21 + i), TenantID: tn.ID, SiteID: id(1), HostID: id(12), Name: v.name,
			DesiredState: v.desired, ActualState: v.actual, VCPUs: 2, MemoryMiB: 1024,
			Spec: json.RawMessage(`{"disk_image":"/var/lib/images/debian.raw"}`), CreatedAt: vmCreated, UpdatedAt: vmCreated,
		}))
	}
	planAt := fixedNow.Add(-10 * time.Minute)
	vm := id(21)
	require.NoError(t, srv.Store.CreatePlan(ctx, store.Plan{
		ID: id(31), TenantID: tn.ID, SiteID: id(1), HostID: id(12), AgentID: id(14), Status: store.StatusPending,
		Actions: []store.PlanAction{{ID: id(32), PlanID: id(31), Type: store.ActionMicroVMStart, VMID: vm,
			Params: json.RawMessage(`{}`), Status: store.StatusPending, ExecutionID: id(33), UpdatedAt: planAt}},
		CreatedAt: planAt, UpdatedAt: planAt,
	}))
	return f
}

func TestGetTable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := newHarness(t)
	h.login(f.srv, "acme", f.tenant.OperatorKey)
	tests := []struct {
		golden string
		args   []string
	}{
		{"sites", []string{"get", "sites"}},
		{"hosts", []string{"get", "hosts"}},
		{"hosts-site-ams1", []string{"get", "hosts", "--site", "ams1"}},
		{"agents", []string{"get", "agents"}},
		{"vms", []string{"get", "vms", "-o", "table"}},
		{"plans", []string{"get", "plans", "--site", f.siteID.String()}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			golden(t, tt.golden, h.ok(tt.args...))
		})
	}

	t.Run("tenants", func(t *testing.T) {
		admin := newHarness(t)
		admin.login(f.srv, "root", clienttest.AdminKey)
		out := admin.ok("get", "tenants")
		// Tenant ids and ages come from the server's clock: check shape.
		require.Regexp(t, `(?m)^ID\s+NAME\s+AGE\n[0-9a-f-]{36}\s+acme\s+\S+\n$`, out)
	})
}

func TestGetJSON(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := newHarness(t)
	h.login(f.srv, "acme", f.tenant.OperatorKey)
	c := f.srv.Client(t, f.tenant.OperatorKey, "")
	for _, kind := range []string{"sites", "hosts", "agents", "vms", "plans"} {
		t.Run(kind, func(t *testing.T) {
			out := h.ok("get", kind, "-o", "json")
			var got map[string]json.RawMessage
			require.NoError(t, json.Unmarshal([]byte(out), &got))
			require.Len(t, got, 2, "exactly items and next_cursor")
			require.JSONEq(t, `""`, string(got["next_cursor"]))

			want, err := c.ListRaw(context.Background(), client.Collection(kind), client.Filter{}, client.ListOptions{Limit: 500})
			require.NoError(t, err)
			wantJSON, err := json.Marshal(want)
			require.NoError(t, err)
			require.JSONEq(t, string(wantJSON), out, "the API's list object, item for item")
		})
	}
	t.Run("site filter", func(t *testing.T) {
		var got client.Page[client.VM]
		require.NoError(t, json.Unmarshal([]byte(h.ok("get", "vms", "--site", "ams1", "-o", "json")), &got))
		require.Empty(t, got.Items)
		require.NotNil(t, got.Items, `an empty list prints "items": []`)
	})
}

var errLine = regexp.MustCompile(`^nkudo: .+ \((\w+), request [0-9a-f-]{36}\)\n$`)

func TestExitCodes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := newHarness(t)
	h.login(f.srv, "acme", f.tenant.OperatorKey)
	h.login(f.srv, "viewer", f.tenant.View)
	h.login(f.srv, "guarded", f.tenant.OperatorKey, "--read-only")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "https://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	// A context whose server is gone: written by hand, since login
	// verifies the server first.
	cfgRaw, err := os.ReadFile(h.configPath())
	require.NoError(t, err)
	cfgRaw = append(cfgRaw, []byte("    - name: gone\n      server: "+dead+"\n      ca: "+f.srv.CAFile+"\n      api-key: nk_x\n")...)
	require.NoError(t, os.WriteFile(h.configPath(), cfgRaw, 0o600))

	tests := []struct {
		name     string
		args     []string
		code     int
		apiCode  string // when set, stderr is one API error line with this code
		inStderr string
	}{
		{"unknown vm id", []string{"--context", "acme", "vm", "start", uuid.NewString()}, exitNotFound, "not_found", ""},
		{"unknown vm name", []string{"--context", "acme", "vm", "stop", "nope"}, exitNotFound, "", `no vm named "nope"`},
		{"unknown site", []string{"--context", "acme", "token", "create", "--site", "nowhere"}, exitNotFound, "", `no site named "nowhere"`},
		{"unknown execution", []string{"--context", "acme", "logs", uuid.NewString()}, exitNotFound, "not_found", ""},
		{"unknown context", []string{"--context", "nope", "get", "sites"}, exitNotFound, "", "context not found"},
		{"unknown kind", []string{"--context", "acme", "get", "widgets"}, exitUsage, "", `unknown kind "widgets"`},
		{"bad output", []string{"--context", "acme", "get", "vms", "-o", "yaml"}, exitUsage, "", "want table or json"},
		{"unknown flag", []string{"get", "vms", "--bogus"}, exitUsage, "", "unknown flag"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "", "unknown command"},
		{"missing args", []string{"vm", "start"}, exitUsage, "", "expected a VM id or name"},
		{"bad execution id", []string{"logs", "xyz"}, exitUsage, "", "not an execution id"},
		{"delete from a script needs --yes", []string{"--context", "acme", "vm", "delete", "web-1"}, exitUsage, "", "--yes"},
		{"vm create missing flags", []string{"--context", "acme", "vm", "create", "--name", "x"}, exitUsage, "", "--disk-image"},
		{"vm create over the server's vcpu bound", []string{"--context", "acme", "vm", "create", "--name", "x", "--site", "fra1", "--disk-image", "/img/a.raw", "--vcpus", "65"}, exitUsage, "", "vcpus must be 1 to 64, not 65"},
		{"vm create relative disk", []string{"--context", "acme", "vm", "create", "--name", "x", "--site", "fra1", "--disk-image", "img/a.raw"}, exitUsage, "", "disk_image \"img/a.raw\" must be an absolute path"},
		{"viewer cannot mutate", []string{"--context", "viewer", "token", "create", "--site", "fra1"}, exitAuth, "forbidden", ""},
		{"read-only context", []string{"--context", "guarded", "token", "create", "--site", "fra1"}, exitAuth, "", "read-only"},
		{"read-only context refuses vm start", []string{"--context", "guarded", "vm", "start", "web-1"}, exitAuth, "", "read-only"},
		{"server unreachable", []string{"--context", "gone", "get", "vms"}, exitUnreachable, "", "server unreachable"},
		{"logs -f gives up on an unreachable server", []string{"--context", "gone", "logs", "-f", uuid.NewString()}, exitUnreachable, "", "giving up"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.run(tt.args...)
			require.Equal(t, tt.code, r.code, "stderr: %s", r.stderr)
			require.Empty(t, r.stdout)
			if tt.apiCode != "" {
				m := errLine.FindStringSubmatch(r.stderr)
				require.NotNil(t, m, "stderr %q is not `nkudo: <message> (<code>, request <id>)`", r.stderr)
				require.Equal(t, tt.apiCode, m[1])
			}
			require.Contains(t, r.stderr, tt.inStderr)
			require.True(t, strings.HasPrefix(r.stderr, "nkudo: "), r.stderr)
		})
	}
}

func TestDeleteConfirmation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := newHarness(t)
	h.login(f.srv, "acme", f.tenant.OperatorKey)
	h.terminal = true
	for _, answer := range []string{"n\n", "\n", "maybe\n", ""} {
		r := h.runIn(answer, "vm", "delete", "web-1")
		require.Equal(t, exitError, r.code, "answer %q: %s", answer, r.stderr)
		require.Contains(t, r.stderr, "Delete vm web-1 ("+f.vmID.String()+")?")
		require.Contains(t, r.stderr, "aborted")
	}
	vm, err := f.srv.Client(t, f.tenant.OperatorKey, "").GetVM(context.Background(), f.vmID)
	require.NoError(t, err)
	require.Equal(t, client.VMRunning, vm.DesiredState, "nothing was asked of the server")
}

func TestTokenCreate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := newHarness(t)
	h.login(f.srv, "acme", f.tenant.OperatorKey)

	out := h.ok("token", "create", "--site", "fra1", "--ttl", "30m", "--max-uses", "5")
	require.Regexp(t, `(?m)^Token:    nket_\S+$`, out)
	require.Contains(t, out, "Site:     fra1 ("+f.siteID.String()+")")
	require.Contains(t, out, "Max uses: 5")

	var tok client.EnrollmentToken
	require.NoError(t, json.Unmarshal([]byte(h.ok("token", "create", "--site", f.siteID.String(), "-o", "json")), &tok))
	require.Regexp(t, `^nket_`, tok.Token)
	require.Equal(t, f.siteID, tok.SiteID)
	require.Equal(t, 1, tok.MaxUses)

	// The server refuses the ttl as invalid (400): a usage error, exit 2.
	r := h.run("token", "create", "--site", "fra1", "--ttl", "1s")
	require.Equal(t, exitUsage, r.code, r.stderr)
	require.Regexp(t, errLine, r.stderr)
}

func TestLoginAndContexts(t *testing.T) {
	t.Parallel()
	srv := clienttest.Start(t)
	acme := srv.NewTenant(t, "acme")
	globex := srv.NewTenant(t, "globex")
	h := newHarness(t)

	// A refused key saves nothing.
	r := h.run("login", "--server", srv.URL, "--ca-file", srv.CAFile, "--api-key", "nk_wrong")
	require.Equal(t, exitAuth, r.code, r.stderr)
	require.NoFileExists(t, h.configPath())
	r = h.run("login", "--server", srv.URL)
	require.Equal(t, exitUsage, r.code, r.stderr)

	h.login(srv, "acme", acme.OperatorKey)
	st, err := os.Stat(h.configPath())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	// The key may come from the environment; the default name is host:port.
	h.env["NKUDO_API_KEY"] = globex.OperatorKey
	require.Contains(t, h.ok("login", "--server", srv.URL+"/", "--ca-file", srv.CAFile), "now current")
	delete(h.env, "NKUDO_API_KEY")
	hostPort := strings.TrimPrefix(srv.URL, "https://")
	require.Equal(t, hostPort+"\n", h.ok("context", "current"))
	h.login(srv, "root", clienttest.AdminKey, "--tenant", acme.ID.String())

	_, err = srv.Client(t, acme.OperatorKey, "").CreateSite(context.Background(), client.CreateSiteRequest{Name: "acme-site"})
	require.NoError(t, err)
	_, err = srv.Client(t, globex.OperatorKey, "").CreateSite(context.Background(), client.CreateSiteRequest{Name: "globex-site"})
	require.NoError(t, err)

	list := h.ok("context", "list")
	require.Regexp(t, `(?m)^CURRENT\s+NAME\s+SERVER\s+TENANT\s+MODE$`, list)
	require.Regexp(t, `(?m)^\*\s+root\s+`+regexp.QuoteMeta(srv.URL)+`\s+`+acme.ID.String()+`\s+read-write$`, list)
	require.Regexp(t, `(?m)^\s+acme\s+`, list)

	sitesOf := func(args ...string) string { return h.ok(append(args, "get", "sites")...) }
	require.Contains(t, sitesOf(), "acme-site", "the admin key acts on the tenant it names")
	require.Contains(t, sitesOf("--context", hostPort), "globex-site")
	require.NotContains(t, sitesOf("--context", hostPort), "acme-site")

	require.Contains(t, h.ok("context", "use", "acme"), `Switched to context "acme"`)
	require.Equal(t, "acme\n", h.ok("context", "current"))
	require.Equal(t, "root\n", h.ok("--context", "root", "context", "current"))
	r = h.run("context", "use", "nope")
	require.Equal(t, exitNotFound, r.code)

	h.ok("context", "delete", "acme")
	r = h.run("context", "current")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "no current context")
	r = h.run("get", "sites")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "nkudo login")
	r = h.run("context", "delete", "acme")
	require.Equal(t, exitNotFound, r.code)
}

func TestWaitPlan(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	h := newHarness(t)
	h.login(f.srv, "acme", f.tenant.OperatorKey)
	var stderr bytes.Buffer
	a := newApp(strings.NewReader(""), &bytes.Buffer{}, &stderr, func(k string) string { return h.env[k] })
	a.pollEvery = 10 * time.Millisecond
	c, err := a.client(readAccess)
	require.NoError(t, err)
	defer c.Close()

	// The agent's result arrives while the CLI waits.
	done := make(chan error, 1)
	go func() { done <- a.waitPlan(ctx, c, f.planID, time.Minute) }()
	_, err = f.srv.Store.ApplyActionResult(ctx, id(14), store.ActionResult{ActionID: id(32), Status: store.StatusFailed, Error: "kvm missing", At: time.Now()})
	require.NoError(t, err)
	err = <-done
	require.ErrorIs(t, err, errPlanFailed)
	require.Equal(t, exitPlanFailed, exitCode(err))
	require.Contains(t, err.Error(), "kvm missing")
	require.Contains(t, err.Error(), "nkudo logs "+f.execID.String())
	require.Contains(t, stderr.String(), "MicroVMStart failed")

	err = a.waitPlan(ctx, c, uuid.New(), time.Minute)
	require.Equal(t, exitNotFound, exitCode(err))
}

func TestLogs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := newHarness(t)
	h.login(f.srv, "acme", f.tenant.View)
	host := clienttest.HostFixture{SiteID: id(1), AgentID: id(14), HostID: id(12)}
	exec := f.srv.SeedExecution(t, f.tenant.ID, host, f.vmID)
	f.srv.AppendLogs(t, exec, 1, 3)
	f.srv.Finish(t, exec, client.StatusSucceeded, "")

	line := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ info   line %d\n`
	want := regexp.MustCompile("^" + fmt.Sprintf(line, 1) + fmt.Sprintf(line, 2) + fmt.Sprintf(line, 3) + "$")
	for _, args := range [][]string{
		{"logs", exec.ExecutionID.String()},
		{"logs", "-f", exec.ExecutionID.String()},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			require.Regexp(t, want, h.ok(args...))
		})
	}
}
