package netbird

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/backoff"
)

// DefaultInterval is how often Run reconciles: once per default heartbeat,
// so every heartbeat carries a state at most one interval old.
const DefaultInterval = 15 * time.Second

// Join backoff bounds: a failed join (bad key, management unreachable) is
// retried soon once, then at most every ten minutes, which keeps a fleet
// with a wrong key from hammering NetBird's management service.
const (
	joinBackoffBase = 10 * time.Second
	joinBackoffMax  = 10 * time.Minute
)

// slog keys of the Manager.
const (
	logKeyState     = "state"
	logKeyPrevState = "previous_state"
	logKeyRetryIn   = "retry_in"
	logKeyAttempt   = "attempt"
)

// ManagerOptions configures a Manager.
type ManagerOptions struct {
	// Enabled turns NetBird support on; when false the state is always
	// "disabled" and the client is never called.
	Enabled bool
	// Client reaches the NetBird client; required when Enabled.
	Client Client
	// AutoJoin makes Reconcile run Up when the peer is not connected and
	// a setup key is available.
	AutoJoin bool
	// SetupKey is where the setup key is kept; read at every join
	// attempt, so a key delivered later is picked up.
	SetupKey SetupKeyFile
	// ManagementURL and Hostname are passed to Up.
	ManagementURL string
	Hostname      string
	// Probe, when set, is run while connected; a failing probe makes the
	// state "degraded".
	Probe *Probe
	// Backoff paces join attempts; nil means 10s doubling to 10m.
	Backoff *backoff.Backoff
	// Interval is Run's period; zero means DefaultInterval.
	Interval time.Duration
	// Logger receives state transitions and join attempts; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Manager keeps the agent's view of its NetBird membership. Reconcile
// observes the client, maps what it sees to one of the agentproto states
// and joins the mesh when configured to; Status returns the last
// observation without blocking, for heartbeats.
//
// States:
//
//	disabled       NetBird support is off
//	not-installed  the netbird binary is missing
//	disconnected   the daemon is not running or not answering sensibly,
//	               or it runs but is not connected to management
//	joining        Up is in progress, or the daemon reports Connecting
//	connected      management connected and everything below is healthy
//	degraded       connected, but signal is down, no relay is available,
//	               only some peers are connected, or the probe fails
type Manager struct {
	o       ManagerOptions
	log     *slog.Logger
	now     func() time.Time
	backoff *backoff.Backoff

	// reconcileMu serialises Reconcile, so two callers never run Up at
	// the same time.
	reconcileMu sync.Mutex
	// Guarded by reconcileMu.
	attempts    int
	nextAttempt time.Time

	mu      sync.Mutex // guards the following
	status  agentproto.NetBirdStatus
	version string
}

// NewManager returns a Manager. Its status is "disabled" when o.Enabled is
// false and "disconnected" (not yet observed) until the first Reconcile.
func NewManager(o ManagerOptions) (*Manager, error) {
	if o.Enabled && o.Client == nil {
		return nil, errors.New("creating netbird manager: enabled without a client")
	}
	if o.Probe != nil {
		if err := o.Probe.Validate(); err != nil {
			return nil, fmt.Errorf("creating netbird manager: %w", err)
		}
	}
	m := &Manager{o: o, log: o.Logger, now: o.Now, backoff: o.Backoff}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.backoff == nil {
		m.backoff = &backoff.Backoff{Base: joinBackoffBase, Max: joinBackoffMax}
	}
	if m.o.Interval <= 0 {
		m.o.Interval = DefaultInterval
	}
	if o.Enabled {
		m.status = agentproto.NetBirdStatus{State: agentproto.NetBirdDisconnected, Error: "netbird state not observed yet"}
	} else {
		m.status = agentproto.NetBirdStatus{State: agentproto.NetBirdDisabled}
	}
	return m, nil
}

// Status returns the last observed state. It never blocks on the NetBird
// client, so a hung daemon cannot delay a heartbeat; ctx is accepted to
// match the agent's NetBirdSource interface.
func (m *Manager) Status(context.Context) agentproto.NetBirdStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.status
	if s.Probe != nil {
		p := *s.Probe
		s.Probe = &p
	}
	return s
}

// Version returns the NetBird daemon version last reported by the client,
// for the host facts; empty until observed.
func (m *Manager) Version() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.version
}

// Run reconciles until ctx is done, waiting Interval after each round
// ends rather than ticking: a round slowed by a stopped daemon (the CLI
// dials it for about 10 s) is followed by a full interval, not by another
// round at once, so the agent does not spend its time waiting on netbird.
// Status never waits on a round.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		m.Reconcile(ctx)
		t.Reset(m.o.Interval)
	}
}

