package storetest

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
)

// Exercise runs the conformance suite. open must return a fresh, migrated,
// empty store each time it is called and release it in t.Cleanup; subtests
// run in parallel, each with its own store.
func Exercise(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"Ping", testPing},
		{"Tenants", testTenants},
		{"APIKeys", testAPIKeys},
		{"Sites", testSites},
		{"DeleteSite", testDeleteSite},
		{"Enrollment", testEnrollment},
		{"EnrollmentRejections", testEnrollmentRejections},
		{"EnrollmentRace", testEnrollmentRace},
		{"EnrollmentTokenByHash", testEnrollmentTokenByHash},
		{"EnrollmentAudit", testEnrollmentAudit},
		{"TokensWithStaleSetupKeys", testTokensWithStaleSetupKeys},
		{"TokenSetupKeySealed", testTokenSetupKeySealed},
		{"Agents", testAgents},
		{"RevokeAgent", testRevokeAgent},
		{"AgentOnline", testAgentOnline},
		{"MarkStaleAgentsOffline", testMarkStaleAgentsOffline},
		{"Hosts", testHosts},
		{"UpsertHostStates", testUpsertHostStates},
		{"VMs", testVMs},
		{"VMStates", testVMStates},
		{"CountVMsByHost", testCountVMsByHost},
		{"Plans", testPlans},
		{"CreateVMWithPlan", testCreateVMWithPlan},
		{"PlanDispatch", testPlanDispatch},
		{"ApplyActionResult", testApplyActionResult},
		{"PlanFailure", testPlanFailure},
		{"LogLines", testLogLines},
		{"LogLinesBulk", testLogLinesBulk},
		{"Audit", testAudit},
		{"Idempotency", testIdempotency},
		{"IdempotencyTakeover", testIdempotencyTakeover},
		{"IdempotencyRace", testIdempotencyRace},
		{"RetentionTimed", testRetentionTimed},
		{"RetentionPlansOnlyFinished", testRetentionPlansOnlyFinished},
		{"RetentionRevokedAgents", testRetentionRevokedAgents},
		{"RetentionBadArguments", testRetentionBadArguments},
		{"TryExclusive", testTryExclusive},
		{"SharedPKI", testSharedPKI},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newFixture(t, open(t)))
		})
	}
	t.Run("Pagination", func(t *testing.T) {
		t.Parallel()
		testPagination(t, open)
	})
}

func testPing(t *testing.T, f *fixture) {
	require.NoError(t, f.s.Ping(f.ctx))
}

func testTenants(t *testing.T, f *fixture) {
	ten := f.tenant()
	got, err := f.s.GetTenant(f.ctx, ten.ID)
	require.NoError(t, err)
	require.Equal(t, store.Tenant{ID: ten.ID, Name: ten.Name, CreatedAt: ts(base)}, got)
	requireUTC(t, got.CreatedAt)

	_, err = f.s.GetTenant(f.ctx, store.NewID())
	require.ErrorIs(t, err, store.ErrNotFound)

	for name, dup := range map[string]store.Tenant{
		"same id":   {ID: ten.ID, Name: "other-name", CreatedAt: base},
		"same name": {ID: store.NewID(), Name: ten.Name, CreatedAt: base},
	} {
		require.ErrorIs(t, f.s.CreateTenant(f.ctx, dup), store.ErrConflict, name)
	}
}

func testAPIKeys(t *testing.T, f *fixture) {
	ten, other := f.tenant(), f.tenant()
	k := f.apiKey(ten.ID)
	want := k
	want.CreatedAt = ts(k.CreatedAt)

	got, err := f.s.GetAPIKeyByHash(f.ctx, k.Hash)
	require.NoError(t, err)
	require.Equal(t, want, got)

	_, err = f.s.GetAPIKeyByHash(f.ctx, hash("no such key"))
	require.ErrorIs(t, err, store.ErrNotFound)

	dup := k
	dup.ID = store.NewID()
	dup.TenantID = other.ID
	require.ErrorIs(t, f.s.CreateAPIKey(f.ctx, dup), store.ErrConflict, "hash is unique across tenants")

	used := base.Add(time.Minute)
	require.NoError(t, f.s.TouchAPIKey(f.ctx, k.ID, used))
	got, err = f.s.GetAPIKeyByHash(f.ctx, k.Hash)
	require.NoError(t, err)
	require.Equal(t, tsp(used), got.LastUsedAt)
	require.ErrorIs(t, f.s.TouchAPIKey(f.ctx, store.NewID(), used), store.ErrNotFound)

	listed, _, err := f.s.ListAPIKeys(f.ctx, other.ID, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, listed, "another tenant's keys are never listed")

	require.ErrorIs(t, f.s.DeleteAPIKey(f.ctx, other.ID, k.ID), store.ErrNotFound, "another tenant cannot delete the key")
	_, err = f.s.GetAPIKeyByHash(f.ctx, k.Hash)
	require.NoError(t, err, "a refused delete leaves the key")

	require.NoError(t, f.s.DeleteAPIKey(f.ctx, ten.ID, k.ID))
	_, err = f.s.GetAPIKeyByHash(f.ctx, k.Hash)
	require.ErrorIs(t, err, store.ErrNotFound, "a deleted key stops working at once")
	require.ErrorIs(t, f.s.DeleteAPIKey(f.ctx, ten.ID, k.ID), store.ErrNotFound)
}

func testSites(t *testing.T, f *fixture) {
	ten, other := f.tenant(), f.tenant()
	site := f.site(ten.ID)
	want := site
	want.CreatedAt, want.UpdatedAt = ts(base), ts(base)

	got, err := f.s.GetSite(f.ctx, ten.ID, site.ID)
	require.NoError(t, err)
	requireSite(t, want, got)

	_, err = f.s.GetSite(f.ctx, other.ID, site.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "another tenant's site")

	dup := site
	dup.ID = store.NewID()
	require.ErrorIs(t, f.s.CreateSite(f.ctx, dup), store.ErrConflict, "site names are unique in a tenant")
	dup.TenantID = other.ID
	require.NoError(t, f.s.CreateSite(f.ctx, dup), "the same name in another tenant is fine")

	bare := store.Site{ID: store.NewID(), TenantID: ten.ID, Name: "bare", CreatedAt: base, UpdatedAt: base}
	require.NoError(t, f.s.CreateSite(f.ctx, bare))
	got, err = f.s.GetSite(f.ctx, ten.ID, bare.ID)
	require.NoError(t, err)
	require.Empty(t, got.NetBirdGroups)
	require.False(t, got.NetBirdEnabled)

	later := base.Add(time.Hour)
	desc := "moved to rack 9"
	got, err = f.s.UpdateSite(f.ctx, ten.ID, site.ID, store.SitePatch{Description: &desc}, later)
	require.NoError(t, err)
	want.Description, want.UpdatedAt = desc, ts(later)
	requireSite(t, want, got)

	name, enabled, groups := "renamed", false, []string{"core"}
	got, err = f.s.UpdateSite(f.ctx, ten.ID, site.ID, store.SitePatch{Name: &name, NetBirdEnabled: &enabled, NetBirdGroups: &groups}, later)
	require.NoError(t, err)
	want.Name, want.NetBirdEnabled, want.NetBirdGroups = name, enabled, groups
	requireSite(t, want, got)
	stored, err := f.s.GetSite(f.ctx, ten.ID, site.ID)
	require.NoError(t, err)
	requireSite(t, want, stored)

	empty := []string{}
	got, err = f.s.UpdateSite(f.ctx, ten.ID, site.ID, store.SitePatch{NetBirdGroups: &empty}, later)
	require.NoError(t, err)
	require.Empty(t, got.NetBirdGroups, "a non-nil empty patch clears the groups")

	_, err = f.s.UpdateSite(f.ctx, other.ID, site.ID, store.SitePatch{Description: &desc}, later)
	require.ErrorIs(t, err, store.ErrNotFound, "another tenant cannot update the site")
	_, err = f.s.UpdateSite(f.ctx, ten.ID, site.ID, store.SitePatch{Name: &bare.Name}, later)
	require.ErrorIs(t, err, store.ErrConflict, "renaming onto a taken name")
}

