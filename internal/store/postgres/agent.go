package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// EnrollmentTokenByHash reads a usable token without using it: a plain
// read, so the signature that follows holds no row lock.
func (s *Store) EnrollmentTokenByHash(ctx context.Context, hash []byte, now time.Time) (store.EnrollmentToken, error) {
	tok, err := scanToken(s.pool.QueryRow(ctx, qTokenByHash, hash, ts(now)))
	if errors.Is(err, store.ErrNotFound) {
		err = store.ErrTokenInvalid
	}
	if err != nil {
		return store.EnrollmentToken{}, fmt.Errorf("reading enrollment token: %w", err)
	}
	return tok, nil
}

// GetAgent returns an agent of any tenant.
func (s *Store) GetAgent(ctx context.Context, id uuid.UUID) (store.Agent, error) {
	a, err := scanAgent(s.pool.QueryRow(ctx, qGetAgent, id))
	if err != nil {
		return a, fmt.Errorf("getting agent %s: %w", id, err)
	}
	return a, nil
}

// GetTenantAgent returns a tenant's agent.
func (s *Store) GetTenantAgent(ctx context.Context, tenantID, id uuid.UUID) (store.Agent, error) {
	a, err := scanAgent(s.pool.QueryRow(ctx, qGetTenantAgent, tenantID, id))
	if err != nil {
		return a, fmt.Errorf("getting agent %s: %w", id, err)
	}
	return a, nil
}

// ListAgents lists a tenant's agents in id order.
func (s *Store) ListAgents(ctx context.Context, tenantID uuid.UUID, p store.Page) ([]store.Agent, bool, error) {
	items, more, err := listPage(ctx, s, scanAgent, p.Limit, qListAgents, tenantID, p.After)
	if err != nil {
		return nil, false, fmt.Errorf("listing agents of tenant %s: %w", tenantID, err)
	}
	return items, more, nil
}

// RevokeAgent revokes an agent and marks its host offline. Revoking twice
// keeps the first revocation time.
func (s *Store) RevokeAgent(ctx context.Context, tenantID, id uuid.UUID, at time.Time) (store.Agent, error) {
	a, err := scanAgent(s.pool.QueryRow(ctx, qRevokeAgent, tenantID, id, ts(at)))
	if err != nil {
		return store.Agent{}, fmt.Errorf("revoking agent %s: %w", id, err)
	}
	return a, nil
}

// RotateAgentCert records a renewed client certificate.
func (s *Store) RotateAgentCert(ctx context.Context, id uuid.UUID, serial string, expiresAt time.Time) error {
	if err := s.execOne(ctx, qRotateAgentCert, id, serial, ts(expiresAt)); err != nil {
		return fmt.Errorf("rotating certificate of agent %s: %w", id, err)
	}
	return nil
}

// SetAgentOnline marks an agent and its host online or offline and records
// when. An empty version keeps the known one; a revoked agent stays revoked
// and its host offline.
func (s *Store) SetAgentOnline(ctx context.Context, id uuid.UUID, online bool, version string, at time.Time) error {
	var n int
	if err := s.pool.QueryRow(ctx, qSetAgentOnline, id, online, version, ts(at)).Scan(&n); err != nil {
		return fmt.Errorf("setting agent %s online=%t: %w", id, online, translate(err))
	}
	if n == 0 {
		return fmt.Errorf("setting agent %s online=%t: %w", id, online, store.ErrNotFound)
	}
	return nil
}

// MarkStaleAgentsOffline marks offline the online agents last seen before
// cutoff, with their hosts, and sets their VMs' actual state to unknown,
// all in one statement.
func (s *Store) MarkStaleAgentsOffline(ctx context.Context, cutoff time.Time) ([]store.Agent, error) {
	rows, err := s.pool.Query(ctx, qMarkStaleAgents, ts(cutoff), ts(time.Now()))
	if err != nil {
		return nil, fmt.Errorf("marking stale agents offline: %w", translate(err))
	}
	agents, err := collect(rows, scanAgent)
	if err != nil {
		return nil, fmt.Errorf("marking stale agents offline: %w", err)
	}
	return agents, nil
}

// GetHost returns a tenant's host.
func (s *Store) GetHost(ctx context.Context, tenantID, id uuid.UUID) (store.Host, error) {
	h, err := scanHost(s.pool.QueryRow(ctx, qGetHost, tenantID, id))
	if err != nil {
		return h, fmt.Errorf("getting host %s: %w", id, err)
	}
	return h, nil
}

// ListHosts lists a tenant's hosts, of one site unless siteID is uuid.Nil.
func (s *Store) ListHosts(ctx context.Context, tenantID, siteID uuid.UUID, p store.Page) ([]store.Host, bool, error) {
	items, more, err := listPage(ctx, s, scanHost, p.Limit, qListHosts, tenantID, nullID(siteID), p.After)
	if err != nil {
		return nil, false, fmt.Errorf("listing hosts of tenant %s: %w", tenantID, err)
	}
	return items, more, nil
}

// UpsertHostStates writes a batch of heartbeats in one statement. See
// qHeartbeats for the rules.
func (s *Store) UpsertHostStates(ctx context.Context, states []store.HostState) error {
	if len(states) == 0 {
		return nil
	}
	// Sorting by host makes concurrent batches take row locks in the same
	// order, so two replicas' batches cannot deadlock. The sort is stable
	// so the heartbeats of one host keep their order for the fold.
	sorted := make([]store.HostState, len(states))
	copy(sorted, states)
	sort.SliceStable(sorted, func(i, j int) bool {
		return string(sorted[i].HostID[:]) < string(sorted[j].HostID[:])
	})
	hosts := make([]uuid.UUID, len(sorted))
	agents := make([]uuid.UUID, len(sorted))
	seen := make([]time.Time, len(sorted))
	facts := make([]*string, len(sorted))
	netbird := make([]*string, len(sorted))
	usage := make([]*string, len(sorted))
	for i, st := range sorted {
		var err error
		if facts[i], err = nullJSONObject(st.Facts); err != nil {
			return fmt.Errorf("writing heartbeat of host %s: facts: %w", st.HostID, err)
		}
		if netbird[i], err = nullJSONObject(st.NetBird); err != nil {
			return fmt.Errorf("writing heartbeat of host %s: netbird: %w", st.HostID, err)
		}
		if usage[i], err = nullJSONObject(st.Usage); err != nil {
			return fmt.Errorf("writing heartbeat of host %s: usage: %w", st.HostID, err)
		}
		hosts[i], agents[i], seen[i] = st.HostID, st.AgentID, ts(st.LastSeenAt)
	}
	if _, err := s.pool.Exec(ctx, qHeartbeats, hosts, agents, seen, facts, netbird, usage); err != nil {
		return fmt.Errorf("writing %d heartbeats: %w", len(states), translate(err))
	}
	return nil
}
