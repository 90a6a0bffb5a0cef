package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/kubedoio/n-kudo/internal/store"
)

// execOne runs a statement that must change exactly one row; none is
// store.ErrNotFound.
func (s *Store) execOne(ctx context.Context, q string, args ...any) error {
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return translate(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// listPage runs a keyset page query whose last two parameters are the
// cursor and the limit, fetching one row more to learn whether more exist.
func listPage[T any](ctx context.Context, s *Store, scan func(rowScanner) (T, error), limit int, q string, args ...any) ([]T, bool, error) {
	limit = pageLimit(limit)
	rows, err := s.pool.Query(ctx, q, append(args, limit+1)...)
	if err != nil {
		return nil, false, translate(err)
	}
	items, err := collect(rows, scan)
	if err != nil {
		return nil, false, err
	}
	items, more := trimPage(items, limit)
	return items, more, nil
}

// CreateTenant stores a tenant; a duplicate id or name is store.ErrConflict.
func (s *Store) CreateTenant(ctx context.Context, t store.Tenant) error {
	if _, err := s.pool.Exec(ctx, qInsertTenant, t.ID, t.Name, ts(t.CreatedAt)); err != nil {
		return fmt.Errorf("creating tenant %s: %w", t.ID, translate(err))
	}
	return nil
}

// GetTenant returns a tenant by id.
func (s *Store) GetTenant(ctx context.Context, id uuid.UUID) (store.Tenant, error) {
	t, err := scanTenant(s.pool.QueryRow(ctx, qGetTenant, id))
	if err != nil {
		return t, fmt.Errorf("getting tenant %s: %w", id, err)
	}
	return t, nil
}

// ListTenants lists tenants in id order.
func (s *Store) ListTenants(ctx context.Context, p store.Page) ([]store.Tenant, bool, error) {
	items, more, err := listPage(ctx, s, scanTenant, p.Limit, qListTenants, p.After)
	if err != nil {
		return nil, false, fmt.Errorf("listing tenants: %w", err)
	}
	return items, more, nil
}

// CreateAPIKey stores a key; an unknown tenant is store.ErrNotFound and a
// duplicate hash store.ErrConflict.
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	if _, err := s.pool.Exec(ctx, qInsertAPIKey, k.ID, k.TenantID, k.Name, k.Role, k.Prefix, k.Hash,
		ts(k.CreatedAt), nullTS(k.LastUsedAt)); err != nil {
		return fmt.Errorf("creating api key %s: %w", k.ID, translate(err))
	}
	return nil
}

// GetAPIKeyByHash finds a key of any tenant by the hash of its secret.
func (s *Store) GetAPIKeyByHash(ctx context.Context, hash []byte) (store.APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx, qGetAPIKeyByHash, hash))
	if err != nil {
		return k, fmt.Errorf("getting api key by hash: %w", err)
	}
	return k, nil
}

// ListAPIKeys lists a tenant's keys in id order.
func (s *Store) ListAPIKeys(ctx context.Context, tenantID uuid.UUID, p store.Page) ([]store.APIKey, bool, error) {
	items, more, err := listPage(ctx, s, scanAPIKey, p.Limit, qListAPIKeys, tenantID, p.After)
	if err != nil {
		return nil, false, fmt.Errorf("listing api keys of tenant %s: %w", tenantID, err)
	}
	return items, more, nil
}

// DeleteAPIKey deletes a tenant's key.
func (s *Store) DeleteAPIKey(ctx context.Context, tenantID, id uuid.UUID) error {
	if err := s.execOne(ctx, qDeleteAPIKey, tenantID, id); err != nil {
		return fmt.Errorf("deleting api key %s: %w", id, err)
	}
	return nil
}

// TouchAPIKey records the last use of a key.
func (s *Store) TouchAPIKey(ctx context.Context, id uuid.UUID, at time.Time) error {
	if err := s.execOne(ctx, qTouchAPIKey, id, ts(at)); err != nil {
		return fmt.Errorf("touching api key %s: %w", id, err)
	}
	return nil
}

