package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agent/enroll"
	"github.com/kubedoio/n-kudo/internal/agent/identity"
	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/server"
	"github.com/kubedoio/n-kudo/internal/store/pgtest"
	"github.com/kubedoio/n-kudo/internal/store/postgres"
)

// sealKey and otherSealKey are NKUDO_PKI_SEAL_KEY values: 32 bytes, base64.
const (
	sealKey      = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	otherSealKey = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
)

func pkiConfig(dbURL, dataDir, key string, names ...string) server.Config {
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.DatabaseURL, cfg.PKISealKey, cfg.ServerNames = dataDir, dbURL, key, names
	return cfg
}

// loadPKI runs the PKI start-up of a replica against the database.
func loadPKI(t *testing.T, cfg server.Config) (*pki.Authority, error) {
	t.Helper()
	st, err := postgres.Open(t.Context(), cfg.DatabaseURL)
	require.NoError(t, err)
	defer st.Close()
	return server.LoadPKI(t.Context(), cfg, st, slog.New(slog.DiscardHandler))
}

// Two replicas with empty data dirs on one PostgreSQL issue and trust one
// CA: an agent enrolled through the first connects to the second over
// real mutual TLS, and each replica's certificate names its server names.
func TestReplicasShareOnePKI(t *testing.T) {
	dbURL := pgtest.URL(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startReplicaWith(t, pkiConfig(dbURL, dirA, sealKey, "a.nkudo.example", "lb.nkudo.example"))
	b := startReplicaWith(t, pkiConfig(dbURL, dirB, sealKey, "b.nkudo.example", "lb.nkudo.example", "192.0.2.10"))

	caA, err := os.ReadFile(filepath.Join(dirA, "pki", "ca.crt"))
	require.NoError(t, err)
	caB, err := os.ReadFile(filepath.Join(dirB, "pki", "ca.crt"))
	require.NoError(t, err)
	require.Equal(t, string(caA), string(caB), "one CA for both replicas")
	require.Equal(t, a.srv.Authority().Fingerprint(), b.srv.Authority().Fingerprint())
	for _, dir := range []string{dirA, dirB} {
		require.NoFileExists(t, filepath.Join(dir, "pki", "ca.key"), "the CA key stays sealed in the database")
	}
	leafB := b.srv.Authority().ServerCertificate().Leaf
	require.Subset(t, leafB.DNSNames, []string{"b.nkudo.example", "lb.nkudo.example", "localhost"})
	require.True(t, leafB.IPAddresses[len(leafB.IPAddresses)-1].Equal([]byte{192, 0, 2, 10}))
	require.NoError(t, leafB.CheckSignatureFrom(a.srv.Authority().CACert()), "B's certificate is signed by the shared CA")

	_, _, id := bootstrapAndEnroll(t, a, a, caA, filepath.Join(dirA, "pki", "ca.crt"), "shared-pki")

	// The agent's certificate (from A) opens a session on B, which
	// verifies it against the same CA; dial insists on the hello-ack.
	ag := dial(t, b, id)
	_ = ag.conn.CloseNow()

	// A client trusting only the CA accepts B under the balancer's name.
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caA))
	conn, err := tls.Dial("tcp", b.srv.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "lb.nkudo.example", MinVersion: tls.VersionTLS13})
	require.NoError(t, err)
	require.NoError(t, conn.Close())
}

// bootstrapAndEnroll creates a tenant, its admin key and a site through
// api, and enrolls one agent through enrollVia trusting caFile. It
// returns the tenant's client (on api), the site and the agent's identity.
func bootstrapAndEnroll(t *testing.T, api, enrollVia *replica, caPEM []byte, caFile, name string) (*client.Client, client.Site, *identity.Identity) {
	t.Helper()
	ctx := t.Context()
	admin := api.client(t, caPEM, adminKey, "")
	tenant, err := admin.CreateTenant(ctx, name)
	require.NoError(t, err)
	key, err := admin.CreateAPIKey(ctx, tenant.ID, "ops", "admin")
	require.NoError(t, err)
	c := api.client(t, caPEM, key.Key, "")
	site, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: "edge"})
	require.NoError(t, err)
	tok, err := c.CreateEnrollmentToken(ctx, site.ID, client.CreateEnrollmentTokenRequest{TTL: 5 * time.Minute, MaxUses: 1})
	require.NoError(t, err)
	stateDir := t.TempDir()
	_, err = enroll.Enroll(ctx, enroll.Options{Server: enrollVia.url, Token: tok.Token, StateDir: stateDir, CAFile: caFile, Hostname: "edge-1"})
	require.NoError(t, err)
	id, err := identity.Load(stateDir)
	require.NoError(t, err)
	return c, site, id
}

