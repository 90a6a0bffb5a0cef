package tui

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/data/datatest"
	"github.com/kubedoio/n-kudo/tui/fleet"
)

// flow runs the console as a real bubbletea program on a Fake.
type flow struct {
	t    *testing.T
	fake *datatest.Fake
	tm   *teatest.TestModel
}

func startFlow(t *testing.T, o Options) *flow {
	t.Helper()
	fake := datatest.New(datatest.Standard())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	o.Source = fake
	o.ContextName, o.Tenant, o.NoColor = "dev", "acme", true
	o.Now = func() time.Time { return datatest.Epoch }
	tm := teatest.NewTestModel(t, New(ctx, o), teatest.WithInitialTermSize(100, 30))
	f := &flow{t: t, fake: fake, tm: tm}
	f.waitFor("connected", "edge-ams")
	return f
}

// waitFor polls the program's output (ANSI stripped) until every want has
// appeared since the previous wait.
func (f *flow) waitFor(want ...string) {
	f.t.Helper()
	var seen bytes.Buffer
	teatest.WaitFor(f.t, f.tm.Output(), func(b []byte) bool {
		seen.Reset()
		seen.WriteString(ansi.Strip(string(b)))
		for _, w := range want {
			if !strings.Contains(seen.String(), w) {
				return false
			}
		}
		return true
	}, teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(5*time.Millisecond))
}

func (f *flow) typ(s string) { f.tm.Type(s) }

func (f *flow) key(t tea.KeyType) { f.tm.Send(tea.KeyMsg{Type: t}) }

func (f *flow) quit() Model {
	f.t.Helper()
	f.tm.Send(tea.KeyMsg{Type: tea.KeyCtrlC})
	fm := f.tm.FinalModel(f.t, teatest.WithFinalTimeout(5*time.Second))
	m, ok := fm.(Model)
	require.True(f.t, ok)
	return m
}

func planEvent(id, status string, vmID, actionType string) data.Event {
	return data.Event{Type: data.EventPlanUpdated, Plan: &data.Plan{
		ID: id, SiteID: "site-ams", Status: status, CreatedAt: datatest.Epoch,
		Actions: []data.Action{{ID: id + "-a1", Type: actionType, VMID: vmID, Status: status, ExecutionID: "exec-" + id}},
	}}
}

func TestFlowDrillStopWithConfirmation(t *testing.T) {
	t.Parallel()
	f := startFlow(t, Options{})
	f.key(tea.KeyEnter)
	f.waitFor("sites › edge-ams", "ams-01", "ams-02")
	f.key(tea.KeyEnter)
	f.waitFor("edge-ams › ams-01", "web-1", "web-2")

	f.typ("x")
	f.waitFor("Stop VM web-1?")
	require.Empty(t, f.fake.Calls(), "nothing happens before the answer")
	f.typ("y")
	f.waitFor("stop web-1: pending")
	require.Equal(t, []datatest.Call{{Op: "stop", Target: "vm-web-1"}}, f.fake.Calls())

	// The plan's progress comes from pushed events, not from polling.
	f.fake.Push(planEvent("plan-1", data.StatusRunning, "vm-web-1", "MicroVMStop"))
	f.waitFor("stop web-1: running", "stop running")
	f.fake.Push(data.Event{Type: data.EventVMUpdated, VM: &data.VM{
		ID: "vm-web-1", Name: "web-1", SiteID: "site-ams", HostID: "host-ams-01",
		DesiredState: "stopped", ActualState: "stopped", VCPUs: 2, MemoryMiB: 2048,
	}})
	f.fake.Push(planEvent("plan-1", data.StatusSucceeded, "vm-web-1", "MicroVMStop"))
	f.waitFor("stop web-1: succeeded", "stop succeeded")

	m := f.quit()
	v, ok := m.fleet.VM("vm-web-1")
	require.True(t, ok)
	require.Equal(t, "stopped", v.ActualState)
}

func TestFlowDeleteAsksAndCanBeRefused(t *testing.T) {
	t.Parallel()
	f := startFlow(t, Options{})
	f.typ(":vms")
	f.key(tea.KeyEnter)
	f.waitFor("vms 7")
	f.typ("D")
	f.waitFor("Delete VM batch-1?", "cannot be undone")
	f.typ("n")
	f.waitFor("delete cancelled")
	require.Empty(t, f.fake.Calls())
	f.typ("D")
	f.waitFor("Delete VM batch-1?")
	// enter on the default answer is "no".
	f.key(tea.KeyEnter)
	// Only changed lines are redrawn: the list coming back proves the
	// dialog closed (the status line already says "cancelled").
	f.waitFor("web-2")
	f.typ("D")
	f.waitFor("Delete VM batch-1?")
	f.typ("y")
	f.waitFor("delete batch-1: pending")
	require.Equal(t, []datatest.Call{{Op: "delete", Target: "vm-batch-1"}}, f.fake.Calls())
	f.fake.Push(data.Event{Type: data.EventVMDeleted, ID: "vm-batch-1"})
	f.waitFor("vms 6")
	f.quit()
}

