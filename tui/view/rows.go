package view

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/fleet"
	"github.com/kubedoio/n-kudo/tui/render"
	"github.com/kubedoio/n-kudo/tui/table"
)

// Widths of the fixed graphic cells.
const (
	gaugeWidth = 6
	sparkWidth = 8
	// recentPlan is how long a finished plan stays in a VM's PLAN cell.
	recentPlan = 10 * time.Minute
)

// SimLabel marks every object behind the sim hypervisor.
const SimLabel = "simulated"

// UnavailableLabel marks hosts whose hypervisor cannot run VMs; the
// reason is in the host's facts (`nkudo get hosts -o json`, and
// `nkudo-agent doctor` on the host).
const UnavailableLabel = "no vmm"

func col(title string, minW, flex int) table.Column {
	return table.Column{Column: render.Column{Title: title, Min: minW, Flex: flex}}
}

// key is a column that names the row: it never truncates before the
// columns to its right are dropped.
func key(title string, minW, flex int) table.Column {
	c := col(title, minW, flex)
	c.Key = true
	return c
}

// idCol shows full ids where there is room and their distinguishing tail
// (render.ShortID) where not.
func idCol(title string, flex int) table.Column {
	c := col(title, 13, flex)
	c.KeepTail = true
	return c
}

// errCol shows an error's end where it does not fit: an error chain names
// its root cause last.
func errCol(title string, minW, flex int) table.Column {
	c := col(title, minW, flex)
	c.KeepTail = true
	return c
}

func num(title string, minW int) table.Column {
	return table.Column{Column: render.Column{Title: title, Min: minW, Right: true}, Numeric: true}
}

// Column sets, in display priority order: narrow terminals drop the last.
var (
	tenantCols = []table.Column{key("NAME", 16, 2), idCol("ID", 1)}
	siteCols   = []table.Column{
		key("NAME", 14, 2), num("HOSTS", 5), num("ONLINE", 6), num("OFFLINE", 7),
		num("VMS", 5), num("DRIFT", 5), idCol("ID", 1),
	}
	hostCols = []table.Column{
		key("HOST", 10, 2), col("STATUS", 7, 0), col("NETBIRD", 9, 1), numGauge("CPU"),
		col("CPU~", sparkWidth, 0), numGauge("MEM"), num("VMS", 3), num("SEEN", 4),
		col("LABEL", 9, 0), col("SITE", 8, 1),
	}
	vmCols = []table.Column{
		key("NAME", 12, 3), col("DESIRED", 8, 0), col("ACTUAL", 8, 0), col("FLAGS", 9, 0),
		key("HOST", 10, 1), num("CPU", 3), num("MEM", 6), col("PLAN", 16, 2),
		errCol("ERROR", 12, 3), col("SITE", 8, 1), idCol("ID", 1),
	}
	planCols = []table.Column{
		idCol("PLAN", 1), col("STATUS", 10, 0), numProgress(), col("ACTIONS", 16, 3),
		num("AGE", 4), col("SITE", 8, 1),
	}
	actionCols = []table.Column{
		num("#", 2), col("ACTION", 8, 0), key("VM", 12, 2), col("STATUS", 10, 0),
		idCol("EXECUTION", 1), idCol("ID", 1),
	}
)

func numGauge(title string) table.Column {
	return table.Column{Column: render.Column{Title: title, Min: gaugeWidth + 5}, Numeric: true}
}

func numProgress() table.Column {
	return table.Column{Column: render.Column{Title: "PROGRESS", Min: gaugeWidth + 6}, Numeric: true}
}

// TenantRow is a tenant's row.
func TenantRow(t data.Tenant) table.Row {
	return table.Row{ID: t.ID, Cells: []string{t.Name, t.ID}}
}

