package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
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

	mu    sync.Mutex // guards hosts
	hosts map[uuid.UUID]client.Host
}

var _ data.Source = (*Source)(nil)

// New builds the client from cfg with a transport that reports the event
// stream's health, and returns the source over it.
func New(cfg client.Config, o Options) (*Source, error) {
	if o.OfflineAfter <= 0 {
		o.OfflineAfter = 3
	}
	hc, err := httpClient(cfg)
	if err != nil {
		return nil, err
	}
	cfg.HTTPClient = hc
	c, err := client.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("building remote source: %w", err)
	}
	return &Source{c: c, opts: o, hosts: map[uuid.UUID]client.Host{}}, nil
}

// Close releases idle connections.
func (s *Source) Close() { s.c.Close() }

// httpClient returns cfg's HTTP client (or one trusting cfg's CA, built
// like the client builds it) with its transport wrapped by a watcher.
func httpClient(cfg client.Config) (*http.Client, error) {
	if cfg.HTTPClient != nil {
		hc := *cfg.HTTPClient
		base := hc.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		hc.Transport = watcher{base: base}
		return &hc, nil
	}
	pem := cfg.CAPEM
	if len(pem) == 0 && cfg.CAFile != "" {
		var err error
		if pem, err = os.ReadFile(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("building remote source: reading CA file: %w", err)
		}
	}
	pool := x509.NewCertPool()
	if len(pem) == 0 || !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("building remote source: %w: a CA certificate is required", ErrConfig)
	}
	return &http.Client{Transport: watcher{base: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
	}}}, nil
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
// host.updated events are merged onto.
func (s *Source) Hosts(ctx context.Context) ([]data.Host, error) {
	return collect(ctx, "listing hosts", s.c.AllHosts(ctx, client.Filter{}), func(h client.Host) data.Host {
		s.mu.Lock()
		s.hosts[h.ID] = h
		s.mu.Unlock()
		return convHost(h)
	})
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

// ErrNoConsole is reported by console tails: the API client has no VM
// console stream yet.
var ErrNoConsole = errors.New("the api client cannot tail VM consoles yet")

// FollowLogs implements data.Source. The goroutine it starts ends when the
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
		if target.Kind != data.LogExecution {
			_ = send(data.LogBatch{Err: ErrNoConsole})
			return
		}
		exec, err := parseID("execution", target.ID)
		if err != nil {
			_ = send(data.LogBatch{Err: err})
			return
		}
		err = s.c.FollowLogs(ctx, exec, 0, func(l client.LogLine) error {
			return send(data.LogBatch{Lines: []data.LogLine{{At: l.At, Stream: l.Stream, Text: l.Message}}})
		})
		if err != nil && ctx.Err() == nil {
			_ = send(data.LogBatch{Err: mapErr("following logs", err)})
		}
	}()
	return out
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
		err := s.c.Events(withWatch(ctx, w), 0, func(ev client.Event) error {
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
		h, err := ev.UpdateHost(s.hosts[ev.ID])
		if err == nil {
			s.hosts[h.ID] = h
		}
		s.mu.Unlock()
		if err != nil {
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

type watchKey struct{}

// withWatch attaches the stream's watcher to the request context, the way
// net/http/httptrace attaches a ClientTrace: it is per-request
// instrumentation, not a service.
func withWatch(ctx context.Context, w *connWatch) context.Context {
	return context.WithValue(ctx, watchKey{}, w)
}

// connWatch turns the stream's HTTP exchanges into connection states. It
// is called only from the stream's goroutine (the client reads the body on
// the goroutine that runs Events), so it needs no lock.
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

// watcher is the RoundTripper that reports the event stream's health to
// the connWatch in its request's context; other requests pass through.
type watcher struct{ base http.RoundTripper }

func (t watcher) RoundTrip(req *http.Request) (*http.Response, error) {
	w, _ := req.Context().Value(watchKey{}).(*connWatch)
	if w == nil || req.URL.Path != eventsPath {
		return t.base.RoundTrip(req)
	}
	resp, err := t.base.RoundTrip(req)
	switch {
	case err != nil:
		if req.Context().Err() == nil {
			w.failed(err)
		}
		return nil, err
	case resp.StatusCode != http.StatusOK:
		w.failed(fmt.Errorf("stream answered %s", resp.Status))
		return resp, nil
	}
	w.connected()
	resp.Body = &watchedBody{ReadCloser: resp.Body, w: w, ctx: req.Context()}
	return resp, nil
}

// watchedBody reports the stream breaking (EOF or a read error that is not
// our own cancellation) once.
type watchedBody struct {
	io.ReadCloser
	w    *connWatch
	ctx  context.Context
	done bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done && b.ctx.Err() == nil {
		b.done = true
		b.w.failed(fmt.Errorf("stream broke: %w", err))
	}
	return n, err
}
