package fleet

import (
	"slices"
	"strings"

	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/render"
)

// HistoryLen is how many usage samples a host keeps for its sparkline.
const HistoryLen = 16

// Snapshot is a full listing of the fleet.
type Snapshot struct {
	Sites []data.Site
	Hosts []data.Host
	VMs   []data.VM
	Plans []data.Plan
}

// Kind names what an event changed, so views refresh only their own rows.
type Kind int

// Change kinds.
const (
	KindNone Kind = iota
	KindSite
	KindHost
	KindVM
	KindPlan
)

// Change describes what one Apply touched, so views redo only that.
type Change struct {
	Kind    Kind
	ID      string
	Deleted bool
	// Hosts lists the hosts whose VM count changed (a VM change).
	Hosts []string
	// Relabel says a host's name or sim label changed (or it is new), so
	// rows that show them must be redrawn.
	Relabel bool
}

// Fleet is the tenant's fleet as last seen. The zero value is empty and
// ready to use.
type Fleet struct {
	sites map[string]data.Site
	hosts map[string]data.Host
	vms   map[string]data.VM
	plans map[string]data.Plan
	// cpu and mem keep recent usage per host id, oldest first.
	cpu map[string][]float64
	mem map[string][]float64
	// names remembers every VM name seen, deleted VMs included, so plans
	// that deleted a VM still name it. Never cleared by Load.
	names map[string]string
	// vmPlan is the newest plan with an action on each VM.
	vmPlan map[string]string
	// hostVMs counts VMs per host, kept current for the host list.
	hostVMs map[string]int
	// sums is each site's health, kept current so a heartbeat does not
	// recount a 10,000-VM fleet.
	sums map[string]Summary
}

func (f *Fleet) init() {
	if f.sites != nil {
		return
	}
	f.sites = map[string]data.Site{}
	f.hosts = map[string]data.Host{}
	f.vms = map[string]data.VM{}
	f.plans = map[string]data.Plan{}
	f.cpu = map[string][]float64{}
	f.mem = map[string][]float64{}
	f.vmPlan = map[string]string{}
	f.names = map[string]string{}
	f.hostVMs = map[string]int{}
	f.sums = map[string]Summary{}
}

// Load replaces everything with a fresh listing. Usage history survives a
// re-list so sparklines do not reset on every resync.
func (f *Fleet) Load(s Snapshot) {
	f.init()
	clear(f.sites)
	clear(f.hosts)
	clear(f.vms)
	clear(f.plans)
	clear(f.vmPlan)
	clear(f.hostVMs)
	clear(f.sums)
	for _, x := range s.Sites {
		f.sites[x.ID] = x
	}
	for _, x := range s.Hosts {
		f.putHost(x)
	}
	for _, x := range s.VMs {
		f.putVM(x)
	}
	plans := slices.Clone(s.Plans)
	// Oldest first, so the newest plan per VM wins.
	slices.SortStableFunc(plans, func(a, b data.Plan) int { return a.CreatedAt.Compare(b.CreatedAt) })
	for _, x := range plans {
		f.putPlan(x)
	}
	for id := range f.cpu {
		if _, ok := f.hosts[id]; !ok {
			delete(f.cpu, id)
			delete(f.mem, id)
		}
	}
}

func (f *Fleet) putHost(h data.Host) (relabel bool) {
	old, had := f.hosts[h.ID]
	if had {
		f.countHost(old, -1)
	}
	f.hosts[h.ID] = h
	f.countHost(h, 1)
	if h.Usage != nil {
		f.cpu[h.ID] = push(f.cpu[h.ID], h.Usage.CPUPercent)
		f.mem[h.ID] = push(f.mem[h.ID], h.Usage.MemoryFraction()*100)
	}
	return !had || old.Hostname != h.Hostname || old.Simulated != h.Simulated
}

func (f *Fleet) countHost(h data.Host, d int) {
	s := f.sums[h.SiteID]
	s.Hosts += d
	if h.Online {
		s.Online += d
	} else {
		s.Offline += d
	}
	f.sums[h.SiteID] = s
}

