package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/kubedoio/n-kudo/internal/store"
)

// retentionSQL holds, per kind, the statement that deletes one batch of
// expired rows ($1 cutoff, $2 limit) and the one that reads the oldest
// row's time. Batches are picked through the kind's time index and
// deleted by ctid or key, so each statement touches limit rows and holds
// their row locks only. Revoked agents take several statements.
var retentionSQL = map[store.RetentionKind]struct{ delete, oldest string }{
	store.RetainLogs: {
		`DELETE FROM execution_logs WHERE ctid = ANY (ARRAY (
			SELECT ctid FROM execution_logs WHERE at < $1 ORDER BY at LIMIT $2))`,
		`SELECT min(at) FROM execution_logs`,
	},
	store.RetainAudit: {
		`DELETE FROM audit_events WHERE id = ANY (ARRAY (
			SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2))`,
		`SELECT min(at) FROM audit_events`,
	},
	store.RetainPlans: {
		// Actions, executions and their log lines go with the plan
		// (ON DELETE CASCADE).
		`DELETE FROM plans WHERE id = ANY (ARRAY (SELECT id FROM plans
			WHERE status IN ('succeeded', 'failed', 'cancelled') AND updated_at < $1 ORDER BY updated_at LIMIT $2))`,
		`SELECT min(updated_at) FROM plans WHERE status IN ('succeeded', 'failed', 'cancelled')`,
	},
	store.RetainIdempotencyKeys: {
		`DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY (
			SELECT ctid FROM idempotency_keys WHERE created_at < $1 ORDER BY created_at LIMIT $2))`,
		`SELECT min(created_at) FROM idempotency_keys`,
	},
	store.RetainRevokedAgents: {
		`SELECT id, host_id FROM agents WHERE revoked AND revoked_at < $1 ORDER BY revoked_at LIMIT $2 FOR UPDATE`,
		`SELECT min(revoked_at) FROM agents WHERE revoked`,
	},
}

// retireAgentsSQL removes revoked agents and what only they used (their
// hosts), children first; agents and hosts reference each other with
// deferred keys. byHost statements take the host ids, the others the
// agent ids.
var retireAgentsSQL = []struct {
	q      string
	byHost bool
}{
	{`DELETE FROM plans WHERE agent_id = ANY ($1)`, false},
	{`DELETE FROM vms WHERE host_id = ANY ($1)`, true},
	{`DELETE FROM hosts WHERE id = ANY ($1)`, true},
	{`DELETE FROM agents WHERE id = ANY ($1)`, false},
}

// DeleteExpired implements store.Maintenance.
func (s *Store) DeleteExpired(ctx context.Context, kind store.RetentionKind, cutoff time.Time, limit int) (int, error) {
	q, ok := retentionSQL[kind]
	if !ok || limit <= 0 {
		return 0, fmt.Errorf("deleting expired %q rows (limit %d): %w", kind, limit, store.ErrInvalid)
	}
	if kind == store.RetainRevokedAgents {
		var n int
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			var err error
			n, err = retireAgents(ctx, tx, q.delete, cutoff, limit)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("deleting expired %s: %w", kind, translate(err))
		}
		return n, nil
	}
	tag, err := s.pool.Exec(ctx, q.delete, ts(cutoff), limit)
	if err != nil {
		return 0, fmt.Errorf("deleting expired %s: %w", kind, translate(err))
	}
	return int(tag.RowsAffected()), nil
}

