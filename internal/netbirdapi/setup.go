package netbirdapi

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// DefaultKeyPrefix starts the name of every setup key Setup mints, so an
// operator browsing the NetBird dashboard sees which keys n-kudo owns.
const DefaultKeyPrefix = "nkudo"

// maxKeyNameSite bounds how much of a site name goes into a key name.
const maxKeyNameSite = 64

// SetupOptions configures a Setup.
type SetupOptions struct {
	// KeyPrefix starts every key name; empty means DefaultKeyPrefix.
	KeyPrefix string
	// KeyExpiry is the setup key lifetime; zero means MinSetupKeyExpiry,
	// the shortest NetBird accepts. Enrollment tokens live far shorter
	// (15m by default), so a key whose token expired unused must be
	// revoked with RevokeForToken rather than left to expire.
	KeyExpiry time.Duration
	// Ephemeral makes peers joined with the keys ephemeral: NetBird
	// removes them after a period offline.
	Ephemeral bool
}

// Setup is what enrollment and agent revocation need from NetBird: one
// setup key per enrollment token, usable as often as the token, revoked
// when the token dies with uses left, and the peer of a decommissioned
// agent removed.
type Setup struct {
	c *Client
	o SetupOptions
}

// NewSetup returns a Setup that calls NetBird through c.
func NewSetup(c *Client, o SetupOptions) (*Setup, error) {
	if c == nil {
		return nil, fmt.Errorf("creating netbird setup: nil client: %w", ErrConfig)
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultKeyPrefix
	}
	if o.KeyExpiry == 0 {
		o.KeyExpiry = MinSetupKeyExpiry
	}
	if o.KeyExpiry < MinSetupKeyExpiry || o.KeyExpiry > MaxSetupKeyExpiry || o.KeyExpiry%time.Second != 0 {
		return nil, fmt.Errorf("creating netbird setup: key expiry %s outside %s..%s in whole seconds: %w",
			o.KeyExpiry, MinSetupKeyExpiry, MaxSetupKeyExpiry, ErrConfig)
	}
	return &Setup{c: c, o: o}, nil
}

// MintForToken creates the setup key paired with an enrollment token of
// uses uses: a one-off key for a one-use token, otherwise a reusable key
// limited to uses peers, so every host enrolled with the token can join
// and no more; the configured expiry, auto-assigned to the site's groups
// (given by name). It returns the key's ID, to store with the token for
// RevokeForToken, and the plaintext key, to hand to the agent once.
func (s *Setup) MintForToken(ctx context.Context, siteName string, groups []string, tokenID string, uses int) (keyID, key string, err error) {
	if strings.TrimSpace(siteName) == "" || strings.TrimSpace(tokenID) == "" {
		return "", "", fmt.Errorf("minting setup key: site name and token id are required: %w", ErrInvalid)
	}
	if uses < 1 {
		return "", "", fmt.Errorf("minting setup key for site %q: usage limit %d below 1: %w", siteName, uses, ErrInvalid)
	}
	typ := SetupKeyOneOff
	if uses > 1 {
		typ = SetupKeyReusable
	}
	ids, err := s.c.ResolveGroups(ctx, groups)
	if err != nil {
		return "", "", fmt.Errorf("minting setup key for site %q: %w", siteName, err)
	}
	created, err := s.c.CreateSetupKey(ctx, CreateSetupKeyRequest{
		Name:       s.keyName(siteName, tokenID),
		Type:       typ,
		ExpiresIn:  int(s.o.KeyExpiry / time.Second),
		AutoGroups: ids,
		UsageLimit: uses,
		Ephemeral:  s.o.Ephemeral,
	})
	if err != nil {
		return "", "", fmt.Errorf("minting setup key for site %q: %w", siteName, err)
	}
	if created.ID == "" || created.Key == "" {
		return "", "", fmt.Errorf("minting setup key for site %q: answer without id or key: %w", siteName, ErrUnexpected)
	}
	return created.ID, created.Key, nil
}

// RevokeForToken revokes the setup key minted for a token that expired or
// was withdrawn with uses left. A key NetBird no longer has counts as revoked, so
// the call is safe to repeat.
func (s *Setup) RevokeForToken(ctx context.Context, keyID string) error {
	if err := s.c.RevokeSetupKey(ctx, keyID); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("revoking setup key for token: %w", err)
	}
	return nil
}

// PeerForHost finds the peer of a host by its NetBird IP or by its name:
// hostname, peer name or DNS label (with or without the account domain).
// No match wraps ErrNotFound, several ErrAmbiguous.
func (s *Setup) PeerForHost(ctx context.Context, hostOrIP string) (Peer, error) {
	q := strings.TrimSpace(hostOrIP)
	if q == "" {
		return Peer{}, fmt.Errorf("finding peer: empty host: %w", ErrInvalid)
	}
	var (
		peers []Peer
		err   error
		match func(Peer) bool
	)
	if addr, perr := netip.ParseAddr(q); perr == nil {
		peers, err = s.c.FindPeers(ctx, PeerFilter{IP: addr.String()})
		match = func(p Peer) bool { return sameAddr(p.IP, addr) || sameAddr(p.IPv6, addr) }
	} else {
		// The name filter matches the peer name, which an operator may
		// have changed from the hostname; the whole list is needed to
		// match hostnames and DNS labels.
		peers, err = s.c.ListPeers(ctx)
		match = func(p Peer) bool { return nameMatches(p, q) }
	}
	if err != nil {
		return Peer{}, fmt.Errorf("finding peer of host %q: %w", q, err)
	}
	var found []Peer
	for _, p := range peers {
		if match(p) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return Peer{}, fmt.Errorf("finding peer of host %q: %w", q, ErrNotFound)
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, p := range found {
		ids[i] = p.ID
	}
	return Peer{}, fmt.Errorf("finding peer of host %q: peers %s all match: %w", q, strings.Join(ids, ", "), ErrAmbiguous)
}

// DeletePeerForAgent removes the peer of a decommissioned agent. A peer
// already gone counts as removed, so the call is safe to repeat.
func (s *Setup) DeletePeerForAgent(ctx context.Context, peerID string) error {
	if err := s.c.DeletePeer(ctx, peerID); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("removing netbird peer of agent: %w", err)
	}
	return nil
}

func (s *Setup) keyName(site, tokenID string) string {
	site = strings.Join(strings.Fields(site), "-")
	if len(site) > maxKeyNameSite {
		cut := maxKeyNameSite
		for cut > 0 && site[cut]&0xC0 == 0x80 {
			cut--
		}
		site = site[:cut]
	}
	return s.o.KeyPrefix + "-" + site + "-" + tokenID
}

func sameAddr(s string, a netip.Addr) bool {
	if s == "" {
		return false
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr() == a
	}
	b, err := netip.ParseAddr(s)
	return err == nil && b == a
}

// nameMatches compares case-insensitively, as DNS does.
func nameMatches(p Peer, q string) bool {
	q = strings.TrimSuffix(strings.ToLower(q), ".")
	for _, n := range []string{p.Hostname, p.Name, p.DNSLabel} {
		n = strings.ToLower(n)
		if n == "" {
			continue
		}
		if n == q {
			return true
		}
		// dns_label may be the full FQDN; a bare hostname matches its
		// first label.
		if label, _, ok := strings.Cut(n, "."); ok && label == q {
			return true
		}
	}
	return false
}
