package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// AppendAudit records one mutating call.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	if _, err := s.w.ExecContext(ctx, qInsertAudit, e.ID, nullID(e.TenantID), e.Actor, e.Action, e.Target,
		e.Result, e.RequestID, micros(e.At)); err != nil {
		return fmt.Errorf("appending audit event %s: %w", e.ID, translate(err))
	}
	return nil
}

// ListAudit lists a tenant's audit events in id order; uuid.Nil lists the
// admin events recorded outside any tenant.
func (s *Store) ListAudit(ctx context.Context, tenantID uuid.UUID, p store.Page) ([]store.AuditEvent, bool, error) {
	limit := pageLimit(p.Limit)
	rows, err := s.r.QueryContext(ctx, qListAudit, nullID(tenantID), afterKey(p.After), limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("listing audit events of tenant %s: %w", tenantID, translate(err))
	}
	items, err := collect(rows, scanAudit)
	if err != nil {
		return nil, false, fmt.Errorf("listing audit events of tenant %s: %w", tenantID, err)
	}
	items, more := trimPage(items, limit)
	return items, more, nil
}

// GetIdempotency returns the record of a key, store.ErrNotFound when none.
func (s *Store) GetIdempotency(ctx context.Context, tenantID uuid.UUID, route, key string) (store.IdempotencyRecord, error) {
	rec, err := scanIdempotency(s.r.QueryRowContext(ctx, qGetIdempotency, tenantID, route, key))
	if err != nil {
		return rec, fmt.Errorf("getting idempotency record %s %q: %w", route, key, err)
	}
	return rec, nil
}

// ReserveIdempotency claims a key for r; see store.Store. The single
// write connection runs the insert-or-take-over statement, so of
// concurrent reservations exactly one returns a row.
func (s *Store) ReserveIdempotency(ctx context.Context, r store.IdempotencyRecord) (store.IdempotencyRecord, bool, error) {
	fingerprint := r.Fingerprint
	if fingerprint == nil {
		fingerprint = []byte{}
	}
	return store.ReserveIdempotencyWith(ctx, s, r, func() (bool, error) {
		var holder uuid.UUID
		err := s.w.QueryRowContext(ctx, qReserveIdempotency, r.TenantID, r.Route, r.Key, fingerprint,
			micros(r.CreatedAt), r.Holder, micros(r.ReservedUntil)).Scan(&holder)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return err == nil, translate(err)
	})
}

// CompleteIdempotency stores the answer of the request holding the key.
func (s *Store) CompleteIdempotency(ctx context.Context, r store.IdempotencyRecord) error {
	response := r.Response
	if response == nil {
		response = []byte{}
	}
	res, err := s.w.ExecContext(ctx, qCompleteIdempotency, r.TenantID, r.Route, r.Key, r.Holder, r.Status, response)
	if err != nil {
		return fmt.Errorf("completing idempotency key %s %q: %w", r.Route, r.Key, translate(err))
	}
	return oneRow(res, "completing idempotency key "+r.Route+" "+r.Key)
}

// ReleaseIdempotency deletes the reservation held by holder.
func (s *Store) ReleaseIdempotency(ctx context.Context, tenantID uuid.UUID, route, key string, holder uuid.UUID) error {
	res, err := s.w.ExecContext(ctx, qReleaseIdempotency, tenantID, route, key, holder)
	if err != nil {
		return fmt.Errorf("releasing idempotency key %s %q: %w", route, key, translate(err))
	}
	return oneRow(res, "releasing idempotency key "+route+" "+key)
}

// oneRow turns "no row affected" into store.ErrNotFound.
func oneRow(res sql.Result, doing string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", doing, store.ErrNotFound)
	}
	return nil
}