func testDeleteSite(t *testing.T, f *fixture) {
	ten, other := f.tenant(), f.tenant()
	tests := []struct {
		name    string
		prepare func(site store.Site)
		tenant  uuid.UUID
		want    error
	}{
		{name: "empty site", tenant: ten.ID},
		{name: "site with an unused token", tenant: ten.ID, prepare: func(site store.Site) {
			f.token(site, 1, base.Add(time.Hour))
		}},
		{name: "another tenant's site", tenant: other.ID, want: store.ErrNotFound},
		{name: "site with a host", tenant: ten.ID, want: store.ErrConflict, prepare: func(site store.Site) {
			f.enroll(site)
		}},
		{name: "site with an unscheduled vm", tenant: ten.ID, want: store.ErrConflict, prepare: func(site store.Site) {
			f.vm(site, uuid.Nil)
		}},
	}
	for _, tc := range tests {
		site := f.site(ten.ID)
		if tc.prepare != nil {
			tc.prepare(site)
		}
		err := f.s.DeleteSite(f.ctx, tc.tenant, site.ID)
		if tc.want != nil {
			require.ErrorIs(t, err, tc.want, tc.name)
			_, err := f.s.GetSite(f.ctx, ten.ID, site.ID)
			require.NoError(t, err, "%s: a refused delete keeps the site", tc.name)
			continue
		}
		require.NoError(t, err, tc.name)
		_, err = f.s.GetSite(f.ctx, ten.ID, site.ID)
		require.ErrorIs(t, err, store.ErrNotFound, tc.name)
		require.ErrorIs(t, f.s.DeleteSite(f.ctx, ten.ID, site.ID), store.ErrNotFound, "%s: deleting twice", tc.name)
	}
}

func testEnrollment(t *testing.T, f *fixture) {
	ten := f.tenant()
	site := f.site(ten.ID)
	tok := f.token(site, 2, base.Add(15*time.Minute))

	dup := tok
	dup.ID = store.NewID()
	require.ErrorIs(t, f.s.CreateEnrollmentToken(f.ctx, dup), store.ErrConflict, "token hashes are unique")

	other := f.tenant()
	cross := tok
	cross.ID, cross.TenantID, cross.Hash = store.NewID(), other.ID, hash("cross-tenant token")
	require.ErrorIs(t, f.s.CreateEnrollmentToken(f.ctx, cross), store.ErrNotFound, "a token for another tenant's site")

	e := f.enrollment(tok)
	agent, host, gotTok, err := f.s.ConsumeEnrollment(f.ctx, e)
	require.NoError(t, err)

	wantTok := tok
	wantTok.Uses = 1
	wantTok.ExpiresAt, wantTok.CreatedAt = ts(tok.ExpiresAt), ts(tok.CreatedAt)
	require.Equal(t, wantTok, gotTok, "the token after this use")

	require.Equal(t, e.AgentID, agent.ID)
	require.Equal(t, ten.ID, agent.TenantID)
	require.Equal(t, site.ID, agent.SiteID)
	require.Equal(t, e.HostID, agent.HostID)
	require.Equal(t, e.CertSerial, agent.CertSerial)
	require.Equal(t, ts(e.CertExpiresAt), agent.CertExpiresAt)
	require.Equal(t, ts(e.Now), agent.CreatedAt)
	require.False(t, agent.Revoked)
	require.Nil(t, agent.RevokedAt)
	require.NotEqual(t, store.AgentOnline, agent.Status, "an agent is online only once its session says hello")

	require.Equal(t, e.HostID, host.ID)
	require.Equal(t, ten.ID, host.TenantID)
	require.Equal(t, site.ID, host.SiteID)
	require.Equal(t, e.AgentID, host.AgentID)
	require.Equal(t, e.Hostname, host.Hostname)
	require.False(t, host.Online)
	requireJSON(t, `{}`, host.Facts)
	requireJSON(t, `{}`, host.NetBird)
	requireJSON(t, `{}`, host.Usage)

	stored, err := f.s.GetAgent(f.ctx, agent.ID)
	require.NoError(t, err)
	require.Equal(t, agent, stored)
	stored, err = f.s.GetTenantAgent(f.ctx, ten.ID, agent.ID)
	require.NoError(t, err)
	require.Equal(t, agent, stored)
	storedHost, err := f.s.GetHost(f.ctx, ten.ID, host.ID)
	require.NoError(t, err)
	requireHost(t, host, storedHost)

	_, _, gotTok, err = f.s.ConsumeEnrollment(f.ctx, f.enrollment(tok))
	require.NoError(t, err, "the second use of a two-use token")
	require.Equal(t, 2, gotTok.Uses)
	_, _, _, err = f.s.ConsumeEnrollment(f.ctx, f.enrollment(tok))
	require.ErrorIs(t, err, store.ErrTokenInvalid, "a used-up token")
}

func testEnrollmentRejections(t *testing.T, f *fixture) {
	ten := f.tenant()
	site := f.site(ten.ID)
	used := f.token(site, 1, base.Add(time.Hour))
	_, _, _, err := f.s.ConsumeEnrollment(f.ctx, f.enrollment(used))
	require.NoError(t, err)

	tests := []struct {
		name string
		tok  store.EnrollmentToken
		now  time.Time
	}{
		{name: "unknown", tok: store.EnrollmentToken{Hash: hash("never issued")}, now: base},
		{name: "expired", tok: f.token(site, 1, base.Add(-time.Second)), now: base},
		{name: "expiring at now", tok: f.token(site, 1, base), now: base},
		{name: "used up", tok: used, now: base},
	}
	for _, tc := range tests {
		e := f.enrollment(tc.tok)
		e.Now = tc.now
		_, _, _, err := f.s.ConsumeEnrollment(f.ctx, e)
		require.ErrorIs(t, err, store.ErrTokenInvalid, tc.name)
		_, err = f.s.GetAgent(f.ctx, e.AgentID)
		require.ErrorIs(t, err, store.ErrNotFound, "%s: a refused enrollment creates no agent", tc.name)
		_, err = f.s.GetHost(f.ctx, ten.ID, e.HostID)
		require.ErrorIs(t, err, store.ErrNotFound, "%s: a refused enrollment creates no host", tc.name)
	}
}

func testEnrollmentRace(t *testing.T, f *fixture) {
	const racers = 20
	for _, uses := range []int{1, 5} {
		ten := f.tenant()
		site := f.site(ten.ID)
		tok := f.token(site, uses, base.Add(time.Hour))
		enrollments := make([]store.Enrollment, racers)
		for i := range enrollments {
			enrollments[i] = f.enrollment(tok)
		}
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				_, _, _, errs[i] = f.s.ConsumeEnrollment(f.ctx, enrollments[i])
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
				continue
			}
			require.ErrorIs(t, err, store.ErrTokenInvalid)
		}
		require.Equal(t, uses, wins, "a %d-use token raced by %d agents", uses, racers)
		agents, _, err := f.s.ListAgents(f.ctx, ten.ID, store.Page{Limit: 100})
		require.NoError(t, err)
		require.Len(t, agents, uses)
	}
}