func TestFlowFilter(t *testing.T) {
	t.Parallel()
	f := startFlow(t, Options{})
	f.typ(":vms")
	f.key(tea.KeyEnter)
	f.waitFor("vms 7")
	f.typ("/DB")
	f.waitFor("vms 1/7", "db-1")
	// The filter stays live: a new matching VM shows up while it is set.
	f.fake.Push(data.Event{Type: data.EventVMUpdated, VM: &data.VM{
		ID: "vm-db-2", Name: "db-2", SiteID: "site-ams", HostID: "host-ams-02", DesiredState: "running", ActualState: "creating",
	}})
	f.waitFor("vms 2/8", "db-2")
	f.key(tea.KeyEnter)
	f.waitFor("/db")
	f.key(tea.KeyEsc)
	f.waitFor("vms 8")
	m := f.quit()
	require.Equal(t, "", m.top().list.Filter())
}

func TestFlowCommandPalette(t *testing.T) {
	t.Parallel()
	f := startFlow(t, Options{})
	f.typ(":pl")
	f.waitFor("plans and their progress")
	f.key(tea.KeyTab)
	f.waitFor(":plans")
	f.key(tea.KeyEnter)
	f.waitFor("plans 3", "plan-b")
	f.typ(":nope")
	f.waitFor("no such command")
	f.key(tea.KeyEnter)
	f.waitFor("unknown command :nope")
	f.typ(":ctx")
	f.key(tea.KeyEnter)
	f.waitFor("context dev · tenant acme")
	f.typ(":h")
	f.key(tea.KeyEnter)
	f.waitFor("hosts 4", "lab-sim-01")
	m := f.quit()
	k, ok := m.kindOf()
	require.True(t, ok)
	require.Equal(t, "hosts", k.String())
}

func TestFlowServerGoesAwayAndComesBack(t *testing.T) {
	t.Parallel()
	f := startFlow(t, Options{})
	f.typ(":vms")
	f.key(tea.KeyEnter)
	f.waitFor("vms 7")
	lists := f.fake.Lists()

	f.fake.SetDown(true)
	f.fake.Push(data.Event{Type: data.EventConn, Conn: data.Reconnecting, Err: data.ErrUnavailable})
	f.waitFor("reconnecting", "showing last data")
	f.tm.Send(tea.KeyMsg{Type: tea.KeyCtrlR})
	f.waitFor("server unreachable; showing the last data")
	f.fake.Push(data.Event{Type: data.EventConn, Conn: data.Offline, Err: data.ErrUnavailable})
	f.waitFor("offline")

	// Changed while the console could not see it.
	f.fake.Update(func(fx *datatest.Fixture) {
		fx.VMs = append(fx.VMs, data.VM{ID: "vm-web-3", Name: "web-3", SiteID: "site-ams", HostID: "host-ams-01", DesiredState: "running", ActualState: "running"})
	})
	f.fake.SetDown(false)
	f.fake.Push(data.Event{Type: data.EventConn, Conn: data.Connected})
	f.waitFor("connected", "web-3", "vms 8")
	require.Greater(t, f.fake.Lists(), lists, "reconnect re-lists")

	// A resync (events lost server side) re-lists too.
	f.fake.Update(func(fx *datatest.Fixture) {
		fx.VMs = slices.DeleteFunc(fx.VMs, func(v data.VM) bool { return v.ID == "vm-web-3" })
	})
	f.fake.Push(data.Event{Type: data.EventResync})
	f.waitFor("vms 7")
	f.quit()
}

func TestFlowLogsFollowPauseResume(t *testing.T) {
	t.Parallel()
	f := startFlow(t, Options{})
	f.typ(":vms")
	f.key(tea.KeyEnter)
	f.typ("/web-1")
	f.key(tea.KeyEnter)
	f.typ("c")
	f.waitFor("console web-1", "web-1 login:", "following")
	target := data.LogTarget{Kind: data.LogConsole, ID: "vm-web-1"}
	require.True(t, f.fake.PushLog(target, data.LogLine{At: datatest.Epoch, Text: "login: root"}))
	f.waitFor("login: root", "3 lines")
	f.key(tea.KeyUp)
	f.waitFor("paused — F to follow")
	f.fake.PushLog(target, data.LogLine{At: datatest.Epoch, Text: "# uptime"})
	f.waitFor("4 lines")
	f.typ("F")
	f.waitFor("4 lines · following")
	f.key(tea.KeyEsc)
	f.waitFor("vms 1/7")
	m := f.quit()
	require.Len(t, m.pages, 1)
}

