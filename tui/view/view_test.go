package view

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/data/datatest"
	"github.com/kubedoio/n-kudo/tui/fleet"
	"github.com/kubedoio/n-kudo/tui/style"
)

func epoch() time.Time { return datatest.Epoch }

func loaded(fx datatest.Fixture) *fleet.Fleet {
	f := &fleet.Fleet{}
	f.Load(fleet.Snapshot{Sites: fx.Sites, Hosts: fx.Hosts, VMs: fx.VMs, Plans: fx.Plans})
	return f
}

func TestPlanCell(t *testing.T) {
	t.Parallel()
	now := datatest.Epoch
	one := func(status string, age time.Duration) data.Plan {
		return data.Plan{ID: "p", Status: status, CreatedAt: now.Add(-age), Actions: []data.Action{{Type: "MicroVMStop", VMID: "vm", Status: status}}}
	}
	tests := []struct {
		name string
		plan data.Plan
		want string
	}{
		{"no plan", data.Plan{}, ""},
		{"in flight", one("running", time.Hour), "stop running"},
		{"recently finished", one("succeeded", time.Minute), "stop succeeded"},
		{"long finished", one("succeeded", time.Hour), ""},
		{"multi-action plan shows progress", data.Plan{ID: "p", Status: "running", CreatedAt: now, Actions: []data.Action{
			{Type: "MicroVMStart", VMID: "other", Status: "succeeded"},
			{Type: "MicroVMReboot", VMID: "vm", Status: "running"},
		}}, "reboot running 1/2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, PlanCell("vm", tt.plan, now))
		})
	}
}

func TestVMRowFlags(t *testing.T) {
	t.Parallel()
	f := loaded(datatest.Standard())
	tests := []struct {
		id    string
		flags string
	}{
		{"vm-web-1", ""},
		{"vm-web-2", "drift"},
		{"vm-sim-2", "sim"},
		{"vm-new-1", "sim"}, // creating is not drift
	}
	for _, tt := range tests {
		v, ok := f.VM(tt.id)
		require.True(t, ok)
		require.Equal(t, tt.flags, VMRow(v, f, datatest.Epoch).Cells[3], tt.id)
	}
}

// A failed VM's row says why it failed, on one line, in a list as wide as
// an operator's terminal; other states leave the cell empty.
func TestVMRowError(t *testing.T) {
	t.Parallel()
	reason := "booting vm: vmm refused vm.boot (500):\n  Error from API; Cannot open the kernel image"
	tests := []struct {
		name  string
		state string
		want  string
	}{
		{"failed", data.StateFailed, "booting vm: vmm refused vm.boot (500): Error from API; Cannot open the kernel image"},
		{"running", data.StateRunning, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := loaded(datatest.Standard())
			vm := data.VM{ID: "vm-broken", Name: "broken", HostID: "host-ams-01", SiteID: "site-ams",
				DesiredState: data.StateRunning, ActualState: tt.state, Error: reason}
			f.Apply(data.Event{Type: data.EventVMUpdated, VM: &vm})
			require.Equal(t, tt.want, VMRow(vm, f, datatest.Epoch).Cells[8])
			l := NewList(VMs, Scope{HostID: "host-ams-01"}, style.Plain(), epoch)
			l.SetSize(200, 10)
			l.Reload(f)
			if tt.want != "" {
				require.Contains(t, ansi.Strip(l.View()), "Cannot open the kernel image")
			}
		})
	}
}