func testTokensWithStaleSetupKeys(t *testing.T, f *fixture) {
	ten := f.tenant()
	site := f.site(ten.ID)
	now := base.Add(time.Hour)
	mkUses := func(expires time.Time, setupKey string, maxUses, uses int) store.EnrollmentToken {
		tok := store.EnrollmentToken{
			ID: store.NewID(), TenantID: ten.ID, SiteID: site.ID, Hash: hash(store.NewID().String()),
			ExpiresAt: expires, MaxUses: maxUses, CreatedAt: base, NetBirdSetupKeyID: setupKey,
		}
		require.NoError(t, f.s.CreateEnrollmentToken(f.ctx, tok))
		// Enroll at base, before the token expires.
		for range uses {
			_, _, _, err := f.s.ConsumeEnrollment(f.ctx, f.enrollment(tok))
			require.NoError(t, err)
		}
		return tok
	}
	mk := func(expires time.Time, setupKey string, use bool) store.EnrollmentToken {
		if use {
			return mkUses(expires, setupKey, 1, 1)
		}
		return mkUses(expires, setupKey, 1, 0)
	}
	first := mk(base.Add(time.Minute), "sk-1", false)
	second := mk(base.Add(2*time.Minute), "sk-2", false)
	mk(base.Add(2*time.Hour), "sk-valid", false) // not expired yet
	mk(base.Add(time.Minute), "", false)         // no setup key
	// Used up: its key admits no more peers, but its hosts may not have
	// joined yet; then it is deleted like any other.
	used := mk(base.Add(time.Minute), "sk-used", true)
	// Partly used: its key still admits two peers.
	partly := mkUses(base.Add(3*time.Minute), "sk-partly", 3, 1)
	multiUsedUp := mkUses(base.Add(time.Minute), "sk-multi-used-up", 2, 2)
	mkUses(base.Add(2*time.Hour), "sk-multi-valid", 3, 1) // partly used, not expired yet

	tokenIDs := func(toks []store.EnrollmentToken) []uuid.UUID {
		return ids(toks, func(t store.EnrollmentToken) uuid.UUID { return t.ID })
	}
	for _, tc := range []struct {
		name       string
		usedBefore time.Time
		want       []uuid.UUID
	}{
		// A host enrolled with a used token just before it expired may
		// not have joined yet: its key waits for usedBefore.
		{"used tokens within their grace", base, []uuid.UUID{first.ID, second.ID}},
		{"used tokens past their grace", now, []uuid.UUID{first.ID, used.ID, multiUsedUp.ID, second.ID, partly.ID}},
	} {
		got, err := f.s.TokensWithStaleSetupKeys(f.ctx, now, tc.usedBefore, 10)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, tokenIDs(got), "%s: oldest expiry first", tc.name)
		for _, tok := range got {
			require.NotEmpty(t, tok.NetBirdSetupKeyID)
			require.Equal(t, site.ID, tok.SiteID)
		}
	}

	limited, err := f.s.TokensWithStaleSetupKeys(f.ctx, now, now, 1)
	require.NoError(t, err)
	require.Len(t, limited, 1)

	require.NoError(t, f.s.ClearTokenSetupKey(f.ctx, first.ID))
	require.NoError(t, f.s.ClearTokenSetupKey(f.ctx, partly.ID))
	got, err := f.s.TokensWithStaleSetupKeys(f.ctx, now, now, 10)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{used.ID, multiUsedUp.ID, second.ID}, tokenIDs(got))
}

func testAgents(t *testing.T, f *fixture) {
	mine, theirs := newScope(f), newScope(f)
	_, err := f.s.GetTenantAgent(f.ctx, theirs.tenant.ID, mine.agent.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "another tenant's agent")
	_, err = f.s.GetAgent(f.ctx, store.NewID())
	require.ErrorIs(t, err, store.ErrNotFound)

	expires := base.Add(48 * time.Hour)
	require.NoError(t, f.s.RotateAgentCert(f.ctx, mine.agent.ID, "beef01", expires))
	got, err := f.s.GetAgent(f.ctx, mine.agent.ID)
	require.NoError(t, err)
	require.Equal(t, "beef01", got.CertSerial)
	require.Equal(t, ts(expires), got.CertExpiresAt)
	requireUTC(t, got.CertExpiresAt)
	require.ErrorIs(t, f.s.RotateAgentCert(f.ctx, store.NewID(), "00", expires), store.ErrNotFound)

	other, err := f.s.GetAgent(f.ctx, theirs.agent.ID)
	require.NoError(t, err)
	require.Equal(t, theirs.agent, other, "rotating one agent's cert leaves the others")
}

func testRevokeAgent(t *testing.T, f *fixture) {
	mine, theirs := newScope(f), newScope(f)
	require.NoError(t, f.s.SetAgentOnline(f.ctx, mine.agent.ID, true, "1.0.0", base))

	_, err := f.s.RevokeAgent(f.ctx, theirs.tenant.ID, mine.agent.ID, base)
	require.ErrorIs(t, err, store.ErrNotFound, "another tenant cannot revoke the agent")
	got, err := f.s.GetAgent(f.ctx, mine.agent.ID)
	require.NoError(t, err)
	require.False(t, got.Revoked)

	at := base.Add(time.Minute)
	revoked, err := f.s.RevokeAgent(f.ctx, mine.tenant.ID, mine.agent.ID, at)
	require.NoError(t, err)
	require.True(t, revoked.Revoked)
	require.Equal(t, tsp(at), revoked.RevokedAt)
	require.Equal(t, mine.agent.ID, revoked.ID)
	got, err = f.s.GetAgent(f.ctx, mine.agent.ID)
	require.NoError(t, err)
	require.Equal(t, revoked, got)

	host, err := f.s.GetHost(f.ctx, mine.tenant.ID, mine.host.ID)
	require.NoError(t, err)
	require.False(t, host.Online, "a revoked agent's host is offline")

	require.NoError(t, f.s.SetAgentOnline(f.ctx, mine.agent.ID, true, "1.0.1", at.Add(time.Minute)))
	got, err = f.s.GetAgent(f.ctx, mine.agent.ID)
	require.NoError(t, err)
	require.True(t, got.Revoked, "a session cannot un-revoke an agent")
	require.NotEqual(t, store.AgentOnline, got.Status)
	host, err = f.s.GetHost(f.ctx, mine.tenant.ID, mine.host.ID)
	require.NoError(t, err)
	require.False(t, host.Online)

	_, err = f.s.RevokeAgent(f.ctx, mine.tenant.ID, store.NewID(), at)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testAgentOnline(t *testing.T, f *fixture) {
	sc := newScope(f)
	at := base.Add(time.Minute)
	require.NoError(t, f.s.SetAgentOnline(f.ctx, sc.agent.ID, true, "1.2.3", at))
	agent, err := f.s.GetAgent(f.ctx, sc.agent.ID)
	require.NoError(t, err)
	require.Equal(t, store.AgentOnline, agent.Status)
	require.Equal(t, "1.2.3", agent.Version)
	require.Equal(t, tsp(at), agent.LastSeenAt)
	host, err := f.s.GetHost(f.ctx, sc.tenant.ID, sc.host.ID)
	require.NoError(t, err)
	require.True(t, host.Online)

	require.NoError(t, f.s.SetAgentOnline(f.ctx, sc.agent.ID, false, "", at.Add(time.Minute)))
	agent, err = f.s.GetAgent(f.ctx, sc.agent.ID)
	require.NoError(t, err)
	require.Equal(t, store.AgentOffline, agent.Status)
	host, err = f.s.GetHost(f.ctx, sc.tenant.ID, sc.host.ID)
	require.NoError(t, err)
	require.False(t, host.Online)

	require.ErrorIs(t, f.s.SetAgentOnline(f.ctx, store.NewID(), true, "1.2.3", at), store.ErrNotFound)
}

func testMarkStaleAgentsOffline(t *testing.T, f *fixture) {
	ten := f.tenant()
	site := f.site(ten.ID)
	stale, staleHost := f.enroll(site)
	fresh, freshHost := f.enroll(site)
	gone, _ := f.enroll(site)
	cutoff := base.Add(time.Minute)
	require.NoError(t, f.s.SetAgentOnline(f.ctx, stale.ID, true, "1.0.0", base))
	require.NoError(t, f.s.SetAgentOnline(f.ctx, fresh.ID, true, "1.0.0", base))
	require.NoError(t, f.s.UpsertHostStates(f.ctx, []store.HostState{{HostID: freshHost.ID, AgentID: fresh.ID, LastSeenAt: cutoff.Add(time.Second)}}))
	require.NoError(t, f.s.SetAgentOnline(f.ctx, gone.ID, false, "", base))

	staleVM := f.vm(site, staleHost.ID)
	f.reportVMs(t, staleHost.ID, []store.VMStateReport{{VMID: staleVM.ID, ActualState: store.VMRunning}}, base)
	freshVM := f.vm(site, freshHost.ID)
	f.reportVMs(t, freshHost.ID, []store.VMStateReport{{VMID: freshVM.ID, ActualState: store.VMRunning}}, base)

	changed, err := f.s.MarkStaleAgentsOffline(f.ctx, cutoff)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{stale.ID}, ids(changed, func(a store.Agent) uuid.UUID { return a.ID }))
	require.Equal(t, store.AgentOffline, changed[0].Status)

	agent, err := f.s.GetAgent(f.ctx, stale.ID)
	require.NoError(t, err)
	require.Equal(t, store.AgentOffline, agent.Status)
	host, err := f.s.GetHost(f.ctx, ten.ID, staleHost.ID)
	require.NoError(t, err)
	require.False(t, host.Online)
	vm, err := f.s.GetVM(f.ctx, ten.ID, staleVM.ID)
	require.NoError(t, err, "an offline host's VMs are never deleted")
	require.Equal(t, store.VMUnknown, vm.ActualState)
	require.Equal(t, store.VMRunning, vm.DesiredState)

	agent, err = f.s.GetAgent(f.ctx, fresh.ID)
	require.NoError(t, err)
	require.Equal(t, store.AgentOnline, agent.Status)
	vm, err = f.s.GetVM(f.ctx, ten.ID, freshVM.ID)
	require.NoError(t, err)
	require.Equal(t, store.VMRunning, vm.ActualState)

	changed, err = f.s.MarkStaleAgentsOffline(f.ctx, cutoff)
	require.NoError(t, err)
	require.Empty(t, changed, "agents already offline are not returned again")
}