// Reconcile observes the NetBird client once, joins the mesh if it should,
// publishes the result for Status and returns it. Every failure becomes a
// state and an error string.
func (m *Manager) Reconcile(ctx context.Context) agentproto.NetBirdStatus {
	m.reconcileMu.Lock()
	defer m.reconcileMu.Unlock()

	if !m.o.Enabled {
		return m.publish(ctx, agentproto.NetBirdStatus{State: agentproto.NetBirdDisabled})
	}
	st, raw, err := m.observe(ctx)
	if ctx.Err() != nil {
		// Shutting down: keep the last observation rather than report a
		// failure the agent caused itself.
		return m.Status(ctx)
	}
	if m.shouldJoin(raw, err, st) {
		st = m.join(ctx, st)
	}
	if st.State == agentproto.NetBirdConnected || st.State == agentproto.NetBirdDegraded {
		m.attempts = 0
		m.nextAttempt = time.Time{}
	}
	return m.publish(ctx, st)
}

// observe asks the client for its status and evaluates it, probe included.
func (m *Manager) observe(ctx context.Context) (agentproto.NetBirdStatus, *Status, error) {
	raw, err := m.o.Client.Status(ctx)
	if err != nil {
		return errorState(err), nil, err
	}
	if raw.DaemonVersion != "" {
		m.mu.Lock()
		m.version = raw.DaemonVersion
		m.mu.Unlock()
	}
	st := Evaluate(raw)
	if m.o.Probe != nil && (st.State == agentproto.NetBirdConnected || st.State == agentproto.NetBirdDegraded) {
		res := m.o.Probe.Run(ctx)
		st.Probe = &res
		if !res.OK {
			st.State = agentproto.NetBirdDegraded
			st.Error = joinReasons(st.Error, "probe: "+res.Error)
		}
	}
	return st, &raw, nil
}

// shouldJoin: only a daemon that answered and is idle or logged out can be
// helped by `netbird up`; a stopped daemon, a missing binary, a client
// that is already connecting, or a daemon Connected while management is
// unreachable (`up` only answers "Already connected"; the daemon retries
// by itself) cannot.
func (m *Manager) shouldJoin(raw *Status, err error, st agentproto.NetBirdStatus) bool {
	if !m.o.AutoJoin || err != nil || raw == nil || st.State != agentproto.NetBirdDisconnected || raw.DaemonStatus == DaemonConnected {
		return false
	}
	return !m.now().Before(m.nextAttempt)
}

// join runs Up with the stored setup key and re-observes.
func (m *Manager) join(ctx context.Context, before agentproto.NetBirdStatus) agentproto.NetBirdStatus {
	key, err := m.o.SetupKey.Read()
	if err != nil {
		if errors.Is(err, ErrNoSetupKey) {
			// Nothing to join with; not a failure worth backing off
			// from, the key may arrive at any time.
			return before
		}
		before.Error = joinReasons(before.Error, err.Error())
		return before
	}

	m.publish(ctx, agentproto.NetBirdStatus{State: agentproto.NetBirdJoining})
	up := UpOptions{SetupKey: key, SetupKeyFile: m.o.SetupKey.Path, ManagementURL: m.o.ManagementURL, Hostname: m.o.Hostname}
	m.log.LogAttrs(ctx, slog.LevelInfo, "joining netbird mesh", slog.Int(logKeyAttempt, m.attempts+1), slog.Any("up", up))
	upErr := m.o.Client.Up(ctx, up)
	if ctx.Err() != nil {
		return before
	}
	st, _, obsErr := m.observe(ctx)
	if upErr == nil && obsErr == nil && st.State != agentproto.NetBirdDisconnected {
		return st
	}
	delay := m.backoff.Next(m.attempts)
	m.attempts++
	m.nextAttempt = m.now().Add(delay)
	if errors.Is(upErr, ErrAlreadyConnected) && obsErr == nil {
		// The daemon connected between the status and the up, or an old
		// client without daemonStatus was Connected all along with
		// management out of reach: not a failed join, and the status
		// says how management is. Asking again is paced all the same.
		m.log.LogAttrs(ctx, slog.LevelInfo, "netbird daemon already connected; not joining",
			slog.Duration(logKeyRetryIn, delay), slog.String(logKeyError, st.Error))
		return st
	}

	failure := upErr
	if failure == nil {
		failure = fmt.Errorf("joining netbird mesh: still %s after up: %s", st.State, st.Error)
	}
	m.log.LogAttrs(ctx, slog.LevelWarn, "joining netbird mesh failed",
		slog.Int(logKeyAttempt, m.attempts), slog.Duration(logKeyRetryIn, delay),
		slog.String(logKeyError, scrub(failure.Error(), key)))
	st.Error = joinReasons(st.Error, scrub(failure.Error(), key))
	return st
}

