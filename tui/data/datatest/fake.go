package datatest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kubedoio/n-kudo/tui/data"
)

// Epoch is the fixed "now" of fixtures, so relative times render the same
// in every golden file.
var Epoch = time.Date(2026, 11, 27, 23, 0, 0, 0, time.UTC)

// Fixture is the fixed data a Fake serves.
type Fixture struct {
	Tenants []data.Tenant
	Sites   []data.Site
	Hosts   []data.Host
	VMs     []data.VM
	Plans   []data.Plan
	Logs    map[data.LogTarget][]data.LogLine
}

// Call records one mutating request made through the Fake.
type Call struct {
	Op     string
	Target string
}

// Fake is a data.Source over a Fixture. It is safe for concurrent use.
type Fake struct {
	mu       sync.Mutex // guards the following
	fx       Fixture
	down     bool
	calls    []Call
	lists    int
	nextPlan int
	logChans map[data.LogTarget]chan data.LogBatch

	events chan data.Event
}

var _ data.Source = (*Fake)(nil)

// New returns a Fake serving a copy of fx.
func New(fx Fixture) *Fake {
	return &Fake{
		fx: Fixture{
			Tenants: slices.Clone(fx.Tenants),
			Sites:   slices.Clone(fx.Sites),
			Hosts:   slices.Clone(fx.Hosts),
			VMs:     slices.Clone(fx.VMs),
			Plans:   slices.Clone(fx.Plans),
			Logs:    fx.Logs,
		},
		logChans: make(map[data.LogTarget]chan data.LogBatch),
		// Buffered so tests can push before the UI subscribes.
		events: make(chan data.Event, 1024),
	}
}

// SetDown makes every call fail with data.ErrUnavailable (true) or succeed
// again (false), as a server outage would.
func (f *Fake) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// Update replaces the listed data, as if it changed while the stream was away.
func (f *Fake) Update(fn func(fx *Fixture)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.fx)
}

// Push queues an event for the subscriber.
func (f *Fake) Push(ev data.Event) { f.events <- ev }

// PushLog sends lines to the tail following target, if one is open, and
// reports whether one was.
func (f *Fake) PushLog(target data.LogTarget, lines ...data.LogLine) bool {
	f.mu.Lock()
	ch, ok := f.logChans[target]
	f.mu.Unlock()
	if !ok {
		return false
	}
	ch <- data.LogBatch{Lines: lines}
	return true
}

// Following reports whether a tail of target is open.
func (f *Fake) Following(target data.LogTarget) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.logChans[target]
	return ok
}

// Calls returns the mutating requests made so far.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Lists counts VM list calls, which the UI makes on every (re)load.
func (f *Fake) Lists() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists
}

func (f *Fake) check() error {
	if f.down {
		return data.ErrUnavailable
	}
	return nil
}

// Tenants implements data.Source.
func (f *Fake) Tenants(context.Context) ([]data.Tenant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(); err != nil {
		return nil, err
	}
	if f.fx.Tenants == nil {
		return nil, data.ErrForbidden
	}
	return slices.Clone(f.fx.Tenants), nil
}

// Sites implements data.Source.
func (f *Fake) Sites(context.Context) ([]data.Site, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(); err != nil {
		return nil, err
	}
	return slices.Clone(f.fx.Sites), nil
}

// Hosts implements data.Source.
func (f *Fake) Hosts(context.Context) ([]data.Host, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(); err != nil {
		return nil, err
	}
	return slices.Clone(f.fx.Hosts), nil
}

// VMs implements data.Source.
func (f *Fake) VMs(context.Context) ([]data.VM, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(); err != nil {
		return nil, err
	}
	f.lists++
	return slices.Clone(f.fx.VMs), nil
}

// Plans implements data.Source.
func (f *Fake) Plans(context.Context) ([]data.Plan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(); err != nil {
		return nil, err
	}
	return slices.Clone(f.fx.Plans), nil
}