// SiteRow is a site's row with its fleet summary.
func SiteRow(s data.Site, sum fleet.Summary) table.Row {
	return table.Row{
		ID: s.ID,
		Cells: []string{
			s.Name, itoa(sum.Hosts), itoa(sum.Online), itoa(sum.Offline),
			itoa(sum.VMs), itoa(sum.Drift), s.ID,
		},
		Nums: []float64{0, float64(sum.Hosts), float64(sum.Online), float64(sum.Offline), float64(sum.VMs), float64(sum.Drift)},
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func gaugeCell(frac float64) string {
	return render.Gauge(frac, gaugeWidth) + " " + render.Percent(frac)
}

// HostRow is a host's row: state, mesh, load with history, VM count.
func HostRow(h data.Host, f *fleet.Fleet, now time.Time) table.Row {
	status := "offline"
	if h.Online {
		status = "online"
	}
	nb := h.NetBird.State
	if nb == "" {
		nb = "-"
	}
	cpu, mem, cpuCell, memCell := -1.0, -1.0, "-", "-"
	if h.Usage != nil {
		cpu = h.Usage.CPUPercent / 100
		mem = h.Usage.MemoryFraction()
		cpuCell, memCell = gaugeCell(cpu), gaugeCell(mem)
	}
	label := ""
	switch {
	case h.HypervisorUnavailable != "":
		label = UnavailableLabel
	case h.Simulated:
		label = SimLabel
	}
	seen := -now.Sub(h.LastSeenAt).Seconds()
	return table.Row{
		ID: h.ID,
		Cells: []string{
			h.Hostname, status, nb, cpuCell,
			render.Sparkline(f.CPUHistory(h.ID), 100, sparkWidth), memCell,
			itoa(f.VMCount(h.ID)), render.Ago(now, h.LastSeenAt), label, f.SiteName(h.SiteID),
		},
		Nums: []float64{0, 0, 0, cpu, 0, mem, float64(f.VMCount(h.ID)), seen},
	}
}

// PlanCell summarises the newest plan touching a VM: what it does to the VM
// and how far it got, for as long as it runs and a while after.
func PlanCell(vmID string, p data.Plan, now time.Time) string {
	if p.ID == "" || (data.Finished(p.Status) && now.Sub(p.CreatedAt) > recentPlan) {
		return ""
	}
	var act data.Action
	for _, a := range p.Actions {
		if a.VMID == vmID {
			act = a
			break
		}
	}
	s := data.Verb(act.Type) + " " + act.Status
	if done, total := p.Progress(); total > 1 {
		s += fmt.Sprintf(" %d/%d", done, total)
	}
	return strings.TrimSpace(s)
}

// VMRow is a VM's row: desired against actual, drift, and its live plan.
func VMRow(v data.VM, f *fleet.Fleet, now time.Time) table.Row {
	var flags []string
	if v.Drift() {
		flags = append(flags, "drift")
	}
	if h, ok := f.Host(v.HostID); ok && h.Simulated {
		flags = append(flags, "sim")
	}
	p, _ := f.LatestPlan(v.ID)
	return table.Row{
		ID: v.ID,
		Cells: []string{
			v.Name, v.DesiredState, v.ActualState, strings.Join(flags, ","), f.HostName(v.HostID),
			itoa(v.VCPUs), render.MiB(v.MemoryMiB), PlanCell(v.ID, p, now),
			vmError(v), f.SiteName(v.SiteID), v.ID,
		},
		Nums: []float64{0, 0, 0, 0, 0, float64(v.VCPUs), float64(v.MemoryMiB)},
	}
}

// vmError is a failed VM's reason on one line (the agent's message may
// quote several lines of the VMM's log); empty for a VM that is not failed.
func vmError(v data.VM) string {
	if v.ActualState != data.StateFailed {
		return ""
	}
	return strings.Join(strings.Fields(v.Error), " ")
}

// PlanRow is a plan's row with its progress.
func PlanRow(p data.Plan, f *fleet.Fleet, now time.Time) table.Row {
	done, total := p.Progress()
	acts := make([]string, 0, len(p.Actions))
	for _, a := range p.Actions {
		acts = append(acts, data.Verb(a.Type)+" "+f.VMName(a.VMID))
	}
	frac := 0.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	return table.Row{
		ID: p.ID,
		Cells: []string{
			p.ID, p.Status, render.Progress(done, total, gaugeWidth),
			strings.Join(acts, ", "), render.Ago(now, p.CreatedAt), f.SiteName(p.SiteID),
		},
		// Newest first sorts ascending on the negated creation time.
		Nums: []float64{0, 0, frac, 0, -float64(p.CreatedAt.Unix())},
	}
}

// ActionRow is one action of a plan.
func ActionRow(i int, a data.Action, f *fleet.Fleet) table.Row {
	exec := a.ExecutionID
	if exec == "" {
		exec = "-"
	}
	return table.Row{
		ID:    a.ID,
		Cells: []string{itoa(i + 1), data.Verb(a.Type), f.VMName(a.VMID), a.Status, exec, a.ID},
		Nums:  []float64{float64(i + 1)},
	}
}
