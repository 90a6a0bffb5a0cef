package datatest

import (
	"fmt"
	"time"

	"github.com/kubedoio/n-kudo/tui/data"
)

// Standard returns the fleet the golden files and flows are drawn from: three
// sites, four hosts (one offline, one simulated), seven VMs (one drifting)
// and three plans.
func Standard() Fixture {
	gib := uint64(1 << 30)
	return Fixture{
		Tenants: []data.Tenant{
			{ID: "t-acme", Name: "acme"},
			{ID: "t-globex", Name: "globex"},
		},
		Sites: []data.Site{
			{ID: "site-ams", Name: "edge-ams"},
			{ID: "site-fra", Name: "edge-fra"},
			{ID: "site-lab", Name: "lab"},
		},
		Hosts: []data.Host{
			{
				ID: "host-ams-01", SiteID: "site-ams", Hostname: "ams-01", AgentID: "agent-ams-01",
				Online: true, LastSeenAt: Epoch.Add(-4 * time.Second),
				NetBird: data.NetBird{State: "connected", IP: "100.64.0.11"},
				Usage:   &data.Usage{CPUPercent: 42, MemoryUsedBytes: 12 * gib, MemoryTotalBytes: 32 * gib},
			},
			{
				ID: "host-ams-02", SiteID: "site-ams", Hostname: "ams-02", AgentID: "agent-ams-02",
				Online: true, LastSeenAt: Epoch.Add(-9 * time.Second),
				NetBird: data.NetBird{State: "disconnected"},
				Usage:   &data.Usage{CPUPercent: 87, MemoryUsedBytes: 30 * gib, MemoryTotalBytes: 32 * gib},
			},
			{
				ID: "host-fra-01", SiteID: "site-fra", Hostname: "fra-01", AgentID: "agent-fra-01",
				Online: false, LastSeenAt: Epoch.Add(-47 * time.Minute),
				NetBird: data.NetBird{State: "connected", IP: "100.64.0.21"},
			},
			{
				ID: "host-lab-01", SiteID: "site-lab", Hostname: "lab-sim-01", AgentID: "agent-lab-01",
				Online: true, LastSeenAt: Epoch.Add(-1 * time.Second), Simulated: true,
				NetBird: data.NetBird{State: "disabled"},
				Usage:   &data.Usage{CPUPercent: 3, MemoryUsedBytes: 1 * gib, MemoryTotalBytes: 8 * gib},
			},
		},
		VMs: []data.VM{
			{ID: "vm-web-1", Name: "web-1", SiteID: "site-ams", HostID: "host-ams-01", DesiredState: "running", ActualState: "running", VCPUs: 2, MemoryMiB: 2048},
			{ID: "vm-web-2", Name: "web-2", SiteID: "site-ams", HostID: "host-ams-01", DesiredState: "running", ActualState: "stopped", VCPUs: 2, MemoryMiB: 2048},
			{ID: "vm-db-1", Name: "db-1", SiteID: "site-ams", HostID: "host-ams-02", DesiredState: "running", ActualState: "running", VCPUs: 4, MemoryMiB: 8192},
			{ID: "vm-batch-1", Name: "batch-1", SiteID: "site-ams", HostID: "host-ams-02", DesiredState: "stopped", ActualState: "stopped", VCPUs: 1, MemoryMiB: 512},
			{ID: "vm-cache-1", Name: "cache-1", SiteID: "site-fra", HostID: "host-fra-01", DesiredState: "running", ActualState: "unknown", VCPUs: 2, MemoryMiB: 1024},
			{ID: "vm-new-1", Name: "ci-runner", SiteID: "site-lab", HostID: "host-lab-01", DesiredState: "running", ActualState: "creating", VCPUs: 2, MemoryMiB: 4096},
			{ID: "vm-sim-2", Name: "sim-2", SiteID: "site-lab", HostID: "host-lab-01", DesiredState: "running", ActualState: "running", VCPUs: 1, MemoryMiB: 256},
		},
		Plans: []data.Plan{
			{ID: "plan-a", SiteID: "site-ams", Status: "succeeded", CreatedAt: Epoch.Add(-2 * time.Hour), Actions: []data.Action{
				{ID: "act-a1", Type: "MicroVMCreate", VMID: "vm-web-1", Status: "succeeded", ExecutionID: "exec-a1"},
				{ID: "act-a2", Type: "MicroVMCreate", VMID: "vm-web-2", Status: "succeeded", ExecutionID: "exec-a2"},
			}},
			{ID: "plan-b", SiteID: "site-ams", Status: "running", CreatedAt: Epoch.Add(-30 * time.Second), Actions: []data.Action{
				{ID: "act-b1", Type: "MicroVMStart", VMID: "vm-web-2", Status: "succeeded", ExecutionID: "exec-b1"},
				{ID: "act-b2", Type: "MicroVMReboot", VMID: "vm-db-1", Status: "running", ExecutionID: "exec-b2"},
				{ID: "act-b3", Type: "MicroVMStop", VMID: "vm-batch-1", Status: "pending"},
			}},
			{ID: "plan-c", SiteID: "site-lab", Status: "failed", CreatedAt: Epoch.Add(-5 * time.Minute), Actions: []data.Action{
				{ID: "act-c1", Type: "MicroVMCreate", VMID: "vm-new-1", Status: "failed", ExecutionID: "exec-c1"},
			}},
		},
		Logs: map[data.LogTarget][]data.LogLine{
			{Kind: data.LogExecution, ID: "exec-b2"}: {
				{At: Epoch.Add(-20 * time.Second), Stream: "stdout", Text: "rebooting vm db-1"},
				{At: Epoch.Add(-19 * time.Second), Stream: "stdout", Text: "vm.reboot accepted by vmm"},
			},
			{Kind: data.LogConsole, ID: "vm-web-1"}: {
				{At: Epoch.Add(-60 * time.Second), Stream: "console", Text: "Welcome to Alpine Linux 3.20"},
				{At: Epoch.Add(-59 * time.Second), Stream: "console", Text: "web-1 login:"},
			},
		},
	}
}

// Many returns a fixture with n VMs spread over 100 hosts in 10 sites, for
// benchmarks and the large-list tests.
func Many(n int) Fixture {
	fx := Fixture{}
	for s := range 10 {
		fx.Sites = append(fx.Sites, data.Site{ID: fmt.Sprintf("site-%02d", s), Name: fmt.Sprintf("edge-%02d", s)})
	}
	for h := range 100 {
		fx.Hosts = append(fx.Hosts, data.Host{
			ID: fmt.Sprintf("host-%03d", h), SiteID: fmt.Sprintf("site-%02d", h%10),
			Hostname: fmt.Sprintf("node-%03d", h), Online: h%7 != 0, LastSeenAt: Epoch,
			Usage: &data.Usage{CPUPercent: float64(h % 100), MemoryUsedBytes: uint64(h) << 26, MemoryTotalBytes: 1 << 34},
		})
	}
	states := []string{data.StateRunning, data.StateStopped, data.StateRunning, data.StateUnknown}
	for i := range n {
		h := i % 100
		fx.VMs = append(fx.VMs, data.VM{
			ID: fmt.Sprintf("vm-%05d", i), Name: fmt.Sprintf("vm-%05d", i),
			SiteID: fmt.Sprintf("site-%02d", h%10), HostID: fmt.Sprintf("host-%03d", h),
			DesiredState: data.StateRunning, ActualState: states[i%len(states)],
			VCPUs: 1 + i%4, MemoryMiB: 256 << (i % 4),
		})
	}
	return fx
}