func testHosts(t *testing.T, f *fixture) {
	mine, theirs := newScope(f), newScope(f)
	otherSite := f.site(mine.tenant.ID)
	_, otherHost := f.enroll(otherSite)

	_, err := f.s.GetHost(f.ctx, theirs.tenant.ID, mine.host.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "another tenant's host")

	tests := []struct {
		name   string
		tenant uuid.UUID
		site   uuid.UUID
		want   []uuid.UUID
	}{
		{"all sites", mine.tenant.ID, uuid.Nil, []uuid.UUID{mine.host.ID, otherHost.ID}},
		{"one site", mine.tenant.ID, otherSite.ID, []uuid.UUID{otherHost.ID}},
		{"another tenant's site", theirs.tenant.ID, mine.site.ID, nil},
	}
	for _, tc := range tests {
		hosts, more, err := f.s.ListHosts(f.ctx, tc.tenant, tc.site, store.Page{Limit: 10})
		require.NoError(t, err, tc.name)
		require.False(t, more, tc.name)
		require.ElementsMatch(t, tc.want, ids(hosts, func(h store.Host) uuid.UUID { return h.ID }), tc.name)
	}
}

func testUpsertHostStates(t *testing.T, f *fixture) {
	sc := newScope(f)
	other := newScope(f)
	require.NoError(t, f.s.UpsertHostStates(f.ctx, nil), "an empty batch")

	t1 := base.Add(time.Minute)
	require.NoError(t, f.s.UpsertHostStates(f.ctx, []store.HostState{
		{HostID: sc.host.ID, AgentID: sc.agent.ID, LastSeenAt: t1,
			Facts:   json.RawMessage(`{ "cpus": 8, "kvm": true }`),
			NetBird: json.RawMessage(`{"ip": "100.64.0.1"}`)},
		{HostID: other.host.ID, AgentID: other.agent.ID, LastSeenAt: t1,
			Facts: json.RawMessage(`{"cpus":2}`)},
	}))
	host, err := f.s.GetHost(f.ctx, sc.tenant.ID, sc.host.ID)
	require.NoError(t, err)
	requireJSON(t, `{"cpus":8,"kvm":true}`, host.Facts)
	requireJSON(t, `{"ip":"100.64.0.1"}`, host.NetBird)
	require.Equal(t, tsp(t1), host.LastSeenAt)

	t2 := t1.Add(15 * time.Second)
	require.NoError(t, f.s.UpsertHostStates(f.ctx, []store.HostState{
		{HostID: sc.host.ID, AgentID: sc.agent.ID, LastSeenAt: t2, NetBird: json.RawMessage(`{"ip":"100.64.0.2"}`)},
	}))
	host, err = f.s.GetHost(f.ctx, sc.tenant.ID, sc.host.ID)
	require.NoError(t, err)
	requireJSON(t, `{"cpus":8,"kvm":true}`, host.Facts, "nil facts keep the old value")
	requireJSON(t, `{"ip":"100.64.0.2"}`, host.NetBird)
	require.Equal(t, tsp(t2), host.LastSeenAt)
	agent, err := f.s.GetAgent(f.ctx, sc.agent.ID)
	require.NoError(t, err)
	require.Equal(t, tsp(t2), agent.LastSeenAt, "a heartbeat is the agent's sign of life")

	theirs, err := f.s.GetHost(f.ctx, other.tenant.ID, other.host.ID)
	require.NoError(t, err)
	requireJSON(t, `{"cpus":2}`, theirs.Facts)
	requireJSON(t, `{}`, theirs.NetBird)
	requireJSON(t, `{}`, theirs.Usage, "no usage reported yet")

	// Usage round-trips, is replaced by each report, is kept when a batch
	// has none, and of two heartbeats of one host in a batch the later wins.
	t3 := t2.Add(15 * time.Second)
	require.NoError(t, f.s.UpsertHostStates(f.ctx, []store.HostState{
		{HostID: sc.host.ID, AgentID: sc.agent.ID, TenantID: sc.tenant.ID, LastSeenAt: t3,
			Usage: json.RawMessage(`{"cpu_percent": 12.5, "memory_used_bytes": 1024}`)},
	}))
	host, err = f.s.GetHost(f.ctx, sc.tenant.ID, sc.host.ID)
	require.NoError(t, err)
	requireJSON(t, `{"cpu_percent":12.5,"memory_used_bytes":1024}`, host.Usage)
	t4 := t3.Add(15 * time.Second)
	require.NoError(t, f.s.UpsertHostStates(f.ctx, []store.HostState{
		{HostID: sc.host.ID, AgentID: sc.agent.ID, LastSeenAt: t4, Usage: json.RawMessage(`{"cpu_percent":50}`)},
		{HostID: sc.host.ID, AgentID: sc.agent.ID, LastSeenAt: t4.Add(time.Second), Usage: json.RawMessage(`{"cpu_percent":75}`)},
	}))
	host, err = f.s.GetHost(f.ctx, sc.tenant.ID, sc.host.ID)
	require.NoError(t, err)
	requireJSON(t, `{"cpu_percent":75}`, host.Usage)
	require.NoError(t, f.s.UpsertHostStates(f.ctx, []store.HostState{
		{HostID: sc.host.ID, AgentID: sc.agent.ID, LastSeenAt: t4.Add(2 * time.Second)},
	}))
	host, err = f.s.GetHost(f.ctx, sc.tenant.ID, sc.host.ID)
	require.NoError(t, err)
	requireJSON(t, `{"cpu_percent":75}`, host.Usage, "nil usage keeps the old value")
	listed, _, err := f.s.ListHosts(f.ctx, sc.tenant.ID, uuid.Nil, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, listed, 1)
	requireHost(t, host, listed[0])
	require.ErrorIs(t, f.s.UpsertHostStates(f.ctx, []store.HostState{
		{HostID: sc.host.ID, AgentID: sc.agent.ID, LastSeenAt: t4, Usage: json.RawMessage(`{"cpu_percent":`)},
	}), store.ErrInvalid, "malformed usage is refused")

	require.NoError(t, f.s.UpsertHostStates(f.ctx, []store.HostState{
		{HostID: other.host.ID, AgentID: sc.agent.ID, LastSeenAt: t2, Facts: json.RawMessage(`{"spoofed":true}`)},
	}))
	theirs, err = f.s.GetHost(f.ctx, other.tenant.ID, other.host.ID)
	require.NoError(t, err)
	requireJSON(t, `{"cpus":2}`, theirs.Facts, "an agent cannot write another agent's host")
}

