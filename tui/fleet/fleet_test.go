package fleet

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/data/datatest"
)

func standard() *Fleet {
	fx := datatest.Standard()
	f := &Fleet{}
	f.Load(Snapshot{Sites: fx.Sites, Hosts: fx.Hosts, VMs: fx.VMs, Plans: fx.Plans})
	return f
}

func TestApply(t *testing.T) {
	t.Parallel()
	vm := data.VM{ID: "vm-web-1", Name: "web-1", SiteID: "site-ams", HostID: "host-ams-02", DesiredState: "running", ActualState: "running"}
	tests := []struct {
		name  string
		ev    data.Event
		want  Change
		check func(t *testing.T, f *Fleet)
	}{
		{"vm moves host", data.Event{Type: data.EventVMUpdated, VM: &vm}, Change{Kind: KindVM, ID: "vm-web-1", Hosts: []string{"host-ams-02", "host-ams-01"}}, func(t *testing.T, f *Fleet) {
			require.Equal(t, 1, f.VMCount("host-ams-01"))
			require.Equal(t, 3, f.VMCount("host-ams-02"))
		}},
		{"vm deleted", data.Event{Type: data.EventVMDeleted, ID: "vm-web-1"}, Change{Kind: KindVM, ID: "vm-web-1", Deleted: true, Hosts: []string{"host-ams-01"}}, func(t *testing.T, f *Fleet) {
			_, ok := f.VM("vm-web-1")
			require.False(t, ok)
			require.Equal(t, 1, f.VMCount("host-ams-01"))
		}},
		{"site deleted", data.Event{Type: data.EventSiteDeleted, ID: "site-lab"}, Change{Kind: KindSite, ID: "site-lab", Deleted: true}, func(t *testing.T, f *Fleet) {
			require.Len(t, f.Sites(), 2)
		}},
		{"newer plan becomes the VM's latest", data.Event{Type: data.EventPlanUpdated, Plan: &data.Plan{
			ID: "p-new", Status: "pending", CreatedAt: datatest.Epoch, Actions: []data.Action{{ID: "a", VMID: "vm-web-2", Type: "MicroVMStop", Status: "pending"}},
		}}, Change{Kind: KindPlan, ID: "p-new"}, func(t *testing.T, f *Fleet) {
			p, ok := f.LatestPlan("vm-web-2")
			require.True(t, ok)
			require.Equal(t, "p-new", p.ID)
		}},
		{"older plan does not replace the latest", data.Event{Type: data.EventPlanUpdated, Plan: &data.Plan{
			ID: "p-old", Status: "succeeded", CreatedAt: datatest.Epoch.Add(-24 * time.Hour), Actions: []data.Action{{ID: "a", VMID: "vm-web-2"}},
		}}, Change{Kind: KindPlan, ID: "p-old"}, func(t *testing.T, f *Fleet) {
			p, _ := f.LatestPlan("vm-web-2")
			require.Equal(t, "plan-b", p.ID)
		}},
		{"heartbeat keeps labels", data.Event{Type: data.EventHostUpdated, Host: &data.Host{
			ID: "host-fra-01", SiteID: "site-fra", Hostname: "fra-01", Online: true,
		}}, Change{Kind: KindHost, ID: "host-fra-01"}, func(t *testing.T, f *Fleet) {
			require.Equal(t, Summary{Hosts: 1, Online: 1, VMs: 1, Drift: 1}, f.Summarize()["site-fra"])
		}},
		{"renamed host relabels", data.Event{Type: data.EventHostUpdated, Host: &data.Host{
			ID: "host-fra-01", SiteID: "site-fra", Hostname: "fra-01b",
		}}, Change{Kind: KindHost, ID: "host-fra-01", Relabel: true}, nil},
		{"new vm counts once", data.Event{Type: data.EventVMUpdated, VM: &data.VM{
			ID: "vm-n", SiteID: "site-lab", HostID: "host-lab-01", DesiredState: "running", ActualState: "stopped",
		}}, Change{Kind: KindVM, ID: "vm-n", Hosts: []string{"host-lab-01"}}, func(t *testing.T, f *Fleet) {
			require.Equal(t, Summary{Hosts: 1, Online: 1, VMs: 3, Drift: 1}, f.Summarize()["site-lab"])
			require.Equal(t, 3, f.VMCount("host-lab-01"))
		}},
		{"event without object changes nothing", data.Event{Type: data.EventVMUpdated}, Change{}, func(t *testing.T, f *Fleet) {
			require.Len(t, f.VMs(VMFilter{}), 7)
		}},
		{"agent events are not shown", data.Event{Type: data.EventAgentUpdated, Agent: &data.Agent{ID: "x"}}, Change{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := standard()
			require.Equal(t, tt.want, f.Apply(tt.ev))
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

func TestUsageHistory(t *testing.T) {
	t.Parallel()
	f := standard()
	h, _ := f.Host("host-ams-01")
	for i := range HistoryLen + 4 {
		h.Usage = &data.Usage{CPUPercent: float64(i), MemoryUsedBytes: 1, MemoryTotalBytes: 4}
		f.Apply(data.Event{Type: data.EventHostUpdated, Host: &h})
	}
	hist := f.CPUHistory("host-ams-01")
	require.Len(t, hist, HistoryLen)
	require.Equal(t, float64(HistoryLen+3), hist[len(hist)-1])
	require.Equal(t, 25.0, f.MemHistory("host-ams-01")[0])
	// A re-list keeps history (sparklines survive resyncs) but drops hosts
	// that are gone.
	f.Load(Snapshot{Hosts: []data.Host{h}})
	require.Len(t, f.CPUHistory("host-ams-01"), HistoryLen)
	require.Empty(t, f.CPUHistory("host-ams-02"))
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	got := standard().Summarize()
	require.Equal(t, Summary{Hosts: 2, Online: 2, VMs: 4, Drift: 1}, got["site-ams"])
	require.Equal(t, Summary{Hosts: 1, Offline: 1, VMs: 1, Drift: 1}, got["site-fra"])
	require.Equal(t, Summary{Hosts: 1, Online: 1, VMs: 2}, got["site-lab"])
}

// TestVMNameOutlivesTheVM: a plan that deleted a VM still names it, even
// after a re-list that no longer has it; an id never seen shows its
// distinguishing tail, not the shared UUIDv7 time prefix.
func TestVMNameOutlivesTheVM(t *testing.T) {
	t.Parallel()
	f := standard()
	f.Apply(data.Event{Type: data.EventVMDeleted, ID: "vm-web-1"})
	require.Equal(t, "web-1", f.VMName("vm-web-1"))
	fx := datatest.Standard()
	f.Load(Snapshot{Sites: fx.Sites, Hosts: fx.Hosts})
	require.Equal(t, "web-1", f.VMName("vm-web-1"), "a re-list keeps remembered names")
	require.Equal(t, "5f60718293a4", f.VMName("01a23c3f-1e2a-7b3c-8d4e-5f60718293a4"))
}
