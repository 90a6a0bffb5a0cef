package view

import (
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/fleet"
	"github.com/kubedoio/n-kudo/tui/render"
	"github.com/kubedoio/n-kudo/tui/style"
	"github.com/kubedoio/n-kudo/tui/table"
)

// Kind is what a List shows.
type Kind int

// List kinds.
const (
	Tenants Kind = iota
	Sites
	Hosts
	VMs
	Plans
	Actions
)

// String is the kind's command and breadcrumb name.
func (k Kind) String() string {
	return [...]string{"tenants", "sites", "hosts", "vms", "plans", "actions"}[k]
}

// Scope narrows a List to part of the fleet; the zero Scope shows all.
type Scope struct {
	SiteID string
	HostID string
	VMID   string
	PlanID string
}

// List is one resource list page.
type List struct {
	kind   Kind
	scope  Scope
	table  table.Model
	styles style.Styles
	now    func() time.Time
	width  int
	height int
	// summary is the fleet line above the sites table.
	summary string
}

// NewList returns a list of kind in scope; call Reload to fill it.
func NewList(kind Kind, scope Scope, st style.Styles, now func() time.Time) List {
	cols := columns(kind)
	opts := []table.Option{
		table.WithStyles(st),
		table.WithEmpty("no " + kind.String()),
		table.WithCellStyler(styler(kind, st)),
	}
	if kind == Plans {
		opts = append(opts, table.WithSort(4, false))
	}
	return List{kind: kind, scope: scope, table: table.New(cols, opts...), styles: st, now: now, width: 80, height: 10}
}

func columns(k Kind) []table.Column {
	switch k {
	case Tenants:
		return tenantCols
	case Sites:
		return siteCols
	case Hosts:
		return hostCols
	case VMs:
		return vmCols
	case Plans:
		return planCols
	}
	return actionCols
}

// styler colours state words, drift and the simulated label.
func styler(k Kind, st style.Styles) table.CellStyler {
	stateCols := map[Kind][]int{Hosts: {1, 2}, VMs: {1, 2}, Plans: {1}, Actions: {3}}[k]
	return func(c int, cell string) lipgloss.Style {
		for _, sc := range stateCols {
			if c == sc {
				return st.ForState(cell)
			}
		}
		switch {
		case k == VMs && c == 3 && strings.Contains(cell, "drift"), k == Sites && (c == 3 || c == 5) && cell != "0", cell == UnavailableLabel:
			return st.Bad
		case cell == SimLabel || k == VMs && c == 3 && cell == "sim":
			return st.Warn
		case k == VMs && c == 7:
			return st.Accent
		}
		return st.Cell
	}
}

// Kind is what the list shows.
func (l List) Kind() Kind { return l.kind }

// Scope is the part of the fleet the list shows.
func (l List) Scope() Scope { return l.scope }

// Table exposes the underlying table (for sorting state and tests).
func (l List) Table() table.Model { return l.table }

// SetSize sets the page size.
func (l *List) SetSize(w, h int) {
	l.width, l.height = w, h
	th := h
	if l.kind == Sites {
		th--
	}
	l.table.SetSize(w, th)
}

// SetFilter sets the live filter.
func (l *List) SetFilter(s string) { l.table.SetFilter(s) }

// Filter is the live filter.
func (l List) Filter() string { return l.table.Filter() }

// Selected is the id under the cursor.
func (l List) Selected() (string, bool) {
	r, ok := l.table.Selected()
	return r.ID, ok
}

// Select moves the cursor to id.
func (l *List) Select(id string) bool { return l.table.Select(id) }

// Len is the number of rows before filtering.
func (l List) Len() int { return l.table.Len() }

// Visible is the number of rows after filtering.
func (l List) Visible() int { return l.table.Visible() }

// SetTenants fills a tenants list.
func (l *List) SetTenants(ts []data.Tenant) {
	rows := make([]table.Row, 0, len(ts))
	for _, t := range ts {
		rows = append(rows, TenantRow(t))
	}
	l.table.SetRows(rows)
}

