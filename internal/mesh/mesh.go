package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/kubedoio/n-kudo/internal/backoff"
	"github.com/kubedoio/n-kudo/internal/netbirdapi"
	"github.com/kubedoio/n-kudo/internal/store"
)

// Sentinel errors.
var (
	// ErrConfig: Options are unusable.
	ErrConfig = errors.New("invalid mesh options")
	// ErrUnavailable: NetBird's Management API failed the call (down,
	// refusing the token, rejecting the request).
	ErrUnavailable = errors.New("netbird unavailable")
	// ErrNoPeer: NetBird has no peer for the host.
	ErrNoPeer = errors.New("no netbird peer for host")
	// ErrSealed: a sealed setup key does not open with the given token.
	ErrSealed = errors.New("sealed setup key does not open")
	// ErrTokenRejected: NetBird refuses the server's API token (401, or
	// the 404 NetBird answers an unknown token with since v0.60.0).
	ErrTokenRejected = errors.New("netbird api token rejected")
	// ErrPeerInUse: NetBird refuses to delete the peer because a network
	// router, an ingress port or a proxy uses it (412).
	ErrPeerInUse = errors.New("netbird peer in use")
)

// Defaults of Options.
const (
	// DefaultPeerRefresh is how often the peer list is fetched; host views
	// are at most this stale on the management side.
	DefaultPeerRefresh = time.Minute
	// DefaultSweepInterval is how often expired tokens' keys are revoked.
	DefaultSweepInterval = time.Minute
	// JoinGrace is how long after a partly used token expired its setup
	// key stays valid: a host enrolled just before the expiry runs
	// `netbird up` moments later, or once NetBird is installed on it.
	// Never-used tokens' keys are revoked at expiry.
	JoinGrace = time.Hour
	// sweepBatch bounds one sweep's store read; a longer backlog is taken
	// in the following rounds.
	sweepBatch = 100
	// callTimeout bounds one background NetBird round.
	callTimeout = 30 * time.Second
)

// slog keys.
const (
	logKeyToken   = "token_id"
	logKeyKeyID   = "setup_key_id"
	logKeyError   = "error"
	logKeyRetryIn = "retry_in"
	logKeyPeers   = "peers"
	logKeyRevoked = "deleted"
)

