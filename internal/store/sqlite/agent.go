package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// ConsumeEnrollment takes one use of the token and creates the agent
// (offline until its session says hello) and its host in one transaction.
func (s *Store) ConsumeEnrollment(ctx context.Context, e store.Enrollment) (store.Agent, store.Host, store.EnrollmentToken, error) {
	var (
		agent store.Agent
		host  store.Host
		tok   store.EnrollmentToken
	)
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		tok, err = scanToken(tx.QueryRowContext(ctx, qConsumeToken, e.TokenHash, micros(e.Now)))
		if errors.Is(err, store.ErrNotFound) {
			return store.ErrTokenInvalid
		}
		if err != nil {
			return err
		}
		now := fromMicros(micros(e.Now))
		agent = store.Agent{
			ID:            e.AgentID,
			TenantID:      tok.TenantID,
			SiteID:        tok.SiteID,
			HostID:        e.HostID,
			Status:        store.AgentOffline,
			CertSerial:    e.CertSerial,
			CertExpiresAt: fromMicros(micros(e.CertExpiresAt)),
			CreatedAt:     now,
		}
		host = store.Host{
			ID:        e.HostID,
			TenantID:  tok.TenantID,
			SiteID:    tok.SiteID,
			AgentID:   e.AgentID,
			Hostname:  e.Hostname,
			Facts:     rawJSON(""),
			NetBird:   rawJSON(""),
			Usage:     rawJSON(""),
			CreatedAt: now,
			UpdatedAt: now,
		}
		// The agent goes first: its host reference is deferred to commit,
		// the host's reference to the agent is checked at once.
		if _, err := tx.ExecContext(ctx, qInsertAgent, agent.ID, agent.TenantID, agent.SiteID, agent.HostID,
			agent.Status, agent.Version, agent.CertSerial, micros(agent.CertExpiresAt), boolInt(false),
			nil, nil, micros(agent.CreatedAt)); err != nil {
			return translate(err)
		}
		if _, err := tx.ExecContext(ctx, qInsertHost, host.ID, host.TenantID, host.SiteID, host.AgentID,
			host.Hostname, boolInt(false), nil, string(host.Facts), string(host.NetBird),
			string(host.Usage), micros(host.CreatedAt), micros(host.UpdatedAt)); err != nil {
			return translate(err)
		}
		if a := e.Audit; a != nil {
			if _, err := tx.ExecContext(ctx, qInsertAudit, a.ID, nullID(tok.TenantID), a.Actor, a.Action, a.Target,
				a.Result, a.RequestID, micros(a.At)); err != nil {
				return translate(err)
			}
		}
		return nil
	})
	if err != nil {
		return store.Agent{}, store.Host{}, store.EnrollmentToken{}, fmt.Errorf("enrolling agent %s: %w", e.AgentID, err)
	}
	return agent, host, tok, nil
}

// EnrollmentTokenByHash reads a usable token without using it; it runs on
// the reader pool, so it never waits for the single writer.
func (s *Store) EnrollmentTokenByHash(ctx context.Context, hash []byte, now time.Time) (store.EnrollmentToken, error) {
	tok, err := scanToken(s.r.QueryRowContext(ctx, qTokenByHash, hash, micros(now)))
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
	a, err := scanAgent(s.r.QueryRowContext(ctx, qGetAgent, id))
	if err != nil {
		return a, fmt.Errorf("getting agent %s: %w", id, err)
	}
	return a, nil
}

// GetTenantAgent returns a tenant's agent.
func (s *Store) GetTenantAgent(ctx context.Context, tenantID, id uuid.UUID) (store.Agent, error) {
	a, err := scanAgent(s.r.QueryRowContext(ctx, qGetTenantAgent, tenantID, id))
	if err != nil {
		return a, fmt.Errorf("getting agent %s: %w", id, err)
	}
	return a, nil
}

// ListAgents lists a tenant's agents in id order.
func (s *Store) ListAgents(ctx context.Context, tenantID uuid.UUID, p store.Page) ([]store.Agent, bool, error) {
	limit := pageLimit(p.Limit)
	rows, err := s.r.QueryContext(ctx, qListAgents, tenantID, afterKey(p.After), limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("listing agents of tenant %s: %w", tenantID, translate(err))
	}
	items, err := collect(rows, scanAgent)
	if err != nil {
		return nil, false, fmt.Errorf("listing agents of tenant %s: %w", tenantID, err)
	}
	items, more := trimPage(items, limit)
	return items, more, nil
}

// RevokeAgent revokes an agent and marks its host offline. Revoking twice
// keeps the first revocation time.
func (s *Store) RevokeAgent(ctx context.Context, tenantID, id uuid.UUID, at time.Time) (store.Agent, error) {
	var a store.Agent
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		a, err = scanAgent(tx.QueryRowContext(ctx, qRevokeAgent, tenantID, id, micros(at)))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, qHostOfflineByAgent, id, micros(at)); err != nil {
			return translate(err)
		}
		return nil
	})
	if err != nil {
		return store.Agent{}, fmt.Errorf("revoking agent %s: %w", id, err)
	}
	return a, nil
}