func TestListAppliesEvents(t *testing.T) {
	t.Parallel()
	f := loaded(datatest.Standard())
	l := NewList(VMs, Scope{HostID: "host-ams-01"}, style.Plain(), epoch)
	l.SetSize(100, 10)
	l.Reload(f)
	require.Equal(t, 2, l.Len())

	apply := func(ev data.Event) { l.Apply(f, f.Apply(ev)) }
	apply(data.Event{Type: data.EventVMUpdated, VM: &data.VM{ID: "vm-x", Name: "x", HostID: "host-ams-01", DesiredState: "running", ActualState: "running"}})
	require.Equal(t, 3, l.Len())
	apply(data.Event{Type: data.EventVMUpdated, VM: &data.VM{ID: "vm-y", Name: "y", HostID: "host-ams-02"}})
	require.Equal(t, 3, l.Len(), "a VM on another host stays out of scope")
	apply(data.Event{Type: data.EventVMUpdated, VM: &data.VM{ID: "vm-x", Name: "x", HostID: "host-ams-02"}})
	require.Equal(t, 2, l.Len(), "a VM moved out of scope leaves the list")
	apply(data.Event{Type: data.EventVMDeleted, ID: "vm-web-1"})
	require.Equal(t, 1, l.Len())
	apply(data.Event{Type: data.EventPlanUpdated, Plan: &data.Plan{ID: "p9", Status: "running", CreatedAt: datatest.Epoch,
		Actions: []data.Action{{ID: "a", Type: "MicroVMReboot", VMID: "vm-web-2", Status: "running"}}}})
	require.Contains(t, ansi.Strip(l.View()), "reboot running")
}

func TestSitesSummaryFollowsHosts(t *testing.T) {
	t.Parallel()
	f := loaded(datatest.Standard())
	l := NewList(Sites, Scope{}, style.Plain(), epoch)
	l.SetSize(100, 10)
	l.Reload(f)
	require.Contains(t, l.View(), "4 hosts (3 online, 1 offline)")
	h, _ := f.Host("host-fra-01")
	h.Online = true
	l.Apply(f, f.Apply(data.Event{Type: data.EventHostUpdated, Host: &h}))
	require.Contains(t, l.View(), "4 hosts (4 online, 0 offline)")
}

func newVMList10k(b *testing.B) (List, *fleet.Fleet) {
	b.Helper()
	f := loaded(datatest.Many(10000))
	l := NewList(VMs, Scope{}, style.New(style.Options{}), epoch)
	l.SetSize(120, 40)
	l.Reload(f)
	if l.Len() != 10000 {
		b.Fatalf("want 10000 rows, have %d", l.Len())
	}
	return l, f
}

// BenchmarkVMListView10k measures one frame of the VM list with 10,000 VMs
// (target well under 16 ms): only the visible window is rendered.
func BenchmarkVMListView10k(b *testing.B) {
	l, _ := newVMList10k(b)
	l.table.Select("vm-05000")
	b.ReportAllocs()
	for b.Loop() {
		if s := l.View(); !strings.Contains(s, "vm-05000") {
			b.Fatal("selected row not drawn")
		}
	}
}

// BenchmarkVMListEvent10k measures applying one vm.updated event to a
// 10,000-VM list (the per-event cost on the Update path).
func BenchmarkVMListEvent10k(b *testing.B) {
	l, f := newVMList10k(b)
	states := []string{"running", "stopped"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("vm-%05d", i%10000)
		v, _ := f.VM(id)
		v.ActualState = states[i%2]
		l.Apply(f, f.Apply(data.Event{Type: data.EventVMUpdated, VM: &v}))
		i++
	}
}

// BenchmarkVMListFilter10k measures one keystroke of the live filter.
func BenchmarkVMListFilter10k(b *testing.B) {
	l, _ := newVMList10k(b)
	filters := []string{"vm-0", "vm-01", "running", ""}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l.SetFilter(filters[i%len(filters)])
		i++
	}
}

// TestHostRowLabel: a host whose hypervisor cannot run says so, ahead of
// the simulated label; real working hosts carry none.
func TestHostRowLabel(t *testing.T) {
	t.Parallel()
	f := loaded(datatest.Standard())
	tests := []struct {
		name string
		host data.Host
		want string
	}{
		{"real", data.Host{ID: "h", Hostname: "ams-01"}, ""},
		{"simulated", data.Host{ID: "h", Hostname: "dev-1", Simulated: true}, SimLabel},
		{"no vmm", data.Host{ID: "h", Hostname: "ams-02", HypervisorUnavailable: "cloud-hypervisor not found"}, UnavailableLabel},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, HostRow(tt.host, f, epoch()).Cells[8], tt.name)
	}
}
