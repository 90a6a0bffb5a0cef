package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kubedoio/n-kudo/internal/store"
)

// retentionSQL holds, per kind, the statement that deletes one batch of
// expired rows (cutoff, limit) and the one that reads the oldest row's
// time. Revoked agents take several statements (retireAgents).
var retentionSQL = map[store.RetentionKind]struct{ delete, oldest string }{
	store.RetainLogs: {
		// WITHOUT ROWID: the batch is chosen by primary key.
		`DELETE FROM execution_logs WHERE (execution_id, seq) IN
			(SELECT execution_id, seq FROM execution_logs WHERE at < ? ORDER BY at LIMIT ?)`,
		`SELECT min(at) FROM execution_logs`,
	},
	store.RetainAudit: {
		`DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE at < ? ORDER BY at LIMIT ?)`,
		`SELECT min(at) FROM audit_events`,
	},
	store.RetainPlans: {
		// Actions, executions and their log lines go with the plan
		// (ON DELETE CASCADE).
		`DELETE FROM plans WHERE id IN (SELECT id FROM plans
			WHERE status IN ('succeeded', 'failed', 'cancelled') AND updated_at < ? ORDER BY updated_at LIMIT ?)`,
		`SELECT min(updated_at) FROM plans WHERE status IN ('succeeded', 'failed', 'cancelled')`,
	},
	store.RetainIdempotencyKeys: {
		`DELETE FROM idempotency_keys WHERE (tenant_id, route, key) IN
			(SELECT tenant_id, route, key FROM idempotency_keys WHERE created_at < ? ORDER BY created_at LIMIT ?)`,
		`SELECT min(created_at) FROM idempotency_keys`,
	},
	store.RetainRevokedAgents: {
		`SELECT id, host_id FROM agents WHERE revoked = 1 AND revoked_at < ? ORDER BY revoked_at LIMIT ?`,
		`SELECT min(revoked_at) FROM agents WHERE revoked = 1`,
	},
}

// retireAgentSQL removes one revoked agent and what only it used, children
// first; agents and hosts reference each other with deferred keys.
var retireAgentSQL = []string{
	`DELETE FROM plans WHERE agent_id = ?1`,
	`DELETE FROM vms WHERE host_id = ?2`,
	`DELETE FROM hosts WHERE id = ?2`,
	`DELETE FROM agents WHERE id = ?1`,
}

// DeleteExpired implements store.Maintenance.
func (s *Store) DeleteExpired(ctx context.Context, kind store.RetentionKind, cutoff time.Time, limit int) (int, error) {
	q, ok := retentionSQL[kind]
	if !ok || limit <= 0 {
		return 0, fmt.Errorf("deleting expired %q rows (limit %d): %w", kind, limit, store.ErrInvalid)
	}
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		if kind == store.RetainRevokedAgents {
			var err error
			n, err = retireAgents(ctx, tx, q.delete, cutoff, limit)
			return err
		}
		res, err := tx.ExecContext(ctx, q.delete, micros(cutoff), limit)
		if err != nil {
			return translate(err)
		}
		n, err = res.RowsAffected()
		return translate(err)
	})
	if err != nil {
		return 0, fmt.Errorf("deleting expired %s: %w", kind, err)
	}
	return int(n), nil
}

func retireAgents(ctx context.Context, tx *sql.Tx, pick string, cutoff time.Time, limit int) (int64, error) {
	rows, err := tx.QueryContext(ctx, pick, micros(cutoff), limit)
	if err != nil {
		return 0, translate(err)
	}
	var pairs [][2]string
	for rows.Next() {
		var agent, host string
		if err := rows.Scan(&agent, &host); err != nil {
			_ = rows.Close()
			return 0, translate(err)
		}
		pairs = append(pairs, [2]string{agent, host})
	}
	if err := rows.Close(); err != nil {
		return 0, translate(err)
	}
	for _, p := range pairs {
		for _, q := range retireAgentSQL {
			if _, err := tx.ExecContext(ctx, q, p[0], p[1]); err != nil {
				return 0, translate(err)
			}
		}
	}
	return int64(len(pairs)), nil
}

// OldestRetained implements store.Maintenance.
func (s *Store) OldestRetained(ctx context.Context, kind store.RetentionKind) (time.Time, bool, error) {
	q, ok := retentionSQL[kind]
	if !ok {
		return time.Time{}, false, fmt.Errorf("reading the oldest %q row: %w", kind, store.ErrInvalid)
	}
	var us sql.NullInt64
	if err := s.r.QueryRowContext(ctx, q.oldest).Scan(&us); err != nil {
		return time.Time{}, false, fmt.Errorf("reading the oldest %s: %w", kind, translate(err))
	}
	if !us.Valid {
		return time.Time{}, false, nil
	}
	return fromMicros(us.Int64), true, nil
}

// ReclaimSpace does nothing: SQLite puts the pages of deleted rows on its
// freelist and the next inserts reuse them, so the file stays as large
// as the retained rows need.
func (s *Store) ReclaimSpace(context.Context, store.RetentionKind) error { return nil }

// TryExclusive runs fn: a SQLite file has one server, so there is no
// other replica to exclude.
func (s *Store) TryExclusive(ctx context.Context, _ string, fn func(ctx context.Context) error) (bool, error) {
	return true, fn(ctx)
}

// LoadCA implements store.SharedPKI.
func (s *Store) LoadCA(ctx context.Context) (store.StoredCA, error) {
	var ca store.StoredCA
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT cert_pem, key_sealed, created_at FROM pki_ca WHERE id = 1`).
		Scan(&ca.CertPEM, &ca.SealedKey, &created)
	if err != nil {
		return store.StoredCA{}, fmt.Errorf("loading the stored CA: %w", translate(err))
	}
	ca.CreatedAt = fromMicros(created)
	return ca, nil
}

// StoreCAIfAbsent implements store.SharedPKI.
func (s *Store) StoreCAIfAbsent(ctx context.Context, ca store.StoredCA) (store.StoredCA, error) {
	if _, err := s.w.ExecContext(ctx, `INSERT INTO pki_ca (id, cert_pem, key_sealed, created_at) VALUES (1, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`, ca.CertPEM, ca.SealedKey, micros(ca.CreatedAt)); err != nil {
		return store.StoredCA{}, fmt.Errorf("storing the CA: %w", translate(err))
	}
	// Read on the writer: a reader could still hold an older snapshot.
	var out store.StoredCA
	var created int64
	if err := s.w.QueryRowContext(ctx, `SELECT cert_pem, key_sealed, created_at FROM pki_ca WHERE id = 1`).
		Scan(&out.CertPEM, &out.SealedKey, &created); err != nil {
		return store.StoredCA{}, fmt.Errorf("reading the stored CA: %w", translate(err))
	}
	out.CreatedAt = fromMicros(created)
	return out, nil
}
