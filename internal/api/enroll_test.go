package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/kubedoio/n-kudo/internal/api"
	"github.com/kubedoio/n-kudo/internal/store"
)

// tokenRacingStore lets another enrollment take the last use of a token
// right after the API read it: the window between the read and the single
// write of an enrollment, during which the certificate is signed.
type tokenRacingStore struct {
	store.Store
}

func (s *tokenRacingStore) EnrollmentTokenByHash(ctx context.Context, hash []byte, now time.Time) (store.EnrollmentToken, error) {
	tok, err := s.Store.EnrollmentTokenByHash(ctx, hash, now)
	if err != nil {
		return tok, err
	}
	for range tok.MaxUses - tok.Uses {
		if _, _, _, err := s.Store.ConsumeEnrollment(ctx, store.Enrollment{
			TokenHash: hash, AgentID: store.NewID(), HostID: store.NewID(), Hostname: "winner",
			CertSerial: "01", CertExpiresAt: now.Add(time.Hour), Now: now,
		}); err != nil {
			return store.EnrollmentToken{}, err
		}
	}
	return tok, nil
}

func TestEnrollTokenUsedUpWhileSigning(t *testing.T) {
	t.Parallel()
	racer := &tokenRacingStore{}
	e := newChannelEnv(t, func(o *api.Options) {
		racer.Store, o.Store = o.Store, racer
		// One failed authentication is all this address may spend: a lost
		// race must not count as one.
		o.RateLimit.FailedAuthPerIP, o.RateLimit.FailedAuthBurst = rate.Every(time.Hour), 1
	})
	tenant := e.createTenant("acme")
	admin, _ := e.createKey(tenant, store.RoleAdmin)
	site := e.createSite(admin, "edge")

	for i := range 2 {
		csr, _ := newCSR(t)
		resp := e.do(req{method: "POST", path: "/v1/enroll", body: map[string]string{"token": e.token(admin, site, 1), "csr": string(csr), "hostname": "loser"}})
		require.Equal(t, http.StatusUnauthorized, resp.status, "attempt %d: %s", i, resp.body)
		require.Equal(t, api.CodeTokenInvalid, resp.errCode(t))
	}

	agents, _, err := e.store.ListAgents(context.Background(), tenant, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, agents, 2, "only the winners enrolled")
	for _, a := range agents {
		host, err := e.store.GetHost(context.Background(), tenant, a.HostID)
		require.NoError(t, err)
		require.Equal(t, "winner", host.Hostname)
	}
	events, _, err := e.store.ListAudit(context.Background(), tenant, store.Page{Limit: 100})
	require.NoError(t, err)
	for _, ev := range events {
		require.NotEqual(t, "agent.enroll", ev.Action, "a lost race records no enrollment")
	}
}