// VMAction implements data.Source: it records the call and answers with a
// pending plan whose id is plan-N.
func (f *Fake) VMAction(_ context.Context, vmID string, op data.VMOp) (data.Plan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(); err != nil {
		return data.Plan{}, err
	}
	i := slices.IndexFunc(f.fx.VMs, func(v data.VM) bool { return v.ID == vmID })
	if i < 0 {
		return data.Plan{}, fmt.Errorf("vm %s: %w", vmID, data.ErrNotFound)
	}
	if op == data.OpReboot && f.fx.VMs[i].DesiredState != data.StateRunning {
		// As internal/api answers (vm.go, CodeVMNotRunning): 409.
		return data.Plan{}, fmt.Errorf("reboot vm %s: %w", vmID, &data.Refusal{Code: "vm_not_running",
			Message: fmt.Sprintf("vm %s is meant to be %s; start it instead of rebooting it", vmID, f.fx.VMs[i].DesiredState)})
	}
	f.calls = append(f.calls, Call{Op: string(op), Target: vmID})
	f.nextPlan++
	id := fmt.Sprintf("plan-%d", f.nextPlan)
	return data.Plan{
		ID:        id,
		SiteID:    f.fx.VMs[i].SiteID,
		Status:    data.StatusPending,
		CreatedAt: Epoch,
		Actions: []data.Action{{
			ID:     id + "-a1",
			Type:   "MicroVM" + capitalize(string(op)),
			VMID:   vmID,
			Status: data.StatusPending,
		}},
	}, nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// CreateVM implements data.Source.
func (f *Fake) CreateVM(_ context.Context, spec data.VMSpec) (data.VM, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(); err != nil {
		return data.VM{}, err
	}
	f.calls = append(f.calls, Call{Op: "create", Target: spec.Name})
	if spec.HostID == "" {
		// Like the server: the least loaded online host of the site.
		h, err := f.place(spec.SiteID)
		if err != nil {
			return data.VM{}, err
		}
		spec.HostID = h
	}
	vm := data.VM{
		ID:           fmt.Sprintf("vm-new-%d", len(f.calls)),
		Name:         spec.Name,
		SiteID:       spec.SiteID,
		HostID:       spec.HostID,
		DesiredState: data.StateRunning,
		ActualState:  data.StateCreating,
		VCPUs:        spec.VCPUs,
		MemoryMiB:    spec.MemoryMiB,
	}
	f.fx.VMs = append(f.fx.VMs, vm)
	return vm, nil
}

// ErrNoHost is CreateVM's answer when no host of the site is online to
// place a VM on.
var ErrNoHost = errors.New("no host of the site is online")

// place picks the online host of site with the fewest VMs (the first
// listed on a tie). Must be called with f.mu held.
func (f *Fake) place(site string) (string, error) {
	best, bestN := "", 0
	for _, h := range f.fx.Hosts {
		if h.SiteID != site || !h.Online {
			continue
		}
		n := 0
		for _, v := range f.fx.VMs {
			if v.HostID == h.ID {
				n++
			}
		}
		if best == "" || n < bestN {
			best, bestN = h.ID, n
		}
	}
	if best == "" {
		// As internal/api answers (vm.go, CodeNoHostAvailable): 409.
		return "", fmt.Errorf("placing a vm in site %s: %w", site, &data.Refusal{Code: "no_host_available",
			Message: fmt.Sprintf("no host of site %s is online to place the vm on", site), Err: ErrNoHost})
	}
	return best, nil
}

// CreateEnrollmentToken implements data.Source.
func (f *Fake) CreateEnrollmentToken(_ context.Context, siteID string) (data.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(); err != nil {
		return data.Token{}, err
	}
	f.calls = append(f.calls, Call{Op: "token", Target: siteID})
	return data.Token{Token: "nket_" + siteID + "_once", ExpiresAt: Epoch.Add(15 * time.Minute)}, nil
}

// FollowLogs implements data.Source: it replays the fixture's lines, then
// forwards what PushLog sends until ctx ends.
func (f *Fake) FollowLogs(ctx context.Context, target data.LogTarget) <-chan data.LogBatch {
	in := make(chan data.LogBatch, 64)
	out := make(chan data.LogBatch)
	f.mu.Lock()
	backlog := slices.Clone(f.fx.Logs[target])
	f.logChans[target] = in
	f.mu.Unlock()
	go func() {
		defer close(out)
		defer func() {
			f.mu.Lock()
			if f.logChans[target] == in {
				delete(f.logChans, target)
			}
			f.mu.Unlock()
		}()
		if len(backlog) > 0 {
			select {
			case out <- data.LogBatch{Lines: backlog}:
			case <-ctx.Done():
				return
			}
		}
		for {
			select {
			case b := <-in:
				select {
				case out <- b:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// Subscribe implements data.Source: it announces Connected, then forwards
// what Push sends until ctx ends.
func (f *Fake) Subscribe(ctx context.Context) <-chan data.Event {
	out := make(chan data.Event)
	go func() {
		defer close(out)
		select {
		case out <- data.Event{Type: data.EventConn, Conn: data.Connected}:
		case <-ctx.Done():
			return
		}
		for {
			select {
			case ev := <-f.events:
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