func (f *Fleet) countVM(v data.VM, d int) {
	s := f.sums[v.SiteID]
	s.VMs += d
	if v.Drift() {
		s.Drift += d
	}
	f.sums[v.SiteID] = s
	f.hostVMs[v.HostID] += d
}

func push(s []float64, v float64) []float64 {
	s = append(s, v)
	if len(s) > HistoryLen {
		s = slices.Delete(s, 0, len(s)-HistoryLen)
	}
	return s
}

// putVM stores v and returns the hosts whose VM count changed.
func (f *Fleet) putVM(v data.VM) []string {
	hosts := []string{v.HostID}
	if old, ok := f.vms[v.ID]; ok {
		f.countVM(old, -1)
		if old.HostID != v.HostID {
			hosts = append(hosts, old.HostID)
		}
	}
	f.vms[v.ID] = v
	if v.Name != "" {
		f.names[v.ID] = v.Name
	}
	f.countVM(v, 1)
	return hosts
}

func (f *Fleet) deleteVM(id string) []string {
	old, ok := f.vms[id]
	if !ok {
		return nil
	}
	f.countVM(old, -1)
	delete(f.vms, id)
	return []string{old.HostID}
}

func (f *Fleet) putPlan(p data.Plan) {
	f.plans[p.ID] = p
	for _, a := range p.Actions {
		if a.VMID == "" {
			continue
		}
		cur, ok := f.plans[f.vmPlan[a.VMID]]
		if !ok || !p.CreatedAt.Before(cur.CreatedAt) {
			f.vmPlan[a.VMID] = p.ID
		}
	}
}

// Apply folds one event into the fleet and says what changed.
func (f *Fleet) Apply(ev data.Event) Change {
	f.init()
	switch ev.Type {
	case data.EventSiteUpdated:
		if ev.Site != nil {
			f.sites[ev.Site.ID] = *ev.Site
			return Change{Kind: KindSite, ID: ev.Site.ID}
		}
	case data.EventSiteDeleted:
		delete(f.sites, ev.ID)
		return Change{Kind: KindSite, ID: ev.ID, Deleted: true}
	case data.EventHostUpdated:
		if ev.Host != nil {
			relabel := f.putHost(*ev.Host)
			return Change{Kind: KindHost, ID: ev.Host.ID, Relabel: relabel}
		}
	case data.EventVMUpdated:
		if ev.VM != nil {
			if ev.VM.ActualState == data.StateDeleted && ev.VM.DesiredState == data.StateDeleted {
				return Change{Kind: KindVM, ID: ev.VM.ID, Deleted: true, Hosts: f.deleteVM(ev.VM.ID)}
			}
			return Change{Kind: KindVM, ID: ev.VM.ID, Hosts: f.putVM(*ev.VM)}
		}
	case data.EventVMDeleted:
		return Change{Kind: KindVM, ID: ev.ID, Deleted: true, Hosts: f.deleteVM(ev.ID)}
	case data.EventPlanUpdated:
		if ev.Plan != nil {
			f.putPlan(*ev.Plan)
			return Change{Kind: KindPlan, ID: ev.Plan.ID}
		}
	}
	return Change{}
}

// PutPlan records a plan the console just created, before its first event.
func (f *Fleet) PutPlan(p data.Plan) {
	f.init()
	f.putPlan(p)
}

// PutVM records a VM the console just created, before its first event,
// and says what changed.
func (f *Fleet) PutVM(v data.VM) Change {
	f.init()
	return Change{Kind: KindVM, ID: v.ID, Hosts: f.putVM(v)}
}

// Site returns a site by id.
func (f *Fleet) Site(id string) (data.Site, bool) { s, ok := f.sites[id]; return s, ok }

// Host returns a host by id.
func (f *Fleet) Host(id string) (data.Host, bool) { h, ok := f.hosts[id]; return h, ok }

