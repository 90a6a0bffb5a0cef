package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// CreateTenant stores a tenant; a duplicate id or name is store.ErrConflict.
func (s *Store) CreateTenant(ctx context.Context, t store.Tenant) error {
	if _, err := s.w.ExecContext(ctx, qInsertTenant, t.ID, t.Name, micros(t.CreatedAt)); err != nil {
		return fmt.Errorf("creating tenant %s: %w", t.ID, translate(err))
	}
	return nil
}

// GetTenant returns a tenant by id.
func (s *Store) GetTenant(ctx context.Context, id uuid.UUID) (store.Tenant, error) {
	t, err := scanTenant(s.r.QueryRowContext(ctx, qGetTenant, id))
	if err != nil {
		return t, fmt.Errorf("getting tenant %s: %w", id, err)
	}
	return t, nil
}

// ListTenants lists tenants in id order.
func (s *Store) ListTenants(ctx context.Context, p store.Page) ([]store.Tenant, bool, error) {
	limit := pageLimit(p.Limit)
	rows, err := s.r.QueryContext(ctx, qListTenants, afterKey(p.After), limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("listing tenants: %w", translate(err))
	}
	items, err := collect(rows, scanTenant)
	if err != nil {
		return nil, false, fmt.Errorf("listing tenants: %w", err)
	}
	items, more := trimPage(items, limit)
	return items, more, nil
}

// CreateAPIKey stores a key; an unknown tenant is store.ErrNotFound and a
// duplicate hash store.ErrConflict.
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	if _, err := s.w.ExecContext(ctx, qInsertAPIKey, k.ID, k.TenantID, k.Name, k.Role, k.Prefix, k.Hash,
		micros(k.CreatedAt), nullMicros(k.LastUsedAt)); err != nil {
		return fmt.Errorf("creating api key %s: %w", k.ID, translate(err))
	}
	return nil
}

// GetAPIKeyByHash finds a key of any tenant by the hash of its secret.
func (s *Store) GetAPIKeyByHash(ctx context.Context, hash []byte) (store.APIKey, error) {
	k, err := scanAPIKey(s.r.QueryRowContext(ctx, qGetAPIKeyByHash, hash))
	if err != nil {
		return k, fmt.Errorf("getting api key by hash: %w", err)
	}
	return k, nil
}

// ListAPIKeys lists a tenant's keys in id order.
func (s *Store) ListAPIKeys(ctx context.Context, tenantID uuid.UUID, p store.Page) ([]store.APIKey, bool, error) {
	limit := pageLimit(p.Limit)
	rows, err := s.r.QueryContext(ctx, qListAPIKeys, tenantID, afterKey(p.After), limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("listing api keys of tenant %s: %w", tenantID, translate(err))
	}
	items, err := collect(rows, scanAPIKey)
	if err != nil {
		return nil, false, fmt.Errorf("listing api keys of tenant %s: %w", tenantID, err)
	}
	items, more := trimPage(items, limit)
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
	if err := s.execOne(ctx, qTouchAPIKey, id, micros(at)); err != nil {
		return fmt.Errorf("touching api key %s: %w", id, err)
	}
	return nil
}

// CreateSite stores a site; a duplicate name in the tenant is
// store.ErrConflict.
func (s *Store) CreateSite(ctx context.Context, site store.Site) error {
	groups, err := groupsJSON(site.NetBirdGroups)
	if err != nil {
		return fmt.Errorf("creating site %s: %w", site.ID, err)
	}
	if _, err := s.w.ExecContext(ctx, qInsertSite, site.ID, site.TenantID, site.Name, site.Description,
		boolInt(site.NetBirdEnabled), groups, micros(site.CreatedAt), micros(site.UpdatedAt)); err != nil {
		return fmt.Errorf("creating site %s: %w", site.ID, translate(err))
	}
	return nil
}