func testVMs(t *testing.T, f *fixture) {
	mine, theirs := newScope(f), newScope(f)
	vm := f.newVM(mine.site, mine.host.ID)
	vm.Spec = json.RawMessage(`{"kernel": "vmlinux", "cloud_init": {"user_data": "#cloud-config"}}`)
	require.NoError(t, f.s.CreateVM(f.ctx, vm))
	want := vm
	want.CreatedAt, want.UpdatedAt = ts(vm.CreatedAt), ts(vm.UpdatedAt)

	got, err := f.s.GetVM(f.ctx, mine.tenant.ID, vm.ID)
	require.NoError(t, err)
	requireVM(t, want, got)
	_, err = f.s.GetVM(f.ctx, theirs.tenant.ID, vm.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "another tenant's vm")

	dup := f.newVM(mine.site, mine.host.ID)
	dup.Name = vm.Name
	require.ErrorIs(t, f.s.CreateVM(f.ctx, dup), store.ErrConflict, "a live vm holds its name")

	same := f.newVM(theirs.site, theirs.host.ID)
	same.Name = vm.Name
	require.NoError(t, f.s.CreateVM(f.ctx, same), "names are per tenant")

	cross := f.newVM(theirs.site, uuid.Nil)
	cross.TenantID = mine.tenant.ID
	require.ErrorIs(t, f.s.CreateVM(f.ctx, cross), store.ErrNotFound, "a vm in another tenant's site")

	later := base.Add(time.Minute)
	require.NoError(t, f.s.SetVMDesiredState(f.ctx, mine.tenant.ID, vm.ID, store.VMStopped, later))
	got, err = f.s.GetVM(f.ctx, mine.tenant.ID, vm.ID)
	require.NoError(t, err)
	require.Equal(t, store.VMStopped, got.DesiredState)
	require.Equal(t, ts(later), got.UpdatedAt)
	require.ErrorIs(t, f.s.SetVMDesiredState(f.ctx, theirs.tenant.ID, vm.ID, store.VMDeleted, later), store.ErrNotFound)
	got, err = f.s.GetVM(f.ctx, mine.tenant.ID, vm.ID)
	require.NoError(t, err)
	require.Equal(t, store.VMStopped, got.DesiredState, "a refused change changes nothing")

	// Once deleted, the name is free again and the vm is listed only on request.
	require.NoError(t, f.s.SetVMDesiredState(f.ctx, mine.tenant.ID, vm.ID, store.VMDeleted, later))
	f.reportVMs(t, mine.host.ID, []store.VMStateReport{{VMID: vm.ID, ActualState: store.VMDeleted}}, later)
	require.NoError(t, f.s.CreateVM(f.ctx, dup), "a deleted vm frees its name")

	otherSite := f.site(mine.tenant.ID)
	unscheduled := f.vm(otherSite, uuid.Nil)
	got, err = f.s.GetVM(f.ctx, mine.tenant.ID, unscheduled.ID)
	require.NoError(t, err)
	require.Equal(t, uuid.Nil, got.HostID)

	tests := []struct {
		name   string
		tenant uuid.UUID
		filter store.VMFilter
		want   []uuid.UUID
	}{
		{"live", mine.tenant.ID, store.VMFilter{}, []uuid.UUID{dup.ID, unscheduled.ID}},
		{"with deleted", mine.tenant.ID, store.VMFilter{IncludeDeleted: true}, []uuid.UUID{vm.ID, dup.ID, unscheduled.ID}},
		{"by site", mine.tenant.ID, store.VMFilter{SiteID: otherSite.ID}, []uuid.UUID{unscheduled.ID}},
		{"by host", mine.tenant.ID, store.VMFilter{HostID: mine.host.ID, IncludeDeleted: true}, []uuid.UUID{vm.ID, dup.ID}},
		{"another tenant", theirs.tenant.ID, store.VMFilter{IncludeDeleted: true}, []uuid.UUID{same.ID}},
		{"another tenant's site", theirs.tenant.ID, store.VMFilter{SiteID: mine.site.ID}, nil},
	}
	for _, tc := range tests {
		vms, more, err := f.s.ListVMs(f.ctx, tc.tenant, tc.filter, store.Page{Limit: 10})
		require.NoError(t, err, tc.name)
		require.False(t, more, tc.name)
		require.Equal(t, tc.want, nilIfEmpty(ids(vms, func(v store.VM) uuid.UUID { return v.ID })), tc.name)
	}
}

func nilIfEmpty(s []uuid.UUID) []uuid.UUID {
	if len(s) == 0 {
		return nil
	}
	return s
}

func testVMStates(t *testing.T, f *fixture) {
	sc := newScope(f)
	_, otherHost := f.enroll(sc.site)
	mineVM := f.vm(sc.site, sc.host.ID)
	otherVM := f.vm(sc.site, otherHost.ID)
	at := base.Add(time.Minute)

	require.Empty(t, f.reportVMs(t, sc.host.ID, nil, at), "an empty report")
	changed := f.reportVMs(t, sc.host.ID, []store.VMStateReport{
		{VMID: mineVM.ID, ActualState: store.VMFailed, Error: "kernel panic"},
		{VMID: otherVM.ID, ActualState: store.VMStopped},
		{VMID: store.NewID(), ActualState: store.VMRunning},
	}, at)
	require.Len(t, changed, 1, "only the vm on the reporting host changed")

	got, err := f.s.GetVM(f.ctx, sc.tenant.ID, mineVM.ID)
	require.NoError(t, err)
	require.Equal(t, store.VMFailed, got.ActualState)
	require.Equal(t, store.VMRunning, got.DesiredState, "actual and desired are kept apart")
	require.Equal(t, "kernel panic", got.Error)
	require.Equal(t, ts(at), got.UpdatedAt)

	requireVM(t, got, changed[0])

	got, err = f.s.GetVM(f.ctx, sc.tenant.ID, otherVM.ID)
	require.NoError(t, err)
	require.Equal(t, otherVM.ActualState, got.ActualState, "a report for a vm on another host is ignored")

	// Only real changes are returned (and written): the event stream
	// publishes exactly these.
	second := f.vm(sc.site, sc.host.ID)
	deleted := f.vm(sc.site, sc.host.ID)
	f.reportVMs(t, sc.host.ID, []store.VMStateReport{{VMID: deleted.ID, ActualState: store.VMDeleted}}, at)
	later := at.Add(time.Minute)
	tests := []struct {
		name    string
		reports []store.VMStateReport
		want    map[uuid.UUID]store.VMStateReport // changed vm -> state it ends in
	}{
		{"a repeated report changes nothing", []store.VMStateReport{
			{VMID: mineVM.ID, ActualState: store.VMFailed, Error: "kernel panic"},
		}, nil},
		{"a new error alone is a change", []store.VMStateReport{
			{VMID: mineVM.ID, ActualState: store.VMFailed, Error: "oom"},
		}, map[uuid.UUID]store.VMStateReport{mineVM.ID: {ActualState: store.VMFailed, Error: "oom"}}},
		{"the last report of a vm wins and is returned once", []store.VMStateReport{
			{VMID: second.ID, ActualState: store.VMCreating},
			{VMID: mineVM.ID, ActualState: store.VMFailed, Error: "oom"},
			{VMID: second.ID, ActualState: store.VMRunning},
		}, map[uuid.UUID]store.VMStateReport{second.ID: {ActualState: store.VMRunning}}},
		{"a deleted vm stays deleted and is not returned", []store.VMStateReport{
			{VMID: deleted.ID, ActualState: store.VMRunning},
			{VMID: otherVM.ID, ActualState: store.VMRunning},
		}, nil},
	}
	for _, tc := range tests {
		changed := f.reportVMs(t, sc.host.ID, tc.reports, later)
		require.Len(t, changed, len(tc.want), tc.name)
		for _, vm := range changed {
			want, ok := tc.want[vm.ID]
			require.True(t, ok, "%s: unexpected vm %s", tc.name, vm.ID)
			require.Equal(t, want.ActualState, vm.ActualState, tc.name)
			require.Equal(t, want.Error, vm.Error, tc.name)
			require.Equal(t, ts(later), vm.UpdatedAt, tc.name)
			require.Equal(t, sc.tenant.ID, vm.TenantID, tc.name)
			stored, err := f.s.GetVM(f.ctx, sc.tenant.ID, vm.ID)
			require.NoError(t, err, tc.name)
			requireVM(t, stored, vm)
		}
	}
	got, err = f.s.GetVM(f.ctx, sc.tenant.ID, deleted.ID)
	require.NoError(t, err)
	require.Equal(t, store.VMDeleted, got.ActualState)
}