// RotateAgentCert records a renewed client certificate.
func (s *Store) RotateAgentCert(ctx context.Context, id uuid.UUID, serial string, expiresAt time.Time) error {
	if err := s.execOne(ctx, qRotateAgentCert, id, serial, micros(expiresAt)); err != nil {
		return fmt.Errorf("rotating certificate of agent %s: %w", id, err)
	}
	return nil
}

// SetAgentOnline marks an agent and its host online or offline and records
// when. An empty version keeps the known one; a revoked agent stays revoked
// and its host offline.
func (s *Store) SetAgentOnline(ctx context.Context, id uuid.UUID, online bool, version string, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var revoked int64
		if err := tx.QueryRowContext(ctx, qSetAgentOnline, id, boolInt(online), version, micros(at)).Scan(&revoked); err != nil {
			return translate(err)
		}
		hostOnline := online && revoked == 0
		if _, err := tx.ExecContext(ctx, qSetHostOnline, id, boolInt(hostOnline), micros(at)); err != nil {
			return translate(err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("setting agent %s online=%t: %w", id, online, err)
	}
	return nil
}

// MarkStaleAgentsOffline marks offline the online agents last seen before
// cutoff, with their hosts, and sets their VMs' actual state to unknown.
func (s *Store) MarkStaleAgentsOffline(ctx context.Context, cutoff time.Time) ([]store.Agent, error) {
	var agents []store.Agent
	now := time.Now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, qMarkStaleAgents, micros(cutoff))
		if err != nil {
			return translate(err)
		}
		agents, err = collect(rows, scanAgent)
		if err != nil {
			return err
		}
		if len(agents) == 0 {
			return nil
		}
		hostOff, err := tx.PrepareContext(ctx, qHostOfflineByAgent)
		if err != nil {
			return translate(err)
		}
		defer func() { _ = hostOff.Close() }()
		vmsUnknown, err := tx.PrepareContext(ctx, qVMsUnknownByHost)
		if err != nil {
			return translate(err)
		}
		defer func() { _ = vmsUnknown.Close() }()
		for _, a := range agents {
			if _, err := hostOff.ExecContext(ctx, a.ID, micros(now)); err != nil {
				return translate(err)
			}
			if _, err := vmsUnknown.ExecContext(ctx, a.HostID, micros(now)); err != nil {
				return translate(err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("marking stale agents offline: %w", err)
	}
	return agents, nil
}

// GetHost returns a tenant's host.
func (s *Store) GetHost(ctx context.Context, tenantID, id uuid.UUID) (store.Host, error) {
	h, err := scanHost(s.r.QueryRowContext(ctx, qGetHost, tenantID, id))
	if err != nil {
		return h, fmt.Errorf("getting host %s: %w", id, err)
	}
	return h, nil
}

// ListHosts lists a tenant's hosts, of one site unless siteID is uuid.Nil.
func (s *Store) ListHosts(ctx context.Context, tenantID, siteID uuid.UUID, p store.Page) ([]store.Host, bool, error) {
	limit := pageLimit(p.Limit)
	rows, err := s.r.QueryContext(ctx, qListHosts, tenantID, filterID(siteID), afterKey(p.After), limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("listing hosts of tenant %s: %w", tenantID, translate(err))
	}
	items, err := collect(rows, scanHost)
	if err != nil {
		return nil, false, fmt.Errorf("listing hosts of tenant %s: %w", tenantID, err)
	}
	items, more := trimPage(items, limit)
	return items, more, nil
}

// UpsertHostStates writes a batch of heartbeats in one transaction with two
// prepared statements. Heartbeats naming a host that is not the agent's, or
// coming from a revoked agent, change nothing.
func (s *Store) UpsertHostStates(ctx context.Context, states []store.HostState) error {
	if len(states) == 0 {
		return nil
	}
	type row struct {
		facts, netbird, usage any
	}
	encoded := make([]row, len(states))
	for i, st := range states {
		facts, err := nullJSONObject(st.Facts)
		if err != nil {
			return fmt.Errorf("writing heartbeat of host %s: facts: %w", st.HostID, err)
		}
		netbird, err := nullJSONObject(st.NetBird)
		if err != nil {
			return fmt.Errorf("writing heartbeat of host %s: netbird: %w", st.HostID, err)
		}
		usage, err := nullJSONObject(st.Usage)
		if err != nil {
			return fmt.Errorf("writing heartbeat of host %s: usage: %w", st.HostID, err)
		}
		encoded[i] = row{facts: facts, netbird: netbird, usage: usage}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		agentStmt, err := tx.PrepareContext(ctx, qHeartbeatAgent)
		if err != nil {
			return translate(err)
		}
		defer func() { _ = agentStmt.Close() }()
		hostStmt, err := tx.PrepareContext(ctx, qHeartbeatHost)
		if err != nil {
			return translate(err)
		}
		defer func() { _ = hostStmt.Close() }()
		for i, st := range states {
			seen := micros(st.LastSeenAt)
			res, err := agentStmt.ExecContext(ctx, st.AgentID, st.HostID, seen)
			if err != nil {
				return translate(err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return translate(err)
			}
			if n == 0 {
				continue // not this agent's host, or revoked: ignored
			}
			if _, err := hostStmt.ExecContext(ctx, st.HostID, seen, encoded[i].facts, encoded[i].netbird, encoded[i].usage); err != nil {
				return translate(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing %d heartbeats: %w", len(states), err)
	}
	return nil
}