// GetSite returns a tenant's site.
func (s *Store) GetSite(ctx context.Context, tenantID, id uuid.UUID) (store.Site, error) {
	site, err := scanSite(s.r.QueryRowContext(ctx, qGetSite, tenantID, id))
	if err != nil {
		return site, fmt.Errorf("getting site %s: %w", id, err)
	}
	return site, nil
}

// ListSites lists a tenant's sites in id order.
func (s *Store) ListSites(ctx context.Context, tenantID uuid.UUID, p store.Page) ([]store.Site, bool, error) {
	limit := pageLimit(p.Limit)
	rows, err := s.r.QueryContext(ctx, qListSites, tenantID, afterKey(p.After), limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("listing sites of tenant %s: %w", tenantID, translate(err))
	}
	items, err := collect(rows, scanSite)
	if err != nil {
		return nil, false, fmt.Errorf("listing sites of tenant %s: %w", tenantID, err)
	}
	items, more := trimPage(items, limit)
	return items, more, nil
}

// UpdateSite applies the non-nil fields of patch and returns the site.
func (s *Store) UpdateSite(ctx context.Context, tenantID, id uuid.UUID, patch store.SitePatch, now time.Time) (store.Site, error) {
	var name, desc, enabled, groups any
	if patch.Name != nil {
		name = *patch.Name
	}
	if patch.Description != nil {
		desc = *patch.Description
	}
	if patch.NetBirdEnabled != nil {
		enabled = boolInt(*patch.NetBirdEnabled)
	}
	if patch.NetBirdGroups != nil {
		g, err := groupsJSON(*patch.NetBirdGroups)
		if err != nil {
			return store.Site{}, fmt.Errorf("updating site %s: %w", id, err)
		}
		groups = g
	}
	site, err := scanSite(s.w.QueryRowContext(ctx, qUpdateSite, tenantID, id, name, desc, enabled, groups, micros(now)))
	if err != nil {
		return site, fmt.Errorf("updating site %s: %w", id, err)
	}
	return site, nil
}

// DeleteSite deletes a site that has no hosts, agents or live VMs, with its
// enrollment tokens and the tombstones of its deleted VMs.
func (s *Store) DeleteSite(ctx context.Context, tenantID, id uuid.UUID) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var inUse bool
		if err := tx.QueryRowContext(ctx, qSiteInUse, tenantID, id).Scan(&inUse); err != nil {
			return translate(err)
		}
		if inUse {
			return fmt.Errorf("%w: site still has hosts or vms", store.ErrConflict)
		}
		res, err := tx.ExecContext(ctx, qDeleteSite, tenantID, id)
		if err != nil {
			return translate(err)
		}
		return requireRow(res)
	})
	if err != nil {
		return fmt.Errorf("deleting site %s: %w", id, err)
	}
	return nil
}

// CreateEnrollmentToken stores a token of a tenant's site. MaxUses below 1
// means a one-time token.
func (s *Store) CreateEnrollmentToken(ctx context.Context, t store.EnrollmentToken) error {
	maxUses := max(t.MaxUses, 1)
	if _, err := s.w.ExecContext(ctx, qInsertToken, t.ID, t.TenantID, t.SiteID, t.Hash, micros(t.ExpiresAt),
		maxUses, t.Uses, micros(t.CreatedAt), t.NetBirdSetupKeyID, sealedBytes(t.NetBirdSetupKeySealed)); err != nil {
		return fmt.Errorf("creating enrollment token %s: %w", t.ID, translate(err))
	}
	return nil
}

// TokensWithStaleSetupKeys implements store.Store.
func (s *Store) TokensWithStaleSetupKeys(ctx context.Context, unusedBefore, usedBefore time.Time, limit int) ([]store.EnrollmentToken, error) {
	rows, err := s.r.QueryContext(ctx, qTokensWithStaleSetupKeys, micros(unusedBefore), micros(usedBefore), pageLimit(limit))
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