// publish stores st for Status, logging a state change.
func (m *Manager) publish(ctx context.Context, st agentproto.NetBirdStatus) agentproto.NetBirdStatus {
	if len(st.Error) > agentproto.MaxErrorBytes {
		st.Error = truncateUTF8(st.Error, agentproto.MaxErrorBytes)
	}
	m.mu.Lock()
	prev := m.status
	m.status = st
	m.mu.Unlock()
	if prev.State != st.State {
		level := slog.LevelInfo
		if st.State == agentproto.NetBirdDegraded || st.State == agentproto.NetBirdDisconnected {
			level = slog.LevelWarn
		}
		m.log.LogAttrs(ctx, level, "netbird state changed",
			slog.String(logKeyState, st.State), slog.String(logKeyPrevState, prev.State),
			slog.String(logKeyError, st.Error))
	}
	return st
}

// Evaluate maps a NetBird client status to the agent's wire status,
// without the probe.
func Evaluate(s Status) agentproto.NetBirdStatus {
	out := agentproto.NetBirdStatus{
		FQDN:                s.FQDN,
		IP:                  overlayIP(s.NetBirdIP),
		PeersConnected:      s.Peers.Connected,
		PeersTotal:          s.Peers.Total,
		ManagementConnected: s.Management.Connected,
		SignalConnected:     s.Signal.Connected,
	}
	// Keep the counts consistent even if the client reports nonsense, so
	// the heartbeat still validates.
	out.PeersTotal = max(out.PeersTotal, 0)
	out.PeersConnected = min(max(out.PeersConnected, 0), out.PeersTotal)

	switch {
	case s.DaemonStatus == DaemonConnecting:
		out.State = agentproto.NetBirdJoining
		return out
	// Clients before daemonStatus existed report only the management
	// connection; judge those by it alone.
	case s.DaemonStatus != DaemonConnected && s.DaemonStatus != "":
		out.State = agentproto.NetBirdDisconnected
		reason := "daemon status " + orUnknown(s.DaemonStatus)
		if s.Management.Error != "" {
			reason = joinReasons(reason, "management: "+s.Management.Error)
		}
		out.Error = reason
		return out
	case !s.Management.Connected:
		out.State = agentproto.NetBirdDisconnected
		out.Error = "management disconnected"
		if s.Management.Error != "" {
			out.Error += ": " + s.Management.Error
		}
		if s.DaemonStatus == DaemonConnected {
			// `netbird up` cannot help here: it answers "Already
			// connected"; the daemon reconnects to management itself.
			out.Error += " (the daemon is logged in and reconnects by itself)"
		}
		return out
	}

	out.State = agentproto.NetBirdConnected
	var reasons []string
	if !s.Signal.Connected {
		r := "signal disconnected"
		if s.Signal.Error != "" {
			r += ": " + s.Signal.Error
		}
		reasons = append(reasons, r)
	}
	if s.Relays.Total > 0 && s.Relays.Available == 0 {
		reasons = append(reasons, "no relay available")
	}
	// With lazy connections NetBird leaves peers idle until traffic needs
	// them, so idle peers are by design there, not a fault.
	if !s.LazyConnectionEnabled && out.PeersConnected < out.PeersTotal {
		reasons = append(reasons, fmt.Sprintf("%d of %d peers connected", out.PeersConnected, out.PeersTotal))
	}
	if len(reasons) > 0 {
		out.State = agentproto.NetBirdDegraded
		out.Error = strings.Join(reasons, "; ")
	}
	return out
}

// errorState maps a client failure to a state.
func errorState(err error) agentproto.NetBirdStatus {
	st := agentproto.NetBirdStatus{State: agentproto.NetBirdDisconnected, Error: err.Error()}
	if errors.Is(err, ErrNotInstalled) {
		st.State = agentproto.NetBirdNotInstalled
	}
	return st
}

// overlayIP drops the prefix length NetBird reports with the address
// ("100.92.3.15/16"); an unparsable value is left out rather than sent.
func overlayIP(s string) string {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().String()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String()
	}
	return ""
}

func joinReasons(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func scrub(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, redacted)
}