// CreateSite stores a site; a duplicate name in the tenant is
// store.ErrConflict and an unknown tenant store.ErrNotFound.
func (s *Store) CreateSite(ctx context.Context, site store.Site) error {
	if _, err := s.pool.Exec(ctx, qInsertSite, site.ID, site.TenantID, site.Name, site.Description,
		site.NetBirdEnabled, groups(site.NetBirdGroups), ts(site.CreatedAt), ts(site.UpdatedAt)); err != nil {
		return fmt.Errorf("creating site %s: %w", site.ID, translate(err))
	}
	return nil
}

// GetSite returns a tenant's site.
func (s *Store) GetSite(ctx context.Context, tenantID, id uuid.UUID) (store.Site, error) {
	site, err := scanSite(s.pool.QueryRow(ctx, qGetSite, tenantID, id))
	if err != nil {
		return site, fmt.Errorf("getting site %s: %w", id, err)
	}
	return site, nil
}

// ListSites lists a tenant's sites in id order.
func (s *Store) ListSites(ctx context.Context, tenantID uuid.UUID, p store.Page) ([]store.Site, bool, error) {
	items, more, err := listPage(ctx, s, scanSite, p.Limit, qListSites, tenantID, p.After)
	if err != nil {
		return nil, false, fmt.Errorf("listing sites of tenant %s: %w", tenantID, err)
	}
	return items, more, nil
}

// UpdateSite applies the non-nil fields of patch and returns the site.
func (s *Store) UpdateSite(ctx context.Context, tenantID, id uuid.UUID, patch store.SitePatch, now time.Time) (store.Site, error) {
	var g any
	if patch.NetBirdGroups != nil {
		g = groups(*patch.NetBirdGroups)
	}
	site, err := scanSite(s.pool.QueryRow(ctx, qUpdateSite, tenantID, id, patch.Name, patch.Description,
		patch.NetBirdEnabled, g, ts(now)))
	if err != nil {
		return site, fmt.Errorf("updating site %s: %w", id, err)
	}
	return site, nil
}

// DeleteSite deletes a site that has no hosts, agents or live VMs, with its
// enrollment tokens and the tombstones of its deleted VMs.
func (s *Store) DeleteSite(ctx context.Context, tenantID, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, qDeleteSiteIfUnused, tenantID, id)
	if err != nil {
		err = translate(err)
		if errors.Is(err, store.ErrNotFound) {
			// A foreign key refused the delete: something enrolled into
			// the site between the check and the delete.
			err = fmt.Errorf("%w: site still has hosts or vms", store.ErrConflict)
		}
		return fmt.Errorf("deleting site %s: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, qSiteExists, tenantID, id).Scan(&exists); err != nil {
		return fmt.Errorf("deleting site %s: %w", id, translate(err))
	}
	if exists {
		return fmt.Errorf("deleting site %s: %w: site still has hosts or vms", id, store.ErrConflict)
	}
	return fmt.Errorf("deleting site %s: %w", id, store.ErrNotFound)
}

// CreateEnrollmentToken stores a token of a tenant's site. MaxUses below 1
// means a one-time token.
func (s *Store) CreateEnrollmentToken(ctx context.Context, t store.EnrollmentToken) error {
	if _, err := s.pool.Exec(ctx, qInsertToken, t.ID, t.TenantID, t.SiteID, t.Hash, ts(t.ExpiresAt),
		max(t.MaxUses, 1), t.Uses, ts(t.CreatedAt), t.NetBirdSetupKeyID, sealedBytes(t.NetBirdSetupKeySealed)); err != nil {
		return fmt.Errorf("creating enrollment token %s: %w", t.ID, translate(err))
	}
	return nil
}