func testCountVMsByHost(t *testing.T, f *fixture) {
	sc, theirs := newScope(f), newScope(f)
	_, second := f.enroll(sc.site)
	_, idle := f.enroll(sc.site)
	f.vm(sc.site, sc.host.ID)
	f.vm(sc.site, sc.host.ID)
	f.vm(sc.site, second.ID)
	deleted := f.vm(sc.site, second.ID)
	f.reportVMs(t, second.ID, []store.VMStateReport{{VMID: deleted.ID, ActualState: store.VMDeleted}}, base)

	counts, err := f.s.CountVMsByHost(f.ctx, sc.tenant.ID, sc.site.ID)
	require.NoError(t, err)
	require.Equal(t, 2, counts[sc.host.ID])
	require.Equal(t, 1, counts[second.ID], "deleted vms do not count")
	require.Zero(t, counts[idle.ID])
	for host := range counts {
		require.Contains(t, []uuid.UUID{sc.host.ID, second.ID, idle.ID}, host)
	}

	counts, err = f.s.CountVMsByHost(f.ctx, theirs.tenant.ID, sc.site.ID)
	require.NoError(t, err)
	require.Empty(t, counts, "another tenant's site counts nothing")
}

func testPlans(t *testing.T, f *fixture) {
	mine, theirs := newScope(f), newScope(f)
	vm1, vm2 := f.vm(mine.site, mine.host.ID), f.vm(mine.site, mine.host.ID)
	p := f.plan(mine.agent, vm1.ID, vm2.ID)
	want := normalisePlan(p)

	got, err := f.s.GetPlan(f.ctx, mine.tenant.ID, p.ID)
	require.NoError(t, err)
	requirePlan(t, want, got)
	_, err = f.s.GetPlan(f.ctx, theirs.tenant.ID, p.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "another tenant's plan")

	for i, a := range p.Actions {
		exec, err := f.s.GetExecution(f.ctx, mine.tenant.ID, a.ExecutionID)
		require.NoError(t, err)
		require.Equal(t, store.Execution{
			ID: a.ExecutionID, TenantID: mine.tenant.ID, PlanID: p.ID, ActionID: a.ID,
			Status: store.StatusPending, CreatedAt: ts(p.CreatedAt),
		}, exec, "execution of action %d", i)
		_, err = f.s.GetExecution(f.ctx, theirs.tenant.ID, a.ExecutionID)
		require.ErrorIs(t, err, store.ErrNotFound, "another tenant's execution")
		agent, err := f.s.ExecutionAgent(f.ctx, a.ExecutionID)
		require.NoError(t, err)
		require.Equal(t, mine.agent.ID, agent)
	}
	_, err = f.s.ExecutionAgent(f.ctx, store.NewID())
	require.ErrorIs(t, err, store.ErrNotFound)

	dup := f.newPlan(mine.agent, base)
	dup.ID = p.ID
	require.ErrorIs(t, f.s.CreatePlan(f.ctx, dup), store.ErrConflict, "a plan id is unique")
	half := f.newPlan(mine.agent, base)
	half.Actions[0].ExecutionID = p.Actions[0].ExecutionID
	require.Error(t, f.s.CreatePlan(f.ctx, half))
	_, err = f.s.GetPlan(f.ctx, mine.tenant.ID, half.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "a failed CreatePlan leaves nothing behind")

	cross := f.newPlan(mine.agent, base)
	cross.Actions[0].VMID = f.vm(theirs.site, theirs.host.ID).ID
	require.ErrorIs(t, f.s.CreatePlan(f.ctx, cross), store.ErrNotFound, "a plan acting on another tenant's vm")

	otherSite := f.site(mine.tenant.ID)
	otherAgent, _ := f.enroll(otherSite)
	q := f.plan(otherAgent)
	_, err = f.s.MarkPlanDispatched(f.ctx, otherAgent.ID, q.ID, base)
	require.NoError(t, err)
	tests := []struct {
		name   string
		tenant uuid.UUID
		filter store.PlanFilter
		want   []uuid.UUID
	}{
		{"all", mine.tenant.ID, store.PlanFilter{}, []uuid.UUID{p.ID, q.ID}},
		{"by site", mine.tenant.ID, store.PlanFilter{SiteID: otherSite.ID}, []uuid.UUID{q.ID}},
		{"by status", mine.tenant.ID, store.PlanFilter{Status: store.StatusPending}, []uuid.UUID{p.ID}},
		{"no match", mine.tenant.ID, store.PlanFilter{SiteID: mine.site.ID, Status: store.StatusDispatched}, nil},
		{"another tenant", theirs.tenant.ID, store.PlanFilter{}, nil},
	}
	for _, tc := range tests {
		plans, more, err := f.s.ListPlans(f.ctx, tc.tenant, tc.filter, store.Page{Limit: 10})
		require.NoError(t, err, tc.name)
		require.False(t, more, tc.name)
		require.Equal(t, tc.want, nilIfEmpty(ids(plans, func(p store.Plan) uuid.UUID { return p.ID })), tc.name)
		for _, got := range plans {
			if got.ID == p.ID {
				requirePlan(t, want, got)
			}
		}
	}
}