// Reload rebuilds every row from the fleet.
func (l *List) Reload(f *fleet.Fleet) {
	now := l.now()
	var rows []table.Row
	switch l.kind {
	case Tenants:
		return
	case Sites:
		sums := f.Summarize()
		var total fleet.Summary
		for _, s := range f.Sites() {
			sum := sums[s.ID]
			total.Hosts += sum.Hosts
			total.Online += sum.Online
			total.Offline += sum.Offline
			total.VMs += sum.VMs
			total.Drift += sum.Drift
			rows = append(rows, SiteRow(s, sum))
		}
		l.summary = fmt.Sprintf("fleet: %d sites · %d hosts (%d online, %d offline) · %d vms · %d drift",
			len(rows), total.Hosts, total.Online, total.Offline, total.VMs, total.Drift)
	case Hosts:
		for _, h := range f.Hosts(l.scope.SiteID) {
			rows = append(rows, HostRow(h, f, now))
		}
	case VMs:
		vms := f.VMs(fleet.VMFilter{SiteID: l.scope.SiteID, HostID: l.scope.HostID})
		rows = make([]table.Row, 0, len(vms))
		for _, v := range vms {
			rows = append(rows, VMRow(v, f, now))
		}
	case Plans:
		for _, p := range f.Plans(fleet.PlanFilter{SiteID: l.scope.SiteID, VMID: l.scope.VMID}) {
			rows = append(rows, PlanRow(p, f, now))
		}
	case Actions:
		p, _ := f.Plan(l.scope.PlanID)
		for i, a := range p.Actions {
			rows = append(rows, ActionRow(i, a, f))
		}
	}
	l.table.SetRows(rows)
}

// Tick redraws the rows whose cells count time (a host's SEEN, a plan's
// AGE), so a silent host visibly ages; other lists are left alone.
func (l *List) Tick(f *fleet.Fleet) {
	if l.kind == Hosts || l.kind == Plans {
		l.Reload(f)
	}
}

// Apply refreshes the rows a fleet change touches. Single-object changes
// update one row in place so a 10,000-VM list does not rebuild per event.
func (l *List) Apply(f *fleet.Fleet, ch fleet.Change) {
	now := l.now()
	switch {
	case l.kind == Sites && ch.Kind != fleet.KindPlan && ch.Kind != fleet.KindNone:
		// Summaries aggregate hosts and VMs; sites are few, rebuild them.
		l.Reload(f)
	case l.kind == Hosts && ch.Kind == fleet.KindHost:
		h, ok := f.Host(ch.ID)
		l.upsert(ok && (l.scope.SiteID == "" || h.SiteID == l.scope.SiteID), ch.ID, func() table.Row { return HostRow(h, f, now) })
	case l.kind == Hosts && ch.Kind == fleet.KindVM:
		// Only the VM counts of the VM's hosts changed.
		for _, id := range ch.Hosts {
			h, ok := f.Host(id)
			l.upsert(ok && (l.scope.SiteID == "" || h.SiteID == l.scope.SiteID), id, func() table.Row { return HostRow(h, f, now) })
		}
	case l.kind == VMs && ch.Kind == fleet.KindVM:
		v, ok := f.VM(ch.ID)
		in := ok && fleet.VMFilter{SiteID: l.scope.SiteID, HostID: l.scope.HostID}.Match(v)
		l.upsert(in, ch.ID, func() table.Row { return VMRow(v, f, now) })
	case l.kind == VMs && ch.Kind == fleet.KindPlan:
		p, _ := f.Plan(ch.ID)
		for _, a := range p.Actions {
			if v, ok := f.VM(a.VMID); ok && (fleet.VMFilter{SiteID: l.scope.SiteID, HostID: l.scope.HostID}).Match(v) {
				l.table.Upsert(VMRow(v, f, now))
			}
		}
	case l.kind == VMs && ch.Kind == fleet.KindHost && ch.Relabel:
		// Host names and the sim label show in VM rows; heartbeats that
		// change neither leave the VM list alone.
		for _, v := range f.VMs(fleet.VMFilter{HostID: ch.ID}) {
			if (fleet.VMFilter{SiteID: l.scope.SiteID, HostID: l.scope.HostID}).Match(v) {
				l.table.Upsert(VMRow(v, f, now))
			}
		}
	case l.kind == Plans && ch.Kind == fleet.KindPlan:
		p, ok := f.Plan(ch.ID)
		in := ok && fleet.PlanFilter{SiteID: l.scope.SiteID, VMID: l.scope.VMID}.Match(p)
		l.upsert(in, ch.ID, func() table.Row { return PlanRow(p, f, now) })
	case l.kind == Actions && ch.Kind == fleet.KindPlan && ch.ID == l.scope.PlanID:
		l.Reload(f)
	}
}

func (l *List) upsert(in bool, id string, row func() table.Row) {
	if in {
		l.table.Upsert(row())
		return
	}
	l.table.Remove(id)
}

// Update handles the table's keys.
func (l List) Update(msg tea.Msg) (List, tea.Cmd) {
	var cmd tea.Cmd
	l.table, cmd = l.table.Update(msg)
	return l, cmd
}

// View draws the page: the fleet line for sites, then the table.
func (l List) View() string {
	if l.kind == Sites {
		return l.styles.Dim.Render(render.Fit(l.summary, l.width)) + "\n" + l.table.View()
	}
	return l.table.View()
}
