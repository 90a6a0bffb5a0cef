package remote

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/tui/data"
)

// ErrConfig is returned for a configuration New cannot use.
var ErrConfig = errors.New("invalid remote source configuration")

// eventsPath is the stream whose exchanges tell the connection state.
const eventsPath = "/v1/events"

// Options tune the source.
type Options struct {
	// OfflineAfter is how many stream failures in a row turn
	// "reconnecting" into "offline" (the client keeps retrying). Default 3.
	OfflineAfter int
}

// Source is a data.Source backed by the API. It is safe for concurrent use.
type Source struct {
	c    *client.Client
	opts Options

	mu    sync.Mutex // guards the following
	hosts map[uuid.UUID]client.Host
	// journals holds one journal per host listing in flight: the host
	// events received meanwhile, by host, replayed onto the listed hosts
	// when the listing ends. Its reads may predate them, and a patch
	// only repeats what changed, so dropping one loses it for good.
	journals []*hostJournal
	// watch is the running subscription's connection tracker; a Source
	// serves one subscription at a time (the console builds a new Source
	// per context), and a second Subscribe takes the reports over.
	watch *connWatch
}

var _ data.Source = (*Source)(nil)

// New builds the client from cfg, with a stream-state hook that turns the
// event stream's health into connection events (any OnStreamState already
// in cfg is still called), and returns the source over it.
func New(cfg client.Config, o Options) (*Source, error) {
	if o.OfflineAfter <= 0 {
		o.OfflineAfter = 3
	}
	s := &Source{opts: o, hosts: map[uuid.UUID]client.Host{}}
	next := cfg.OnStreamState
	cfg.OnStreamState = func(stream string, connected bool, err error) {
		if stream == eventsPath {
			s.streamState(connected, err)
		}
		if next != nil {
			next(stream, connected, err)
		}
	}
	c, err := client.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("building remote source: %w", err)
	}
	s.c = c
	return s, nil
}

// Close releases idle connections.
func (s *Source) Close() { s.c.Close() }

// streamState routes the client's report on the event stream to the
// subscription's watch. The client calls it on the goroutine running the
// stream, the one that also delivers events to the watch.
func (s *Source) streamState(connected bool, err error) {
	s.mu.Lock()
	w := s.watch
	s.mu.Unlock()
	switch {
	case w == nil:
	case connected:
		w.connected()
	case err != nil:
		w.failed(err)
	}
}

// mapErr adds data's sentinel to a client error so views can explain it.
func mapErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrUnreachable), errors.Is(err, client.ErrUnavailable):
		return fmt.Errorf("%s: %w: %w", what, data.ErrUnavailable, err)
	case errors.Is(err, client.ErrForbidden), errors.Is(err, client.ErrUnauthenticated):
		return fmt.Errorf("%s: %w: %w", what, data.ErrForbidden, err)
	case errors.Is(err, client.ErrNotFound):
		return fmt.Errorf("%s: %w: %w", what, data.ErrNotFound, err)
	}
	var ae *client.APIError
	if errors.As(err, &ae) {
		// The server's reason code travels on, so the console can say
		// "vm_not_running" instead of cutting a sentence in half.
		return fmt.Errorf("%s: %w", what, &data.Refusal{Code: ae.Code, Message: ae.Message, Err: err})
	}
	return fmt.Errorf("%s: %w", what, err)
}

func parseID(kind, id string) (uuid.UUID, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return uuid.Nil, fmt.Errorf("parsing %s id %q: %w", kind, id, data.ErrNotFound)
	}
	return u, nil
}

