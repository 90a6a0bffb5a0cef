package sqlite

import (
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/migrations"
)

// TestMigrationsDownAndUp rolls every migration back over a populated
// database and applies them again, so each Down section really undoes its
// Up (including the agents <-> hosts cycle).
func TestMigrationsDownAndUp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "nkudo.db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	now := time.Now()
	ten := store.Tenant{ID: store.NewID(), Name: "acme", CreatedAt: now}
	require.NoError(t, s.CreateTenant(ctx, ten))
	site := store.Site{ID: store.NewID(), TenantID: ten.ID, Name: "lab", CreatedAt: now, UpdatedAt: now}
	require.NoError(t, s.CreateSite(ctx, site))
	tok := store.EnrollmentToken{ID: store.NewID(), TenantID: ten.ID, SiteID: site.ID, Hash: []byte("secret"),
		ExpiresAt: now.Add(time.Hour), MaxUses: 1, CreatedAt: now}
	require.NoError(t, s.CreateEnrollmentToken(ctx, tok))
	_, _, _, err = s.ConsumeEnrollment(ctx, store.Enrollment{TokenHash: tok.Hash, AgentID: store.NewID(),
		HostID: store.NewID(), Hostname: "edge", CertExpiresAt: now, Now: now})
	require.NoError(t, err)

	fsys, err := fs.Sub(migrations.SQLite, "sqlite")
	require.NoError(t, err)
	p, err := goose.NewProvider(goose.DialectSQLite3, s.w, fsys)
	require.NoError(t, err)
	_, err = p.DownTo(ctx, 0)
	require.NoError(t, err)
	version, err := p.GetDBVersion(ctx)
	require.NoError(t, err)
	require.Zero(t, version)

	_, err = p.Up(ctx)
	require.NoError(t, err)
	_, err = s.GetTenant(ctx, ten.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "a rolled-back database starts empty")
	require.NoError(t, s.CreateTenant(ctx, ten))
}
