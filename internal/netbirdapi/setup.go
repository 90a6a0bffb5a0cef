package netbirdapi

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
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
	// Ephemeral makes peers joined with the keys ephemeral: NetBird
	// removes them after a period offline.
	Ephemeral bool
}

// Setup is what enrollment and agent revocation need from NetBird: one
// setup key per enrollment token, usable as often as the token and
// expiring with it (plus a grace for the join), deleted once the token is
// done with, and the peer of a decommissioned agent removed.
type Setup struct {
	c *Client
	o SetupOptions
}

// groupAll is the group NetBird puts every peer in; it refuses it in a
// setup key's auto_groups (setupkey.go validateSetupKeyAutoGroups).
const groupAll = "All"

// NewSetup returns a Setup that calls NetBird through c.
func NewSetup(c *Client, o SetupOptions) (*Setup, error) {
	if c == nil {
		return nil, fmt.Errorf("creating netbird setup: nil client: %w", ErrConfig)
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultKeyPrefix
	}
	return &Setup{c: c, o: o}, nil
}

// MintRequest describes the setup key of one enrollment token.
type MintRequest struct {
	// SiteName and Groups (group names) are the token's site and its
	// NetBird groups. The All group is skipped: NetBird refuses it in
	// auto_groups and puts every peer in it anyway.
	SiteName string
	Groups   []string
	TokenID  string
	// Uses is the token's max_uses: the key admits as many peers.
	Uses int
	// ExpiresIn is how long the key lives, rounded up to whole seconds;
	// it must be positive (NetBird reads 0 as "never").
	ExpiresIn time.Duration
}

// MintForToken creates the setup key paired with an enrollment token: a
// one-off key for a one-use token, otherwise a reusable key limited to
// Uses peers, so every host enrolled with the token can join and no more;
// living ExpiresIn, auto-assigned to the site's groups. It returns the
// key's ID, to store with the token for DeleteKeyForToken, and the
// plaintext key, to hand to the agent once.
func (s *Setup) MintForToken(ctx context.Context, r MintRequest) (keyID, key string, err error) {
	if strings.TrimSpace(r.SiteName) == "" || strings.TrimSpace(r.TokenID) == "" {
		return "", "", fmt.Errorf("minting setup key: site name and token id are required: %w", ErrInvalid)
	}
	if r.Uses < 1 {
		return "", "", fmt.Errorf("minting setup key for site %q: usage limit %d below 1: %w", r.SiteName, r.Uses, ErrInvalid)
	}
	if r.ExpiresIn <= 0 {
		return "", "", fmt.Errorf("minting setup key for site %q: expiry %s is not positive: %w", r.SiteName, r.ExpiresIn, ErrInvalid)
	}
	typ := SetupKeyOneOff
	if r.Uses > 1 {
		typ = SetupKeyReusable
	}
	ids, err := s.c.ResolveGroups(ctx, slices.DeleteFunc(slices.Clone(r.Groups), func(g string) bool { return g == groupAll }))
	if err != nil {
		return "", "", fmt.Errorf("minting setup key for site %q: %w", r.SiteName, err)
	}
	created, err := s.c.CreateSetupKey(ctx, CreateSetupKeyRequest{
		Name:       s.keyName(r.SiteName, r.TokenID),
		Type:       typ,
		ExpiresIn:  int((r.ExpiresIn + time.Second - 1) / time.Second),
		AutoGroups: ids,
		UsageLimit: r.Uses,
		Ephemeral:  s.o.Ephemeral,
	})
	if err != nil {
		return "", "", fmt.Errorf("minting setup key for site %q: %w", r.SiteName, err)
	}
	if created.ID == "" || created.Key == "" {
		return "", "", fmt.Errorf("minting setup key for site %q: answer without id or key: %w", r.SiteName, ErrUnexpected)
	}
	return created.ID, created.Key, nil
}

// RevokeForToken revokes the setup key minted for a token, keeping it in
// NetBird (DeleteKeyForToken removes it). A key NetBird no longer has
// counts as revoked, once the token is proven to work (see
// goneOrRejected), so the call is safe to repeat.
func (s *Setup) RevokeForToken(ctx context.Context, keyID string) error {
	if err := s.goneOrRejected(ctx, s.c.RevokeSetupKey(ctx, keyID)); err != nil {
		return fmt.Errorf("revoking setup key for token: %w", err)
	}
	return nil
}

// DeleteKeyForToken deletes the setup key of a token that is done with
// (expired, or used up and past the join grace), so keys do not pile up
// in the account and the site's groups stay deletable: NetBird refuses to
// delete a group named in any setup key, revoked or not (group.go). A key
// already gone counts as deleted once the token is proven to work.
func (s *Setup) DeleteKeyForToken(ctx context.Context, keyID string) error {
	if err := s.goneOrRejected(ctx, s.c.DeleteSetupKey(ctx, keyID)); err != nil {
		return fmt.Errorf("deleting setup key of token: %w", err)
	}
	return nil
}

// goneOrRejected decides what an object's 404 means. Since NetBird
// v0.60.0 an unknown or deleted token is answered 404 too, so the object
// counts as gone only when an authenticated listing works; otherwise the
// error wraps ErrTokenRejected. Other errors pass through, nil stays nil.
func (s *Setup) goneOrRejected(ctx context.Context, err error) error {
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	if cerr := s.c.CheckToken(ctx); cerr != nil {
		return fmt.Errorf("%w (a 404 proves nothing until the token works: %w)", cerr, err)
	}
	return nil
}

// IsTokenRejected reports whether err says NetBird refuses the API token
// (ErrTokenRejected, or any 401).
func IsTokenRejected(err error) bool {
	return errors.Is(err, ErrTokenRejected) || errors.Is(err, ErrUnauthorized)
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
// already gone counts as removed once the token is proven to work (see
// goneOrRejected), so the call is safe to repeat. A peer a network
// router, an ingress port or a proxy depends on is refused with 412:
// the error wraps ErrPreconditionFailed.
func (s *Setup) DeletePeerForAgent(ctx context.Context, peerID string) error {
	if err := s.goneOrRejected(ctx, s.c.DeletePeer(ctx, peerID)); err != nil {
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