// VM returns a VM by id.
func (f *Fleet) VM(id string) (data.VM, bool) { v, ok := f.vms[id]; return v, ok }

// Plan returns a plan by id.
func (f *Fleet) Plan(id string) (data.Plan, bool) { p, ok := f.plans[id]; return p, ok }

// SiteName is the site's name, or its short id when unknown.
func (f *Fleet) SiteName(id string) string {
	if s, ok := f.sites[id]; ok {
		return s.Name
	}
	return id
}

// HostName is the host's name, or its id when unknown.
func (f *Fleet) HostName(id string) string {
	if h, ok := f.hosts[id]; ok {
		return h.Hostname
	}
	return id
}

// VMName is the VM's name (remembered after it is deleted), or the
// distinguishing part of its id when it was never seen.
func (f *Fleet) VMName(id string) string {
	if v, ok := f.vms[id]; ok {
		return v.Name
	}
	if n, ok := f.names[id]; ok {
		return n
	}
	return render.ShortID(id)
}

// Sites lists sites by name.
func (f *Fleet) Sites() []data.Site {
	out := make([]data.Site, 0, len(f.sites))
	for _, s := range f.sites {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b data.Site) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Hosts lists hosts, optionally only one site's ("" for all).
func (f *Fleet) Hosts(siteID string) []data.Host {
	out := make([]data.Host, 0, len(f.hosts))
	for _, h := range f.hosts {
		if siteID == "" || h.SiteID == siteID {
			out = append(out, h)
		}
	}
	return out
}

// VMFilter scopes a VM listing; empty fields match everything.
type VMFilter struct {
	SiteID string
	HostID string
}

// Match reports whether v is in scope.
func (s VMFilter) Match(v data.VM) bool {
	return (s.SiteID == "" || v.SiteID == s.SiteID) && (s.HostID == "" || v.HostID == s.HostID)
}

// VMs lists VMs in scope.
func (f *Fleet) VMs(s VMFilter) []data.VM {
	out := make([]data.VM, 0, len(f.vms))
	for _, v := range f.vms {
		if s.Match(v) {
			out = append(out, v)
		}
	}
	return out
}

// PlanFilter scopes a plan listing; empty fields match everything.
type PlanFilter struct {
	SiteID string
	VMID   string
}

// Match reports whether p is in scope.
func (s PlanFilter) Match(p data.Plan) bool {
	if s.SiteID != "" && p.SiteID != s.SiteID {
		return false
	}
	if s.VMID == "" {
		return true
	}
	return slices.ContainsFunc(p.Actions, func(a data.Action) bool { return a.VMID == s.VMID })
}

// Plans lists plans in scope.
func (f *Fleet) Plans(s PlanFilter) []data.Plan {
	out := make([]data.Plan, 0, len(f.plans))
	for _, p := range f.plans {
		if s.Match(p) {
			out = append(out, p)
		}
	}
	return out
}

// LatestPlan is the newest plan with an action on the VM.
func (f *Fleet) LatestPlan(vmID string) (data.Plan, bool) {
	p, ok := f.plans[f.vmPlan[vmID]]
	return p, ok
}

// CPUHistory is the host's recent CPU percentages, oldest first.
func (f *Fleet) CPUHistory(hostID string) []float64 { return f.cpu[hostID] }

// MemHistory is the host's recent memory use in percent, oldest first.
func (f *Fleet) MemHistory(hostID string) []float64 { return f.mem[hostID] }

// VMCount is the number of VMs on a host.
func (f *Fleet) VMCount(hostID string) int { return f.hostVMs[hostID] }

// Summary is the fleet health of one site.
type Summary struct {
	Hosts, Online, Offline, VMs, Drift int
}

// Summarize returns each site's health by site id. The counts are kept
// current as objects change, so this costs one copy per site.
func (f *Fleet) Summarize() map[string]Summary {
	out := make(map[string]Summary, len(f.sums))
	for id, s := range f.sums {
		out[id] = s
	}
	return out
}
