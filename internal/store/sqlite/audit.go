package sqlite

import (
	"context"
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

// PutIdempotency stores a record; store.ErrConflict when the key is taken.
func (s *Store) PutIdempotency(ctx context.Context, r store.IdempotencyRecord) error {
	response := r.Response
	if response == nil {
		response = []byte{}
	}
	fingerprint := r.Fingerprint
	if fingerprint == nil {
		fingerprint = []byte{}
	}
	if _, err := s.w.ExecContext(ctx, qInsertIdempotency, r.TenantID, r.Route, r.Key, fingerprint, r.Status,
		response, micros(r.CreatedAt)); err != nil {
		return fmt.Errorf("storing idempotency record %s %q: %w", r.Route, r.Key, translate(err))
	}
	return nil
}