// Options configures a Mesh.
type Options struct {
	// Client is the NetBird Management API client; required.
	Client *netbirdapi.Client
	// Setup mints and revokes the tokens' keys and finds and removes
	// peers; nil means netbirdapi.NewSetup(Client) with its defaults.
	Setup *netbirdapi.Setup
	// Store holds the enrollment tokens swept by Run; required.
	Store store.Store
	// ManagementURL is what agents pass to `netbird up --management-url`.
	ManagementURL string
	// PeerRefresh and SweepInterval pace Run; zero means the defaults.
	// PeerRefresh above DefaultPeerRefresh is capped to it.
	PeerRefresh   time.Duration
	SweepInterval time.Duration
	// Backoff paces retries after NetBird errors in Run; nil means 5s
	// doubling to 10m with jitter.
	Backoff *backoff.Backoff
	Logger  *slog.Logger
	// Registerer receives the NetBird credential gauge; nil registers
	// nothing.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// PeerState is the management side of a host, from the cached peer list.
type PeerState struct {
	PeerID    string    `json:"peer_id"`
	Connected bool      `json:"connected"`
	LastSeen  time.Time `json:"last_seen"`
}

// Mesh is the server's NetBird integration. It is safe for concurrent use;
// Run owns its background loops.
type Mesh struct {
	o     Options
	setup *netbirdapi.Setup
	log   *slog.Logger
	now   func() time.Time

	tokenGauge prometheus.Gauge

	mu        sync.RWMutex // guards the following
	byIP      map[netip.Addr][]PeerState
	byName    map[string][]PeerState
	refreshed time.Time
	cred      Credential
}

// New returns a Mesh.
func New(o Options) (*Mesh, error) {
	if o.Client == nil || o.Store == nil {
		return nil, fmt.Errorf("creating mesh: Client and Store are required: %w", ErrConfig)
	}
	if o.PeerRefresh <= 0 || o.PeerRefresh > DefaultPeerRefresh {
		o.PeerRefresh = DefaultPeerRefresh
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.Backoff == nil {
		o.Backoff = &backoff.Backoff{Base: 5 * time.Second, Max: 10 * time.Minute}
	}
	m := &Mesh{o: o, setup: o.Setup, log: o.Logger, now: o.Now, cred: Credential{State: CredentialUnknown}}
	if err := m.registerMetrics(o.Registerer); err != nil {
		return nil, fmt.Errorf("creating mesh: %w", err)
	}
	if m.setup == nil {
		s, err := netbirdapi.NewSetup(o.Client, netbirdapi.SetupOptions{})
		if err != nil {
			return nil, fmt.Errorf("creating mesh: %w", err)
		}
		m.setup = s
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m, nil
}

// ManagementURL is the NetBird management URL handed to enrolling agents.
func (m *Mesh) ManagementURL() string { return m.o.ManagementURL }

// MintForToken mints the setup key of an enrollment token for a
// NetBird-enabled site and seals it with the token secret. The key may be
// used as often as the token (uses, its max_uses), so every host enrolled
// with the token can join, and it expires JoinGrace after the token
// (tokenExpires), so a host enrolled at the last moment still joins and
// no key outlives its token for long. It returns the key id (to delete it
// later) and the sealed key (to store with the token); the plaintext is
// gone when it returns.
func (m *Mesh) MintForToken(ctx context.Context, site store.Site, tokenID uuid.UUID, uses int, tokenExpires time.Time, secret string) (keyID string, sealed []byte, err error) {
	if uses < 1 {
		return "", nil, fmt.Errorf("minting setup key for token %s: %d uses: %w", tokenID, uses, ErrConfig)
	}
	keyID, key, err := m.setup.MintForToken(ctx, netbirdapi.MintRequest{
		SiteName: site.Name, Groups: site.NetBirdGroups, TokenID: tokenID.String(), Uses: uses,
		ExpiresIn: tokenExpires.Sub(m.now()) + JoinGrace,
	})
	m.note(err)
	if err != nil {
		return "", nil, fmt.Errorf("minting setup key for token %s: %w", tokenID, m.classify(err))
	}
	sealed, err = Seal(secret, tokenID, key)
	if err != nil {
		// Never leave a live key nobody can use behind.
		m.dropQuietly(ctx, tokenID, keyID)
		return "", nil, fmt.Errorf("minting setup key for token %s: %w", tokenID, err)
	}
	return keyID, sealed, nil
}

// classify adds this package's sentinel to a NetBird failure:
// ErrTokenRejected or ErrPeerInUse where they apply, else ErrUnavailable.
func (m *Mesh) classify(err error) error {
	switch {
	case netbirdapi.IsTokenRejected(err):
		return fmt.Errorf("%w: %w", ErrTokenRejected, err)
	case errors.Is(err, netbirdapi.ErrPreconditionFailed):
		return fmt.Errorf("%w: %w", ErrPeerInUse, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// DropKey deletes a minted key, for a token that was never stored: no
// sweep will ever find it, and a key left behind, even revoked, would keep
// the site's groups from being deleted in NetBird.
func (m *Mesh) DropKey(ctx context.Context, keyID string) error {
	err := m.setup.DeleteKeyForToken(ctx, keyID)
	m.note(err)
	if err != nil {
		return fmt.Errorf("deleting setup key %s: %w", keyID, m.classify(err))
	}
	return nil
}

func (m *Mesh) dropQuietly(ctx context.Context, tokenID uuid.UUID, keyID string) {
	if err := m.DropKey(context.WithoutCancel(ctx), keyID); err != nil {
		m.log.LogAttrs(ctx, slog.LevelWarn, "deleting unused setup key failed; the expiry sweep cannot see it",
			slog.String(logKeyToken, tokenID.String()), slog.String(logKeyKeyID, keyID), slog.String(logKeyError, err.Error()))
	}
}

// RemovePeer deletes the NetBird peer of a host (of a revoked agent),
// found by the overlay IP the agent last reported, else by host name. It
// returns the removed peer's id; no peer wraps ErrNoPeer, a peer NetBird
// keeps because a network router, an ingress port or a proxy uses it
// ErrPeerInUse, a refused API token ErrTokenRejected.
func (m *Mesh) RemovePeer(ctx context.Context, h store.Host) (string, error) {
	var queries []string
	if ip := reportedIP(h.NetBird); ip.IsValid() {
		queries = append(queries, ip.String())
	}
	if h.Hostname != "" {
		queries = append(queries, h.Hostname)
	}
	if len(queries) == 0 {
		return "", fmt.Errorf("removing peer of host %s: no address or name to look for: %w", h.ID, ErrNoPeer)
	}
	var (
		peer netbirdapi.Peer
		err  error
	)
	for _, q := range queries {
		peer, err = m.setup.PeerForHost(ctx, q)
		if !errors.Is(err, netbirdapi.ErrNotFound) {
			break
		}
	}
	// PeerForHost lists peers: its ErrNotFound is a match over a listing
	// that worked, a token NetBird refuses is ErrTokenRejected.
	m.note(ignoreNotFound(err))
	switch {
	case errors.Is(err, netbirdapi.ErrNotFound) && !netbirdapi.IsTokenRejected(err):
		return "", fmt.Errorf("removing peer of host %s: %w", h.ID, ErrNoPeer)
	case err != nil:
		return "", fmt.Errorf("removing peer of host %s: %w", h.ID, m.classify(err))
	}
	err = m.setup.DeletePeerForAgent(ctx, peer.ID)
	m.note(err)
	if err != nil {
		err = m.classify(err)
		if errors.Is(err, ErrPeerInUse) {
			err = fmt.Errorf("peer in use by a network router, an ingress port or a proxy in NetBird; free it there, then delete the peer: %w", err)
		}
		return peer.ID, fmt.Errorf("removing peer %s of host %s: %w", peer.ID, h.ID, err)
	}
	m.forget(peer.ID)
	return peer.ID, nil
}

func ignoreNotFound(err error) error {
	if errors.Is(err, netbirdapi.ErrNotFound) && !netbirdapi.IsTokenRejected(err) {
		return nil
	}
	return err
}

// Peer returns the cached management side of a host, matched by the
// overlay IP its agent reported, else by host name. It never calls
// NetBird; false means no single peer matches (or no list yet).
func (m *Mesh) Peer(h store.Host) (PeerState, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if ip := reportedIP(h.NetBird); ip.IsValid() {
		if ps := m.byIP[ip]; len(ps) == 1 {
			return ps[0], true
		}
	}
	if ps := m.byName[strings.ToLower(h.Hostname)]; len(ps) == 1 {
		return ps[0], true
	}
	return PeerState{}, false
}

// Run keeps the peer cache fresh and sweeps expired tokens' setup keys
// until ctx is done. NetBird failures are logged and retried with
// backoff; they never end Run.
func (m *Mesh) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		m.loop(gctx, "refreshing netbird peers", m.o.PeerRefresh, m.o.PeerRefresh, func(ctx context.Context) error {
			_, err := m.RefreshPeers(ctx)
			return err
		})
		return nil
	})
	g.Go(func() error {
		m.loop(gctx, "deleting expired setup keys", m.o.SweepInterval, 0, func(ctx context.Context) error {
			_, err := m.Sweep(ctx)
			return err
		})
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// loop runs round now and then every interval. After a failure the next
// round waits for the backoff delay instead, capped at maxWait when it is
// positive: the peer cache must not go stale for longer than its refresh
// period, while the sweep may rest longer to spare a struggling NetBird.
func (m *Mesh) loop(ctx context.Context, what string, interval, maxWait time.Duration, round func(context.Context) error) {
	b := &backoff.Backoff{Base: m.o.Backoff.Base, Max: m.o.Backoff.Max}
	failures := 0
	for {
		rctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := round(rctx)
		cancel()
		wait := interval
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			wait = b.Next(failures)
			if maxWait > 0 {
				wait = min(wait, maxWait)
			}
			failures++
			m.log.LogAttrs(ctx, slog.LevelWarn, what+" failed",
				slog.String(logKeyError, err.Error()), slog.Duration(logKeyRetryIn, wait))
		default:
			failures = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// RefreshPeers fetches the peer list into the cache and returns its size.
func (m *Mesh) RefreshPeers(ctx context.Context) (int, error) {
	peers, err := m.o.Client.ListPeers(ctx)
	m.note(err)
	if err != nil {
		return 0, fmt.Errorf("refreshing peers: %w", m.classify(err))
	}
	byIP := make(map[netip.Addr][]PeerState, len(peers))
	byName := make(map[string][]PeerState, len(peers))
	for _, p := range peers {
		st := PeerState{PeerID: p.ID, Connected: p.Connected, LastSeen: p.LastSeen.UTC()}
		for _, s := range []string{p.IP, p.IPv6} {
			if a := parseAddr(s); a.IsValid() {
				byIP[a] = append(byIP[a], st)
			}
		}
		seen := map[string]bool{}
		for _, n := range []string{p.Hostname, p.Name, firstLabel(p.DNSLabel)} {
			n = strings.ToLower(n)
			if n != "" && !seen[n] {
				seen[n] = true
				byName[n] = append(byName[n], st)
			}
		}
	}
	m.mu.Lock()
	m.byIP, m.byName, m.refreshed = byIP, byName, m.now()
	m.mu.Unlock()
	m.log.LogAttrs(ctx, slog.LevelDebug, "netbird peers refreshed", slog.Int(logKeyPeers, len(peers)))
	return len(peers), nil
}

// Sweep deletes the setup keys of enrollment tokens that are done with:
// never used and expired, or used (partly or wholly) and JoinGrace past
// their expiry, when a host enrolled at the last moment has had its
// chance to join. Deleting rather than revoking keeps the keys from piling
// up in NetBird, which also refuses to delete a group any key names. It
// forgets each key and returns how many it deleted, stopping at the first
// NetBird failure so the caller can back off.
func (m *Mesh) Sweep(ctx context.Context) (int, error) {
	now := m.now().UTC()
	toks, err := m.o.Store.TokensWithStaleSetupKeys(ctx, now, now.Add(-JoinGrace), sweepBatch)
	if err != nil {
		return 0, fmt.Errorf("sweeping expired setup keys: %w", err)
	}
	n := 0
	for _, t := range toks {
		err := m.setup.DeleteKeyForToken(ctx, t.NetBirdSetupKeyID)
		m.note(err)
		if err != nil {
			return n, fmt.Errorf("sweeping expired setup keys: token %s: %w", t.ID, m.classify(err))
		}
		if err := m.o.Store.ClearTokenSetupKey(ctx, t.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return n, fmt.Errorf("sweeping expired setup keys: %w", err)
		}
		n++
	}
	if n > 0 {
		m.log.LogAttrs(ctx, slog.LevelInfo, "deleted setup keys of expired enrollment tokens", slog.Int(logKeyRevoked, n))
	}
	return n, nil
}

func (m *Mesh) forget(peerID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	drop := func(ps []PeerState) []PeerState {
		out := ps[:0:0]
		for _, p := range ps {
			if p.PeerID != peerID {
				out = append(out, p)
			}
		}
		return out
	}
	for k, ps := range m.byIP {
		m.byIP[k] = drop(ps)
	}
	for k, ps := range m.byName {
		m.byName[k] = drop(ps)
	}
}

// reportedIP is the overlay IP in the agent's last NetBird report.
func reportedIP(raw json.RawMessage) netip.Addr {
	if len(raw) == 0 {
		return netip.Addr{}
	}
	var st struct {
		IP string `json:"ip"`
	}
	if json.Unmarshal(raw, &st) != nil {
		return netip.Addr{}
	}
	return parseAddr(st.IP)
}

// parseAddr accepts an address with or without a prefix length.
func parseAddr(s string) netip.Addr {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

func firstLabel(fqdn string) string {
	label, _, _ := strings.Cut(fqdn, ".")
	return label
}