func collect[T, U any](ctx context.Context, what string, seq func(yield func(T, error) bool), conv func(T) U) ([]U, error) {
	var out []U
	for x, err := range seq {
		if err != nil {
			return nil, mapErr(what, err)
		}
		out = append(out, conv(x))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// Tenants implements data.Source.
func (s *Source) Tenants(ctx context.Context) ([]data.Tenant, error) {
	return collect(ctx, "listing tenants", s.c.AllTenants(ctx), convTenant)
}

// Sites implements data.Source.
func (s *Source) Sites(ctx context.Context) ([]data.Site, error) {
	return collect(ctx, "listing sites", s.c.AllSites(ctx), convSite)
}

// Hosts implements data.Source. The listing also seeds the cache partial
// host.updated events are merged onto; the events received while it ran
// are merged onto what it read, so neither an older listing nor an event
// it raced with is lost.
func (s *Source) Hosts(ctx context.Context) ([]data.Host, error) {
	j := &hostJournal{byHost: map[uuid.UUID][]client.Event{}}
	s.mu.Lock()
	s.journals = append(s.journals, j)
	s.mu.Unlock()
	listed, err := collect(ctx, "listing hosts", s.c.AllHosts(ctx, client.Filter{}), func(h client.Host) client.Host { return h })

	s.mu.Lock()
	defer s.mu.Unlock()
	s.journals = slices.DeleteFunc(s.journals, func(o *hostJournal) bool { return o == j })
	if err != nil {
		return nil, err
	}
	out := make([]data.Host, 0, len(listed))
	for _, h := range listed {
		for _, ev := range j.byHost[h.ID] {
			// Each event decoded once already; were one to fail now,
			// the listed fields would simply stay.
			if merged, err := ev.UpdateHost(h); err == nil {
				h = merged
			}
		}
		s.hosts[h.ID] = h
		out = append(out, convHost(h))
	}
	return out, nil
}

// hostJournal is the host events received during one listing.
type hostJournal struct {
	byHost map[uuid.UUID][]client.Event
}

// VMs implements data.Source.
func (s *Source) VMs(ctx context.Context) ([]data.VM, error) {
	return collect(ctx, "listing vms", s.c.AllVMs(ctx, client.Filter{}), convVM)
}

// Plans implements data.Source.
func (s *Source) Plans(ctx context.Context) ([]data.Plan, error) {
	return collect(ctx, "listing plans", s.c.AllPlans(ctx, client.Filter{}), convPlan)
}

// VMAction implements data.Source. Each request carries a fresh
// idempotency key, so a retried request never runs the action twice.
func (s *Source) VMAction(ctx context.Context, vmID string, op data.VMOp) (data.Plan, error) {
	id, err := parseID("vm", vmID)
	if err != nil {
		return data.Plan{}, err
	}
	key := client.WithIdempotencyKey(client.NewIdempotencyKey())
	var p client.Plan
	switch op {
	case data.OpStart:
		p, err = s.c.StartVM(ctx, id, key)
	case data.OpStop:
		p, err = s.c.StopVM(ctx, id, key)
	case data.OpReboot:
		p, err = s.c.RebootVM(ctx, id, key)
	case data.OpDelete:
		p, err = s.c.DeleteVM(ctx, id)
	default:
		return data.Plan{}, fmt.Errorf("%s vm %s: %w: unknown operation", op, vmID, ErrConfig)
	}
	if err != nil {
		return data.Plan{}, mapErr(fmt.Sprintf("%s vm %s", op, vmID), err)
	}
	return convPlan(p), nil
}

// CreateVM implements data.Source.
func (s *Source) CreateVM(ctx context.Context, spec data.VMSpec) (data.VM, error) {
	site, err := parseID("site", spec.SiteID)
	if err != nil {
		return data.VM{}, err
	}
	req := client.CreateVMRequest{Name: spec.Name, SiteID: site, VCPUs: spec.VCPUs, MemoryMiB: spec.MemoryMiB, DiskImage: spec.DiskImage}
	if spec.HostID != "" {
		host, err := parseID("host", spec.HostID)
		if err != nil {
			return data.VM{}, err
		}
		req.HostID = &host
	}
	v, err := s.c.CreateVM(ctx, req, client.WithIdempotencyKey(client.NewIdempotencyKey()))
	if err != nil {
		return data.VM{}, mapErr("creating vm "+spec.Name, err)
	}
	return convVM(v.VM), nil
}

// CreateEnrollmentToken implements data.Source.
func (s *Source) CreateEnrollmentToken(ctx context.Context, siteID string) (data.Token, error) {
	site, err := parseID("site", siteID)
	if err != nil {
		return data.Token{}, err
	}
	t, err := s.c.CreateEnrollmentToken(ctx, site, client.CreateEnrollmentTokenRequest{}, client.WithIdempotencyKey(client.NewIdempotencyKey()))
	if err != nil {
		return data.Token{}, mapErr("creating enrollment token for site "+siteID, err)
	}
	return data.Token{Token: t.Token, ExpiresAt: t.ExpiresAt}, nil
}

// FollowLogs implements data.Source: an execution's log lines, or a VM's
// serial console cut into lines. The goroutine it starts ends when the
// tail ends or ctx does; the channel closes after it.
func (s *Source) FollowLogs(ctx context.Context, target data.LogTarget) <-chan data.LogBatch {
	out := make(chan data.LogBatch)
	go func() {
		defer close(out)
		send := func(b data.LogBatch) error {
			select {
			case out <- b:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		var err error
		switch target.Kind {
		case data.LogExecution:
			err = s.followExecution(ctx, target.ID, send)
		case data.LogConsole:
			err = s.followConsole(ctx, target.ID, send)
		default:
			err = fmt.Errorf("following logs: %w: unknown log kind %d", ErrConfig, target.Kind)
		}
		if err != nil && ctx.Err() == nil {
			_ = send(data.LogBatch{Err: err})
		}
	}()
	return out
}

func (s *Source) followExecution(ctx context.Context, id string, send func(data.LogBatch) error) error {
	exec, err := parseID("execution", id)
	if err != nil {
		return err
	}
	err = s.c.FollowLogs(ctx, exec, 0, func(l client.LogLine) error {
		return send(data.LogBatch{Lines: []data.LogLine{{At: l.At, Stream: l.Stream, Text: l.Message}}})
	})
	return mapErr("following logs", err)
}

func (s *Source) followConsole(ctx context.Context, id string, send func(data.LogBatch) error) error {
	vm, err := parseID("vm", id)
	if err != nil {
		return err
	}
	var lines ConsoleLines
	err = s.c.FollowConsole(ctx, vm, func(chunk []byte) error {
		if ls := lines.Write(chunk, time.Now()); len(ls) > 0 {
			return send(data.LogBatch{Lines: ls})
		}
		return nil
	})
	return mapErr("following console", err)
}

// Subscribe implements data.Source: one goroutine runs the client's
// resuming event stream until ctx ends and forwards converted events and
// connection changes; the channel closes after it.
func (s *Source) Subscribe(ctx context.Context) <-chan data.Event {
	out := make(chan data.Event)
	go func() {
		defer close(out)
		send := func(ev data.Event) error {
			select {
			case out <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if send(data.Event{Type: data.EventConn, Conn: data.Connecting}) != nil {
			return
		}
		w := &connWatch{send: send, offlineAfter: s.opts.OfflineAfter}
		s.mu.Lock()
		s.watch = w
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			if s.watch == w {
				s.watch = nil
			}
			s.mu.Unlock()
		}()
		err := s.c.Events(ctx, 0, func(ev client.Event) error {
			w.delivered()
			de, ok := s.convEvent(ev)
			if !ok {
				return nil
			}
			return send(de)
		})
		if ctx.Err() == nil {
			// The client gave up (refused credentials, bad answers).
			_ = send(data.Event{Type: data.EventConn, Conn: data.Offline, Err: mapErr("following events", err)})
		}
	}()
	return out
}

// convEvent converts one stream event. An object that cannot be decoded is
// turned into a resync: re-listing is always correct, skipping is not.
func (s *Source) convEvent(ev client.Event) (data.Event, bool) {
	out := data.Event{Seq: ev.Seq, Type: data.EventType(ev.Type), At: ev.At, ID: ev.ID.String()}
	resync := data.Event{Seq: ev.Seq, Type: data.EventResync}
	switch ev.Type {
	case client.EventResync:
		return resync, true
	case client.EventHostUpdated:
		s.mu.Lock()
		cached, known := s.hosts[ev.ID]
		h, err := ev.UpdateHost(cached)
		// A patch of a host never seen whole carries no site: it is
		// not a host to show.
		orphan := !known && h.SiteID == uuid.Nil
		listing := len(s.journals) > 0
		if err == nil {
			for _, j := range s.journals {
				j.byHost[ev.ID] = append(j.byHost[ev.ID], ev)
			}
			if !orphan {
				s.hosts[h.ID] = h
			}
		}
		s.mu.Unlock()
		switch {
		case err != nil:
			return resync, true
		case orphan && listing:
			// The listing in flight shows the host, this patch merged in.
			return data.Event{}, false
		case orphan:
			// Its creation came before the stream: only a listing can
			// show it.
			return resync, true
		}
		dh := convHost(h)
		out.Host, out.ID = &dh, dh.ID
	case client.EventAgentUpdated:
		a, err := ev.Agent()
		if err != nil {
			return resync, true
		}
		out.Agent = &data.Agent{ID: a.ID.String(), HostID: a.HostID.String(), SiteID: a.SiteID.String(), Status: a.Status, Revoked: a.Revoked}
	case client.EventVMUpdated:
		v, err := ev.VM()
		if err != nil {
			return resync, true
		}
		dv := convVM(v)
		out.VM, out.ID = &dv, dv.ID
	case client.EventPlanUpdated:
		p, err := ev.Plan()
		if err != nil {
			return resync, true
		}
		dp := convPlan(p)
		out.Plan, out.ID = &dp, dp.ID
	case client.EventSiteUpdated:
		st, err := ev.Site()
		if err != nil {
			return resync, true
		}
		ds := convSite(st)
		out.Site, out.ID = &ds, ds.ID
	case client.EventVMDeleted, client.EventSiteDeleted:
	default:
		// Event types of a newer server: nothing here shows them.
		return data.Event{}, false
	}
	return out, true
}

// connWatch turns the event stream's reports into connection states. It
// is called only from the stream's goroutine (the client reports state
// and delivers events on the goroutine that runs Events), so it needs no
// lock.
type connWatch struct {
	send         func(data.Event) error
	offlineAfter int
	failures     int
	state        data.ConnState
}

func (w *connWatch) set(st data.ConnState, err error) {
	if st == w.state && st == data.Connected {
		return
	}
	w.state = st
	_ = w.send(data.Event{Type: data.EventConn, Conn: st, Err: err})
}

func (w *connWatch) connected() {
	w.failures = 0
	w.set(data.Connected, nil)
}

func (w *connWatch) delivered() {
	if w.state != data.Connected {
		w.connected()
	}
}

func (w *connWatch) failed(err error) {
	w.failures++
	st := data.Reconnecting
	if w.failures >= w.offlineAfter {
		st = data.Offline
	}
	w.set(st, fmt.Errorf("%w: %w", data.ErrUnavailable, err))
}