// TokensWithStaleSetupKeys implements store.Store.
func (s *Store) TokensWithStaleSetupKeys(ctx context.Context, unusedBefore, usedBefore time.Time, limit int) ([]store.EnrollmentToken, error) {
	rows, err := s.pool.Query(ctx, qTokensWithStaleSetupKeys, ts(unusedBefore), ts(usedBefore), pageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("listing expired enrollment tokens: %w", translate(err))
	}
	items, err := collect(rows, scanToken)
	if err != nil {
		return nil, fmt.Errorf("listing expired enrollment tokens: %w", err)
	}
	return items, nil
}

// ClearTokenSetupKey forgets the NetBird setup key of a token.
func (s *Store) ClearTokenSetupKey(ctx context.Context, id uuid.UUID) error {
	if err := s.execOne(ctx, qClearTokenSetupKey, id); err != nil {
		return fmt.Errorf("clearing setup key of enrollment token %s: %w", id, err)
	}
	return nil
}

// AppendAudit records an audit event; uuid.Nil is the admin scope.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	if _, err := s.pool.Exec(ctx, qInsertAudit, e.ID, nullID(e.TenantID), e.Actor, e.Action, e.Target,
		e.Result, e.RequestID, ts(e.At)); err != nil {
		return fmt.Errorf("appending audit event %s: %w", e.ID, translate(err))
	}
	return nil
}

// ListAudit lists a tenant's audit events (the admin scope's for uuid.Nil)
// in id order.
func (s *Store) ListAudit(ctx context.Context, tenantID uuid.UUID, p store.Page) ([]store.AuditEvent, bool, error) {
	items, more, err := listPage(ctx, s, scanAudit, p.Limit, qListAudit, nullID(tenantID), p.After)
	if err != nil {
		return nil, false, fmt.Errorf("listing audit events of tenant %s: %w", tenantID, err)
	}
	return items, more, nil
}

// GetIdempotency returns the record of an idempotency key, store.ErrNotFound
// when there is none.
func (s *Store) GetIdempotency(ctx context.Context, tenantID uuid.UUID, route, key string) (store.IdempotencyRecord, error) {
	rec, err := scanIdempotency(s.pool.QueryRow(ctx, qGetIdempotency, tenantID, route, key))
	if err != nil {
		return rec, fmt.Errorf("getting idempotency record %s %s: %w", route, key, err)
	}
	return rec, nil
}

// ReserveIdempotency claims a key for r; see store.Store. The unique key
// decides: of concurrent inserts, PostgreSQL lets one commit and makes the
// others re-check the takeover condition against it.
func (s *Store) ReserveIdempotency(ctx context.Context, r store.IdempotencyRecord) (store.IdempotencyRecord, bool, error) {
	fp := r.Fingerprint
	if fp == nil {
		fp = []byte{}
	}
	return store.ReserveIdempotencyWith(ctx, s, r, func() (bool, error) {
		var holder uuid.UUID
		err := s.pool.QueryRow(ctx, qReserveIdempotency, r.TenantID, r.Route, r.Key, fp,
			ts(r.CreatedAt), r.Holder, ts(r.ReservedUntil)).Scan(&holder)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return err == nil, translate(err)
	})
}

// CompleteIdempotency stores the answer of the request holding the key.
func (s *Store) CompleteIdempotency(ctx context.Context, r store.IdempotencyRecord) error {
	resp := r.Response
	if resp == nil {
		resp = []byte{}
	}
	if err := s.execOne(ctx, qCompleteIdempotency, r.TenantID, r.Route, r.Key, r.Holder, r.Status, resp); err != nil {
		return fmt.Errorf("completing idempotency key %s %s: %w", r.Route, r.Key, err)
	}
	return nil
}

// ReleaseIdempotency deletes the reservation held by holder.
func (s *Store) ReleaseIdempotency(ctx context.Context, tenantID uuid.UUID, route, key string, holder uuid.UUID) error {
	if err := s.execOne(ctx, qReleaseIdempotency, tenantID, route, key, holder); err != nil {
		return fmt.Errorf("releasing idempotency key %s %s: %w", route, key, err)
	}
	return nil
}