func TestFlowCreateVM(t *testing.T) {
	t.Parallel()
	f := startFlow(t, Options{})
	f.typ(":hosts")
	f.key(tea.KeyEnter)
	f.waitFor("hosts 4")
	f.typ("n")
	f.waitFor("Create VM")
	f.typ("web-3")
	f.key(tea.KeyEnter) // site and host are pre-filled from the selected row
	f.key(tea.KeyEnter)
	f.key(tea.KeyEnter)
	f.typ("2")
	f.key(tea.KeyEnter)
	f.key(tea.KeyEnter)
	f.key(tea.KeyEnter)
	f.waitFor("disk_image is required")
	f.typ("/images/alpine.raw")
	f.key(tea.KeyEnter)
	f.waitFor("created vm web-3 on ams-01")
	require.Equal(t, []datatest.Call{{Op: "create", Target: "web-3"}}, f.fake.Calls())
	f.quit()
}

// TestFlowCreateVMPlacedByServer opens the form from a site: the site is
// implied, the host left empty, and the console says where the server put
// the VM.
func TestFlowCreateVMPlacedByServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		open  func(f *flow)
		want  string
		vmsOf string
	}{
		{
			name:  "from the sites list",
			open:  func(f *flow) {},
			want:  "created vm web-3 on ams-01 (placed by the server)",
			vmsOf: "host-ams-01",
		},
		{
			name: "from a site's hosts, clearing the host",
			open: func(f *flow) {
				f.key(tea.KeyEnter)
				f.waitFor("sites › edge-ams")
			},
			want:  "created vm web-3 on ams-01 (placed by the server)",
			vmsOf: "host-ams-01",
		},
		{
			name: "from the lab site",
			open: func(f *flow) {
				f.key(tea.KeyDown)
				f.key(tea.KeyDown)
			},
			want:  "created vm web-3 on lab-sim-01 (placed by the server)",
			vmsOf: "host-lab-01",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := startFlow(t, Options{})
			tt.open(f)
			f.typ("n")
			f.waitFor("Create VM", "Site")
			f.typ("web-3")
			f.key(tea.KeyEnter) // the site is implied
			f.key(tea.KeyEnter)
			f.key(tea.KeyCtrlU) // no host: let the server place it
			f.key(tea.KeyEnter)
			f.key(tea.KeyEnter)
			f.key(tea.KeyEnter)
			f.typ("/images/alpine.raw")
			f.key(tea.KeyEnter)
			f.waitFor(tt.want)
			m := f.quit()
			var placed []string
			for _, v := range m.fleet.VMs(fleet.VMFilter{HostID: tt.vmsOf}) {
				placed = append(placed, v.Name)
			}
			require.Contains(t, placed, "web-3")
		})
	}
}

func TestFlowReadOnlyRefusesActions(t *testing.T) {
	t.Parallel()
	f := startFlow(t, Options{ReadOnly: true})
	f.typ("t")
	f.waitFor("read-only mode: enrollment token is disabled")
	f.typ(":vms")
	f.key(tea.KeyEnter)
	f.waitFor("read-only · vms 7")
	f.typ("D")
	f.waitFor("read-only mode: delete is disabled")
	f.typ("s")
	f.waitFor("read-only mode: start is disabled")
	require.Empty(t, f.fake.Calls())
	f.quit()
}

func TestFlowEnrollmentToken(t *testing.T) {
	t.Parallel()
	f := startFlow(t, Options{})
	f.typ("t")
	f.waitFor("Create an enrollment token for edge-ams?")
	require.Empty(t, f.fake.Calls(), "nothing is minted before the operator confirms")
	f.typ("y")
	f.waitFor("Enrollment token for edge-ams", "nket_site-ams_once")
	f.key(tea.KeyEsc)
	f.waitFor("fleet: 3 sites")
	require.Equal(t, []datatest.Call{{Op: "token", Target: "site-ams"}}, f.fake.Calls())
	f.quit()
}

func TestFlowSwitchContext(t *testing.T) {
	t.Parallel()
	other := datatest.New(datatest.Fixture{Sites: []data.Site{{ID: "site-x", Name: "prod-x"}}})
	f := startFlow(t, Options{
		Contexts: []string{"dev", "prod"},
		Switch: func(_ context.Context, name string) (data.Source, string, error) {
			if name != "prod" {
				return nil, "", data.ErrNotFound
			}
			return other, "globex", nil
		},
	})
	f.typ(":ctx nope")
	f.key(tea.KeyEnter)
	f.waitFor("context nope: not found")
	f.typ(":ctx prod")
	f.key(tea.KeyEnter)
	f.waitFor("switched to context prod", "globex", "prod-x", "sites 1")
	m := f.quit()
	require.Equal(t, "prod", m.opts.ContextName)
	require.GreaterOrEqual(t, other.Lists(), 1, "the new context is listed")
}