func testPlanDispatch(t *testing.T, f *fixture) {
	sc := newScope(f)
	other := newScope(f)
	sibling, _ := f.enroll(sc.site) // another agent of the same tenant and site
	older := f.newPlan(sc.agent, base)
	require.NoError(t, f.s.CreatePlan(f.ctx, older))
	newer := f.newPlan(sc.agent, base.Add(time.Second))
	require.NoError(t, f.s.CreatePlan(f.ctx, newer))
	theirs := f.plan(other.agent)

	pending, err := f.s.PendingPlans(f.ctx, sc.agent.ID)
	require.NoError(t, err)
	require.Len(t, pending, 2)
	requirePlan(t, normalisePlan(older), pending[0])
	requirePlan(t, normalisePlan(newer), pending[1])
	requirePendingPlansOf(t, f, sc.agent.ID, other.agent.ID, sibling.ID, store.NewID())

	at := base.Add(time.Minute)
	dispatched := normalisePlan(older)
	dispatched.Status, dispatched.UpdatedAt = store.StatusDispatched, ts(at)
	for i := range dispatched.Actions {
		dispatched.Actions[i].Status, dispatched.Actions[i].UpdatedAt = store.StatusDispatched, ts(at)
	}
	got, err := f.s.MarkPlanDispatched(f.ctx, sc.agent.ID, older.ID, at)
	require.NoError(t, err)
	requirePlan(t, dispatched, got)
	stored, err := f.s.GetPlan(f.ctx, sc.tenant.ID, older.ID)
	require.NoError(t, err)
	requirePlan(t, got, stored)
	requireExecutions(t, f, stored, store.StatusDispatched)
	pending, err = f.s.PendingPlans(f.ctx, sc.agent.ID)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{older.ID, newer.ID}, ids(pending, func(p store.Plan) uuid.UUID { return p.ID }),
		"a dispatched plan stays pending until its results arrive")

	tests := []struct {
		name    string
		agentID uuid.UUID
		plan    store.Plan // as stored before the call, and after it
		unknown bool       // the plan does not exist
		wantErr error
	}{
		{name: "repeat returns the plan unchanged", agentID: sc.agent.ID, plan: dispatched},
		{name: "another agent's pending plan", agentID: sibling.ID, plan: normalisePlan(newer), wantErr: store.ErrNotFound},
		{name: "another agent's dispatched plan", agentID: sibling.ID, plan: dispatched, wantErr: store.ErrNotFound},
		{name: "another tenant's plan", agentID: sc.agent.ID, plan: normalisePlan(theirs), wantErr: store.ErrNotFound},
		{name: "unknown agent", agentID: store.NewID(), plan: normalisePlan(newer), wantErr: store.ErrNotFound},
		{name: "unknown plan", agentID: sc.agent.ID, plan: store.Plan{ID: store.NewID()}, unknown: true, wantErr: store.ErrNotFound},
	}
	// The cases share the fixture's plans and none of them may change
	// one, so they run in order, each checking what is stored after it.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.s.MarkPlanDispatched(f.ctx, tc.agentID, tc.plan.ID, at.Add(time.Hour))
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
				requirePlan(t, tc.plan, got)
			}
			if tc.unknown {
				return
			}
			stored, err := f.s.GetPlan(f.ctx, tc.plan.TenantID, tc.plan.ID)
			require.NoError(t, err)
			requirePlan(t, tc.plan, stored)
			requireExecutions(t, f, stored, tc.plan.Status)
		})
	}

	none, err := f.s.PendingPlans(f.ctx, store.NewID())
	require.NoError(t, err)
	require.Empty(t, none)
	requirePendingPlansOf(t, f, sc.agent.ID, other.agent.ID, sibling.ID)
	requirePendingPlansOf(t, f)
}

// requirePendingPlansOf checks that the batched read answers what
// PendingPlans answers for each agent, agents with none left out.
func requirePendingPlansOf(t *testing.T, f *fixture, agentIDs ...uuid.UUID) {
	t.Helper()
	got, err := f.s.PendingPlansOf(f.ctx, agentIDs)
	require.NoError(t, err)
	want := map[uuid.UUID][]store.Plan{}
	for _, id := range agentIDs {
		plans, err := f.s.PendingPlans(f.ctx, id)
		require.NoError(t, err)
		if len(plans) > 0 {
			want[id] = plans
		}
	}
	require.Len(t, got, len(want), "agents with pending plans")
	for id, plans := range want {
		require.Len(t, got[id], len(plans), "agent %s", id)
		for i := range plans {
			requirePlan(t, plans[i], got[id][i])
		}
	}
}

// requireExecutions checks that every action's execution has status.
func requireExecutions(t *testing.T, f *fixture, p store.Plan, status string) {
	t.Helper()
	for i, a := range p.Actions {
		exec, err := f.s.GetExecution(f.ctx, p.TenantID, a.ExecutionID)
		require.NoError(t, err)
		require.Equal(t, status, exec.Status, "execution of action %d", i)
	}
}

func testApplyActionResult(t *testing.T, f *fixture) {
	sc, other := newScope(f), newScope(f)
	vm := f.vm(sc.site, sc.host.ID)
	p := f.plan(sc.agent, vm.ID, uuid.Nil)
	_, err := f.s.MarkPlanDispatched(f.ctx, sc.agent.ID, p.ID, base)
	require.NoError(t, err)
	first, second := p.Actions[0], p.Actions[1]
	t1, t2, t3 := base.Add(time.Second), base.Add(2*time.Second), base.Add(3*time.Second)

	_, err = f.s.ApplyActionResult(f.ctx, other.agent.ID, store.ActionResult{ActionID: first.ID, Status: store.StatusSucceeded, At: t1})
	require.ErrorIs(t, err, store.ErrNotFound, "another agent's action")
	_, err = f.s.ApplyActionResult(f.ctx, sc.agent.ID, store.ActionResult{ActionID: store.NewID(), Status: store.StatusSucceeded, At: t1})
	require.ErrorIs(t, err, store.ErrNotFound, "an unknown action")
	got, err := f.s.GetPlan(f.ctx, sc.tenant.ID, p.ID)
	require.NoError(t, err)
	require.Equal(t, store.StatusDispatched, got.Status, "a refused result changes nothing")

	got, err = f.s.ApplyActionResult(f.ctx, sc.agent.ID, store.ActionResult{ActionID: first.ID, Status: store.StatusRunning, At: t1})
	require.NoError(t, err)
	require.Equal(t, store.StatusRunning, got.Status)
	require.Equal(t, store.StatusRunning, got.Actions[0].Status)
	exec, err := f.s.GetExecution(f.ctx, sc.tenant.ID, first.ExecutionID)
	require.NoError(t, err)
	require.Equal(t, store.StatusRunning, exec.Status)
	require.Equal(t, tsp(t1), exec.StartedAt)
	require.Nil(t, exec.FinishedAt)

	got, err = f.s.ApplyActionResult(f.ctx, sc.agent.ID, store.ActionResult{ActionID: first.ID, Status: store.StatusSucceeded, VMState: store.VMRunning, At: t2})
	require.NoError(t, err)
	require.Equal(t, store.StatusRunning, got.Status, "one of two actions done")
	require.Equal(t, store.StatusSucceeded, got.Actions[0].Status)
	require.Equal(t, ts(t2), got.Actions[0].UpdatedAt)
	exec, err = f.s.GetExecution(f.ctx, sc.tenant.ID, first.ExecutionID)
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, exec.Status)
	require.Equal(t, tsp(t1), exec.StartedAt)
	require.Equal(t, tsp(t2), exec.FinishedAt)
	gotVM, err := f.s.GetVM(f.ctx, sc.tenant.ID, vm.ID)
	require.NoError(t, err)
	require.Equal(t, store.VMRunning, gotVM.ActualState, "the result carries the vm's actual state")

	got, err = f.s.ApplyActionResult(f.ctx, sc.agent.ID, store.ActionResult{ActionID: first.ID, Status: store.StatusFailed, Error: "late duplicate", At: t3})
	require.NoError(t, err, "a repeated result for a terminal action is ignored, not refused")
	require.Equal(t, store.StatusSucceeded, got.Actions[0].Status)
	require.Empty(t, got.Actions[0].Error)

	got, err = f.s.ApplyActionResult(f.ctx, sc.agent.ID, store.ActionResult{ActionID: second.ID, Status: store.StatusSucceeded, At: t3})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, got.Status, "all actions succeeded")
	stored, err := f.s.GetPlan(f.ctx, sc.tenant.ID, p.ID)
	require.NoError(t, err)
	requirePlan(t, got, stored)
	pending, err := f.s.PendingPlans(f.ctx, sc.agent.ID)
	require.NoError(t, err)
	require.Empty(t, pending, "a finished plan is not pending")
	requirePendingPlansOf(t, f, sc.agent.ID)
}

