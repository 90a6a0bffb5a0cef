package cloudhypervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/kubedoio/n-kudo/internal/hypervisor/cloudhypervisor/standin"
)

// callStateRow is one line of the table in the stand-in's package doc.
type callStateRow struct {
	call, state string
	cells       [3]string // v48–v52, v53+, openapi
}

// callStateTable reads the call × state table from standin/doc.go, so
// the documented table and the stand-in's behaviour cannot drift apart.
func callStateTable(t *testing.T) []callStateRow {
	t.Helper()
	f, err := os.Open(filepath.Join("standin", "doc.go"))
	require.NoError(t, err)
	defer f.Close()
	var rows []callStateRow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "//\t")
		if !ok || !strings.HasPrefix(line, "vm") {
			continue
		}
		cols := strings.Split(line, "|")
		require.Len(t, cols, 4, "table line %q", line)
		head := strings.Fields(cols[0])
		require.Len(t, head, 2, "table line %q", line)
		r := callStateRow{call: head[0], state: head[1]}
		for i := range 3 {
			r.cells[i] = strings.TrimSpace(cols[i+1])
		}
		rows = append(rows, r)
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, rows)
	return rows
}

// directVMM drives one stand-in VMM through raw API calls.
type directVMM struct {
	t      *testing.T
	h      *harness
	paths  Paths
	pid    int
	client *client
}

func newDirectVMM(t *testing.T, h *harness) *directVMM {
	d := &directVMM{t: t, h: h, paths: PathsFor(h.runtimeDir, uuid.New(), h.firmware)}
	require.NoError(t, os.MkdirAll(d.paths.Dir, 0o700))
	for _, f := range []string{d.paths.Disk, d.paths.Seed} {
		require.NoError(t, os.WriteFile(f, nil, 0o600))
	}
	d.client = newClient(d.paths.APISocket, standinWait)
	t.Cleanup(d.client.close)
	d.launch()
	return d
}

func (d *directVMM) launch() {
	pid, err := launch(d.h.bin, d.paths)
	require.NoError(d.t, err)
	d.pid = pid
	deadline := time.Now().Add(standinWait)
	for {
		if _, err := d.client.ping(context.Background()); err == nil {
			return
		}
		if !probe(pid, d.paths.APISocket).alive {
			log, _ := os.ReadFile(d.paths.VMMLog)
			require.Fail(d.t, "stand-in died on start", "vmm log: %s", log)
		}
		require.True(d.t, time.Now().Before(deadline), "stand-in did not answer")
		time.Sleep(pollInterval) // polling a condition, with a deadline
	}
}

// waitExit waits for the VMM to end, and reaps it.
func (d *directVMM) waitExit() {
	var ws unix.WaitStatus
	_, err := unix.Wait4(d.pid, &ws, 0, nil)
	require.NoError(d.t, err)
	require.True(d.t, ws.Exited() && ws.ExitStatus() == 0, "stand-in ended with %#x", uint32(ws))
}

// do sends one call and returns the status and body.
func (d *directVMM) do(call string, body any) (int, string) {
	method, in := http.MethodPut, io.Reader(nil)
	if call == "vm.info" || call == "vmm.ping" {
		method = http.MethodGet
	}
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(d.t, err)
		in = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, apiBase+"/"+call, in)
	require.NoError(d.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.client.hc.Do(req)
	require.NoError(d.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(d.t, err)
	return resp.StatusCode, string(b)
}

// setup brings a VMM with no VM to a state of the table.
func (d *directVMM) setup(state string) {
	spec := d.h.spec("table")
	if state == "bootfail" {
		spec.Kernel = filepath.Join(d.h.binDir, "no-such-vmlinux")
	}
	steps := map[string][]string{
		"none": nil, "created": {"vm.create"}, "running": {"vm.create", "vm.boot"},
		"paused": {"vm.create", "vm.boot", "vm.pause"}, "shutdown": {"vm.create", "vm.boot", "vm.shutdown"},
		"bootfail": {"vm.create", "vm.boot"}, "deleted": {"vm.create", "vm.delete"},
	}[state]
	for _, call := range steps {
		var body any
		if call == "vm.create" {
			body = BuildVMConfig(spec, d.paths)
		}
		status, answer := d.do(call, body)
		if state != "bootfail" || call != "vm.boot" {
			require.Less(d.t, status, 300, "setting up %s: %s: %s", state, call, answer)
		}
	}
}

// TestStandinCallState checks every cell of the stand-in's documented
// call × state table, in each mode.
func TestStandinCallState(t *testing.T) {
	t.Parallel()
	rows := callStateTable(t)
	modes := []struct {
		name string
		cfg  standinConfig
	}{
		{"v48", standinConfig{Version: "v48.0", Mode: standin.ModeReal}},
		{"v53", standinConfig{Version: "v53.0", Mode: standin.ModeReal}},
		{"openapi", standinConfig{Version: "v48.0", Mode: standin.ModeOpenAPI}},
	}
	for col, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.configure(func(c *standinConfig) { c.Version, c.Mode = m.cfg.Version, m.cfg.Mode })
			d := newDirectVMM(t, h)
			for _, r := range rows {
				want := r.cells[col]
				if want == "-" {
					continue
				}
				// Start from a VMM holding no VM (v53 needs two deletes
				// after a failed boot).
				d.do("vm.delete", nil)
				d.do("vm.delete", nil)
				d.setup(r.state)
				var body any
				if r.call == "vm.create" {
					body = BuildVMConfig(h.spec("again"), d.paths)
				}
				status, answer := d.do(r.call, body)
				wantStatus, wantMsg, _ := strings.Cut(want, " ")
				assert.Equal(t, wantStatus, strconv.Itoa(status), "%s in state %s: %s", r.call, r.state, answer)
				assert.Contains(t, answer, wantMsg, "%s in state %s", r.call, r.state)
				if status >= 400 && m.cfg.Mode == standin.ModeReal {
					var msgs []string
					assert.NoError(t, json.Unmarshal([]byte(answer), &msgs), "errors are JSON arrays of strings: %s", answer)
				}
				ends := r.call == "vmm.shutdown" || (r.call == "vm.power-button" && r.state == "running" && m.cfg.Mode == standin.ModeReal)
				if ends {
					d.waitExit()
					d.launch()
				}
			}
		})
	}
}