// Replicas starting at the same moment on an empty database agree on one
// CA: one stores it, the others read the winner's.
func TestSharedPKIStartRace(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	const replicas = 4
	fps := make([]string, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		cfg := pkiConfig(dbURL, t.TempDir(), sealKey)
		st, err := postgres.Open(t.Context(), dbURL)
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		wg.Go(func() {
			auth, err := server.LoadPKI(t.Context(), cfg, st, slog.New(slog.DiscardHandler))
			if errs[i] = err; err == nil {
				fps[i] = auth.Fingerprint()
			}
		})
	}
	wg.Wait()
	for i := range replicas {
		require.NoError(t, errs[i])
		require.Equal(t, fps[0], fps[i])
	}
}

// A replica with another seal key is refused with a clear error, and the
// stored CA stays the one the fleet trusts.
func TestSharedPKIWrongSealKey(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	first, err := loadPKI(t, pkiConfig(dbURL, t.TempDir(), sealKey))
	require.NoError(t, err)

	_, err = loadPKI(t, pkiConfig(dbURL, t.TempDir(), otherSealKey))
	require.ErrorIs(t, err, pki.ErrWrongSealKey)
	require.ErrorContains(t, err, "NKUDO_PKI_SEAL_KEY must be the value the first replica started with")
	require.ErrorContains(t, err, first.Fingerprint(), "the error names the stored CA")

	again, err := loadPKI(t, pkiConfig(dbURL, t.TempDir(), sealKey))
	require.NoError(t, err)
	require.Equal(t, first.Fingerprint(), again.Fingerprint(), "no new CA was minted")
}

// A server that kept its CA in its data dir and moves to shared PKI
// brings its CA (and so its enrolled fleet) along; a data dir holding
// another CA than the database is refused rather than split the fleet.
func TestSharedPKIAdoptsTheDataDirCA(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	legacyDir := t.TempDir()
	cfg := server.DefaultConfig()
	cfg.DataDir = legacyDir
	legacy, err := pki.LoadOrCreate(pki.Options{Dir: filepath.Join(legacyDir, "pki")})
	require.NoError(t, err)

	adopted, err := loadPKI(t, pkiConfig(dbURL, legacyDir, sealKey))
	require.NoError(t, err)
	require.Equal(t, legacy.Fingerprint(), adopted.Fingerprint())
	fresh, err := loadPKI(t, pkiConfig(dbURL, t.TempDir(), sealKey))
	require.NoError(t, err)
	require.Equal(t, legacy.Fingerprint(), fresh.Fingerprint(), "a new replica loads the adopted CA")

	otherDir := t.TempDir()
	_, err = pki.LoadOrCreate(pki.Options{Dir: filepath.Join(otherDir, "pki")})
	require.NoError(t, err)
	_, err = loadPKI(t, pkiConfig(dbURL, otherDir, sealKey))
	require.ErrorContains(t, err, "but the database holds CA "+legacy.Fingerprint())
}

// With PostgreSQL and no CA files, a missing seal key stops the start
// with the variable to set.
func TestSharedPKIRequiresSealKey(t *testing.T) {
	t.Parallel()
	cfg := pkiConfig("postgres://nkudo@127.0.0.1:1/nkudo", t.TempDir(), "")
	cfg.AdminKey = adminKey
	_, err := server.New(t.Context(), cfg, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "NKUDO_PKI_SEAL_KEY is required with PostgreSQL")
}

// With PostgreSQL the backup holds only the PKI, read from the database
// with the seal key; restored into a new replica's data dir it is the CA
// the database holds, so that replica starts.
func TestSharedPKIBackupPKIOnly(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	cfg := pkiConfig(dbURL, t.TempDir(), sealKey)
	auth, err := loadPKI(t, cfg)
	require.NoError(t, err)

	archive := filepath.Join(t.TempDir(), "pki.tar.gz")
	_, err = server.Backup(t.Context(), cfg, archive, false)
	require.ErrorContains(t, err, "pg_dump")
	wrong := cfg
	wrong.PKISealKey = otherSealKey
	_, err = server.Backup(t.Context(), wrong, archive, true)
	require.ErrorIs(t, err, pki.ErrWrongSealKey)
	m, err := server.Backup(t.Context(), cfg, archive, true)
	require.NoError(t, err)
	require.True(t, m.PKIOnly)
	require.Equal(t, "postgres", m.Engine)
	require.Equal(t, auth.Fingerprint(), m.CAFingerprint)

	restored := pkiConfig(dbURL, filepath.Join(t.TempDir(), "data"), sealKey)
	_, err = server.Restore(t.Context(), restored, archive)
	require.NoError(t, err)
	again, err := loadPKI(t, restored)
	require.NoError(t, err)
	require.Equal(t, auth.Fingerprint(), again.Fingerprint())
}