func retireAgents(ctx context.Context, tx pgx.Tx, pick string, cutoff time.Time, limit int) (int, error) {
	rows, err := tx.Query(ctx, pick, ts(cutoff), limit)
	if err != nil {
		return 0, err
	}
	var agents, hosts []uuid.UUID
	for rows.Next() {
		var a, h uuid.UUID
		if err := rows.Scan(&a, &h); err != nil {
			rows.Close()
			return 0, err
		}
		agents, hosts = append(agents, a), append(hosts, h)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(agents) == 0 {
		return 0, nil
	}
	for _, st := range retireAgentsSQL {
		ids := agents
		if st.byHost {
			ids = hosts
		}
		if _, err := tx.Exec(ctx, st.q, ids); err != nil {
			return 0, err
		}
	}
	return len(agents), nil
}

// vacuumSQL is, per kind, the VACUUM of the tables its deletes leave dead
// tuples in. Autovacuum would get there, but only after its naptime and
// once 20 % of a table is dead: under steady log ingest the table grows
// meanwhile. A plain VACUUM takes no lock that blocks reads or writes.
var vacuumSQL = map[store.RetentionKind]string{
	store.RetainLogs:            `VACUUM (ANALYZE) execution_logs`,
	store.RetainAudit:           `VACUUM (ANALYZE) audit_events`,
	store.RetainPlans:           `VACUUM (ANALYZE) plans, plan_actions, executions, execution_logs`,
	store.RetainIdempotencyKeys: `VACUUM (ANALYZE) idempotency_keys`,
	store.RetainRevokedAgents:   `VACUUM (ANALYZE) agents, hosts, plans, vms`,
}

// ReclaimSpace implements store.Maintenance.
func (s *Store) ReclaimSpace(ctx context.Context, kind store.RetentionKind) error {
	q, ok := vacuumSQL[kind]
	if !ok {
		return fmt.Errorf("reclaiming space of %q rows: %w", kind, store.ErrInvalid)
	}
	if _, err := s.pool.Exec(ctx, q); err != nil {
		return fmt.Errorf("reclaiming space of %s: %w", kind, translate(err))
	}
	return nil
}

// OldestRetained implements store.Maintenance.
func (s *Store) OldestRetained(ctx context.Context, kind store.RetentionKind) (time.Time, bool, error) {
	q, ok := retentionSQL[kind]
	if !ok {
		return time.Time{}, false, fmt.Errorf("reading the oldest %q row: %w", kind, store.ErrInvalid)
	}
	var at *time.Time
	if err := s.pool.QueryRow(ctx, q.oldest).Scan(&at); err != nil {
		return time.Time{}, false, fmt.Errorf("reading the oldest %s: %w", kind, translate(err))
	}
	if at == nil {
		return time.Time{}, false, nil
	}
	return at.UTC(), true, nil
}

// TryExclusive runs fn while holding the session advisory lock of name on
// a connection of its own, unless another session holds it: of the
// replicas sharing the database, one at a time runs fn. A replica that
// dies holding it loses its session, and the lock with it.
func (s *Store) TryExclusive(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("locking %s: %w", name, translate(err))
	}
	defer conn.Release()
	key := advisoryKey(name)
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
		return false, fmt.Errorf("locking %s: %w", name, translate(err))
	}
	if !got {
		return false, nil
	}
	runErr := fn(ctx)
	// Unlock even when ctx ended; a connection that cannot unlock is
	// closed, which ends its session and so its lock.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
		_ = conn.Conn().Close(uctx)
		return true, errors.Join(runErr, fmt.Errorf("unlocking %s: %w", name, translate(err)))
	}
	return true, runErr
}

// advisoryKey maps a lock name to the 64-bit key of PostgreSQL's advisory
// locks, in a namespace of its own ("nkudo:").
func advisoryKey(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("nkudo:" + name))
	return int64(h.Sum64())
}

// LoadCA implements store.SharedPKI.
func (s *Store) LoadCA(ctx context.Context) (store.StoredCA, error) {
	var ca store.StoredCA
	err := s.pool.QueryRow(ctx, `SELECT cert_pem, key_sealed, created_at FROM pki_ca WHERE id = 1`).
		Scan(&ca.CertPEM, &ca.SealedKey, &ca.CreatedAt)
	if err != nil {
		return store.StoredCA{}, fmt.Errorf("loading the stored CA: %w", translate(err))
	}
	ca.CreatedAt = ca.CreatedAt.UTC()
	return ca, nil
}

// StoreCAIfAbsent implements store.SharedPKI. ON CONFLICT DO NOTHING waits
// for a racing insert to commit and then does nothing, so the read after
// it sees the winner's CA.
func (s *Store) StoreCAIfAbsent(ctx context.Context, ca store.StoredCA) (store.StoredCA, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO pki_ca (id, cert_pem, key_sealed, created_at) VALUES (1, $1, $2, $3)
		ON CONFLICT (id) DO NOTHING`, ca.CertPEM, ca.SealedKey, ts(ca.CreatedAt)); err != nil {
		return store.StoredCA{}, fmt.Errorf("storing the CA: %w", translate(err))
	}
	return s.LoadCA(ctx)
}