func testPlanFailure(t *testing.T, f *fixture) {
	sc := newScope(f)
	vm := f.vm(sc.site, sc.host.ID)
	p := f.plan(sc.agent, vm.ID, vm.ID)
	_, err := f.s.MarkPlanDispatched(f.ctx, sc.agent.ID, p.ID, base)
	require.NoError(t, err)
	at := base.Add(time.Second)

	got, err := f.s.ApplyActionResult(f.ctx, sc.agent.ID, store.ActionResult{
		ActionID: p.Actions[0].ID, Status: store.StatusFailed, Error: "no such kernel", VMState: store.VMFailed, At: at,
	})
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, got.Status, "one failed action fails the plan")
	require.Equal(t, store.StatusFailed, got.Actions[0].Status)
	require.Equal(t, "no such kernel", got.Actions[0].Error)

	exec, err := f.s.GetExecution(f.ctx, sc.tenant.ID, p.Actions[0].ExecutionID)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, exec.Status)
	require.Equal(t, "no such kernel", exec.Error)
	require.Equal(t, tsp(at), exec.FinishedAt)

	gotVM, err := f.s.GetVM(f.ctx, sc.tenant.ID, vm.ID)
	require.NoError(t, err)
	require.Equal(t, store.VMFailed, gotVM.ActualState)

	pending, err := f.s.PendingPlans(f.ctx, sc.agent.ID)
	require.NoError(t, err)
	require.Empty(t, pending, "a failed plan is terminal")
	requirePendingPlansOf(t, f, sc.agent.ID)
	failed, _, err := f.s.ListPlans(f.ctx, sc.tenant.ID, store.PlanFilter{Status: store.StatusFailed}, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, failed, 1)
}

func testLogLines(t *testing.T, f *fixture) {
	sc, other := newScope(f), newScope(f)
	p := f.plan(sc.agent)
	exec := p.Actions[0].ExecutionID
	line := func(seq int64) store.LogLine {
		return store.LogLine{ExecutionID: exec, Seq: seq, At: base.Add(time.Duration(seq) * time.Millisecond), Stream: "stdout", Message: "line " + string(rune('a'+seq))}
	}
	batch := func(from, to int64) []store.LogLine {
		var out []store.LogLine
		for s := from; s <= to; s++ {
			out = append(out, line(s))
		}
		return out
	}
	require.NoError(t, f.s.AppendLogLines(f.ctx, nil), "an empty batch")
	require.NoError(t, f.s.AppendLogLines(f.ctx, batch(1, 5)))
	retry := batch(3, 7)
	retry[0].Message = "a retry never overwrites"
	require.NoError(t, f.s.AppendLogLines(f.ctx, retry), "a retried, overlapping batch")

	all, err := f.s.ListLogLines(f.ctx, sc.tenant.ID, exec, 0, 100)
	require.NoError(t, err)
	want := batch(1, 7)
	for i := range want {
		want[i].At = ts(want[i].At)
	}
	require.Equal(t, want, all, "every line once, in order")

	tests := []struct {
		name     string
		afterSeq int64
		limit    int
		want     []int64
	}{
		{"after 2, three lines", 2, 3, []int64{3, 4, 5}},
		{"the tail", 5, 100, []int64{6, 7}},
		{"past the end", 7, 100, nil},
	}
	for _, tc := range tests {
		got, err := f.s.ListLogLines(f.ctx, sc.tenant.ID, exec, tc.afterSeq, tc.limit)
		require.NoError(t, err, tc.name)
		var seqs []int64
		for _, l := range got {
			seqs = append(seqs, l.Seq)
		}
		require.Equal(t, tc.want, seqs, tc.name)
	}

	_, err = f.s.ListLogLines(f.ctx, other.tenant.ID, exec, 0, 100)
	require.ErrorIs(t, err, store.ErrNotFound, "another tenant's execution")
	empty, err := f.s.ListLogLines(f.ctx, sc.tenant.ID, f.plan(sc.agent).Actions[0].ExecutionID, 0, 100)
	require.NoError(t, err)
	require.Empty(t, empty, "an execution without output")
}

func testAudit(t *testing.T, f *fixture) {
	ten, other := f.tenant(), f.tenant()
	events := []store.AuditEvent{
		{ID: store.NewID(), TenantID: ten.ID, Actor: "key:1", Action: "site.create", Target: store.NewID().String(), Result: "ok", RequestID: "req-1", At: base},
		{ID: store.NewID(), TenantID: uuid.Nil, Actor: "admin", Action: "tenant.create", Target: ten.ID.String(), Result: "ok", RequestID: "req-2", At: base},
		{ID: store.NewID(), TenantID: ten.ID, Actor: "agent:2", Action: "vm.delete", Target: "x", Result: "not_found", RequestID: "req-3", At: base.Add(time.Second)},
	}
	for _, e := range events {
		require.NoError(t, f.s.AppendAudit(f.ctx, e))
	}
	for i := range events {
		events[i].At = ts(events[i].At)
	}
	got, more, err := f.s.ListAudit(f.ctx, ten.ID, store.Page{Limit: 10})
	require.NoError(t, err)
	require.False(t, more)
	require.Equal(t, []store.AuditEvent{events[0], events[2]}, got)

	admin, _, err := f.s.ListAudit(f.ctx, uuid.Nil, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []store.AuditEvent{events[1]}, admin, "uuid.Nil lists the admin scope")

	none, _, err := f.s.ListAudit(f.ctx, other.ID, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, none)

	require.ErrorIs(t, f.s.AppendAudit(f.ctx, events[0]), store.ErrConflict, "an event id is unique")
}

// testTokenSetupKeySealed: the sealed NetBird setup key is opaque bytes
// that round-trip exactly (binary included), an absent one reads as nil,
// and ClearTokenSetupKey forgets it together with the key id.
func testTokenSetupKeySealed(t *testing.T, f *fixture) {
	ten := f.tenant()
	site := f.site(ten.ID)
	sealed := []byte{0x01, 0x00, 0xfe, 'k', 0xff}
	mk := func(sealed []byte, keyID string, expires time.Time) store.EnrollmentToken {
		tok := store.EnrollmentToken{
			ID: store.NewID(), TenantID: ten.ID, SiteID: site.ID, Hash: hash(store.NewID().String()),
			ExpiresAt: expires, MaxUses: 1, CreatedAt: base, NetBirdSetupKeyID: keyID, NetBirdSetupKeySealed: sealed,
		}
		require.NoError(t, f.s.CreateEnrollmentToken(f.ctx, tok))
		return tok
	}
	for name, want := range map[string][]byte{"sealed": sealed, "none": nil, "empty": {}} {
		tok := mk(want, "", base.Add(time.Hour))
		_, _, got, err := f.s.ConsumeEnrollment(f.ctx, f.enrollment(tok))
		require.NoError(t, err, name)
		if len(want) == 0 {
			require.Nil(t, got.NetBirdSetupKeySealed, name)
			continue
		}
		require.Equal(t, want, got.NetBirdSetupKeySealed, name)
	}

	expired := mk(sealed, "sk-sealed", base.Add(time.Minute))
	now := base.Add(time.Hour)
	got, err := f.s.TokensWithStaleSetupKeys(f.ctx, now, now, 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, sealed, got[0].NetBirdSetupKeySealed)
	require.NoError(t, f.s.ClearTokenSetupKey(f.ctx, expired.ID))
	got, err = f.s.TokensWithStaleSetupKeys(f.ctx, now, now, 10)
	require.NoError(t, err)
	require.Empty(t, got)
}
