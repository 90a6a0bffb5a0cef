package hub

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/pgtest"
	"github.com/kubedoio/n-kudo/internal/store/postgres"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
)

// benchHosts is the number of distinct hosts heartbeating.
const benchHosts = 2000

// seedHosts enrolls n agents directly through the store.
func seedHosts(b *testing.B, st store.Store, n int) []hostUpdate {
	ctx := context.Background()
	now := time.Now()
	tenant, site := store.NewID(), store.NewID()
	require.NoError(b, st.CreateTenant(ctx, store.Tenant{ID: tenant, Name: "bench-" + tenant.String(), CreatedAt: now}))
	require.NoError(b, st.CreateSite(ctx, store.Site{ID: site, TenantID: tenant, Name: "s", CreatedAt: now, UpdatedAt: now}))
	hash := sha256.Sum256([]byte(tenant.String()))
	require.NoError(b, st.CreateEnrollmentToken(ctx, store.EnrollmentToken{
		ID: store.NewID(), TenantID: tenant, SiteID: site, Hash: hash[:], ExpiresAt: now.Add(time.Hour), MaxUses: n, CreatedAt: now,
	}))
	out := make([]hostUpdate, n)
	for i := range out {
		a, h := store.NewID(), store.NewID()
		_, _, _, err := st.ConsumeEnrollment(ctx, store.Enrollment{
			TokenHash: hash[:], AgentID: a, HostID: h, Hostname: "h", CertSerial: a.String(), CertExpiresAt: now.Add(time.Hour), Now: now,
		})
		require.NoError(b, err)
		out[i] = hostUpdate{hostID: h, agentID: a}
	}
	return out
}

// benchHeartbeats pushes b.N heartbeats of distinct hosts through the
// batcher, flushing every FlushSize like Run does, and reports the rate.
func benchHeartbeats(b *testing.B, st store.Store) {
	auth, err := pki.LoadOrCreate(pki.Options{Dir: filepath.Join(b.TempDir(), "pki")})
	require.NoError(b, err)
	h := New(Options{Store: st, Authority: auth})
	hosts := seedHosts(b, st, benchHosts)
	ctx := context.Background()
	i := 0
	start := time.Now()
	b.ResetTimer()
	for b.Loop() {
		u := hosts[i%len(hosts)]
		i++
		u.seen = time.Now()
		u.netbird = []byte(`{"state":"connected"}`)
		h.heartbeats.add(u)
		if i%h.opts.FlushSize == 0 {
			h.heartbeats.flush(ctx)
		}
	}
	h.heartbeats.flush(ctx)
	b.StopTimer()
	b.ReportMetric(float64(i)/time.Since(start).Seconds(), "heartbeats/s")
}

func BenchmarkHeartbeatsPersistedSQLite(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "db"))
	require.NoError(b, err)
	b.Cleanup(func() { _ = st.Close() })
	benchHeartbeats(b, st)
}

func BenchmarkHeartbeatsPersistedPostgres(b *testing.B) {
	url := pgtest.URL(b)
	st, err := postgres.Open(context.Background(), url)
	require.NoError(b, err)
	b.Cleanup(func() { _ = st.Close() })
	benchHeartbeats(b, st)
}
