package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
)

// base is the suite's clock: not UTC and with nanoseconds, so every test
// also checks that times come back in UTC truncated to microseconds.
var base = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600))

// ts is what the store must return for a time it was given.
func ts(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func tsp(t time.Time) *time.Time {
	v := ts(t)
	return &v
}

// fixture creates the objects tests need, failing the test on any error.
type fixture struct {
	t   testing.TB
	s   store.Store
	ctx context.Context
	n   int // makes names and secrets unique
}

func newFixture(t testing.TB, s store.Store) *fixture {
	return &fixture{t: t, s: s, ctx: t.Context()}
}

func (f *fixture) seq() int {
	f.n++
	return f.n
}

func (f *fixture) tenant() store.Tenant {
	f.t.Helper()
	t := store.Tenant{ID: store.NewID(), Name: fmt.Sprintf("tenant-%d", f.seq()), CreatedAt: base}
	require.NoError(f.t, f.s.CreateTenant(f.ctx, t))
	return t
}

func (f *fixture) apiKey(tenantID uuid.UUID) store.APIKey {
	f.t.Helper()
	n := f.seq()
	k := store.APIKey{
		ID:        store.NewID(),
		TenantID:  tenantID,
		Name:      fmt.Sprintf("key-%d", n),
		Role:      store.RoleOperator,
		Prefix:    fmt.Sprintf("nk_%04d", n),
		Hash:      hash(fmt.Sprintf("key-secret-%d", n)),
		CreatedAt: base,
	}
	require.NoError(f.t, f.s.CreateAPIKey(f.ctx, k))
	return k
}

func (f *fixture) site(tenantID uuid.UUID) store.Site {
	f.t.Helper()
	s := store.Site{
		ID:             store.NewID(),
		TenantID:       tenantID,
		Name:           fmt.Sprintf("site-%d", f.seq()),
		Description:    "rack 4",
		NetBirdEnabled: true,
		NetBirdGroups:  []string{"edge", "lab"},
		CreatedAt:      base,
		UpdatedAt:      base,
	}
	require.NoError(f.t, f.s.CreateSite(f.ctx, s))
	return s
}

// token creates an enrollment token and returns it with its hash.
func (f *fixture) token(site store.Site, maxUses int, expiresAt time.Time) store.EnrollmentToken {
	f.t.Helper()
	tok := store.EnrollmentToken{
		ID:        store.NewID(),
		TenantID:  site.TenantID,
		SiteID:    site.ID,
		Hash:      hash(fmt.Sprintf("token-secret-%d", f.seq())),
		ExpiresAt: expiresAt,
		MaxUses:   maxUses,
		CreatedAt: base,
		// Set so round trips cover it; the suite never talks to NetBird.
		NetBirdSetupKeyID:     fmt.Sprintf("setup-key-%d", f.n),
		NetBirdSetupKeySealed: []byte(fmt.Sprintf("sealed-%d\x00\xff", f.n)),
	}
	require.NoError(f.t, f.s.CreateEnrollmentToken(f.ctx, tok))
	return tok
}

func (f *fixture) enrollment(tok store.EnrollmentToken) store.Enrollment {
	n := f.seq()
	return store.Enrollment{
		TokenHash:     tok.Hash,
		AgentID:       store.NewID(),
		HostID:        store.NewID(),
		Hostname:      fmt.Sprintf("edge-%d", n),
		CertSerial:    fmt.Sprintf("%x", n),
		CertExpiresAt: base.Add(24 * time.Hour),
		Now:           base,
	}
}

// enroll creates an agent and its host in site.
func (f *fixture) enroll(site store.Site) (store.Agent, store.Host) {
	f.t.Helper()
	tok := f.token(site, 1, base.Add(time.Hour))
	a, h, _, err := f.s.ConsumeEnrollment(f.ctx, f.enrollment(tok))
	require.NoError(f.t, err)
	return a, h
}

func (f *fixture) newVM(site store.Site, hostID uuid.UUID) store.VM {
	return store.VM{
		ID:           store.NewID(),
		TenantID:     site.TenantID,
		SiteID:       site.ID,
		HostID:       hostID,
		Name:         fmt.Sprintf("vm-%d", f.seq()),
		DesiredState: store.VMRunning,
		ActualState:  store.VMCreating,
		VCPUs:        2,
		MemoryMiB:    512,
		Spec:         json.RawMessage(`{"disk_image":"ubuntu.raw","kernel":"vmlinux"}`),
		CreatedAt:    base,
		UpdatedAt:    base,
	}
}

func (f *fixture) vm(site store.Site, hostID uuid.UUID) store.VM {
	f.t.Helper()
	vm := f.newVM(site, hostID)
	require.NoError(f.t, f.s.CreateVM(f.ctx, vm))
	return vm
}

// newPlan builds a plan for agent with one action per VM (or one action
// targeting no VM when vms is empty).
func (f *fixture) newPlan(agent store.Agent, created time.Time, vms ...uuid.UUID) store.Plan {
	p := store.Plan{
		ID:        store.NewID(),
		TenantID:  agent.TenantID,
		SiteID:    agent.SiteID,
		HostID:    agent.HostID,
		AgentID:   agent.ID,
		Status:    store.StatusPending,
		CreatedAt: created,
		UpdatedAt: created,
	}
	if len(vms) == 0 {
		vms = []uuid.UUID{uuid.Nil}
	}
	for i, vm := range vms {
		p.Actions = append(p.Actions, store.PlanAction{
			ID:          store.NewID(),
			PlanID:      p.ID,
			Seq:         i,
			Type:        store.ActionMicroVMStart,
			VMID:        vm,
			Params:      json.RawMessage(fmt.Sprintf(`{"step":%d}`, i)),
			Status:      store.StatusPending,
			ExecutionID: store.NewID(),
			UpdatedAt:   created,
		})
	}
	return p
}

func (f *fixture) plan(agent store.Agent, vms ...uuid.UUID) store.Plan {
	f.t.Helper()
	p := f.newPlan(agent, base, vms...)
	require.NoError(f.t, f.s.CreatePlan(f.ctx, p))
	return p
}

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// requireJSON checks that got is compact JSON equal to want.
func requireJSON(t testing.TB, want string, got json.RawMessage, msgAndArgs ...any) {
	t.Helper()
	require.JSONEq(t, want, string(got), msgAndArgs...)
	var buf bytes.Buffer
	require.NoError(t, json.Compact(&buf, got))
	require.Equal(t, buf.String(), string(got), "JSON must come back compact")
}

// requireUTC checks that a returned time is in UTC.
func requireUTC(t testing.TB, got time.Time) {
	t.Helper()
	require.Equal(t, time.UTC, got.Location(), "times must come back in UTC")
}

// Comparisons of whole objects: JSON columns are compared as JSON (engines
// may order keys differently) and nil and empty slices are the same.

func requireHost(t testing.TB, want, got store.Host) {
	t.Helper()
	requireJSON(t, string(orEmptyObject(want.Facts)), got.Facts)
	requireJSON(t, string(orEmptyObject(want.NetBird)), got.NetBird)
	requireJSON(t, string(orEmptyObject(want.Usage)), got.Usage)
	want.Facts, want.NetBird, got.Facts, got.NetBird = nil, nil, nil, nil
	want.Usage, got.Usage = nil, nil
	require.Equal(t, want, got)
}

func requireVM(t testing.TB, want, got store.VM) {
	t.Helper()
	requireJSON(t, string(orEmptyObject(want.Spec)), got.Spec)
	want.Spec, got.Spec = nil, nil
	require.Equal(t, want, got)
}

func requireSite(t testing.TB, want, got store.Site) {
	t.Helper()
	if len(want.NetBirdGroups) == 0 {
		want.NetBirdGroups = nil
	}
	if len(got.NetBirdGroups) == 0 {
		got.NetBirdGroups = nil
	}
	require.Equal(t, want, got)
}

func requirePlan(t testing.TB, want, got store.Plan) {
	t.Helper()
	require.Len(t, got.Actions, len(want.Actions))
	for i := range want.Actions {
		wa, ga := want.Actions[i], got.Actions[i]
		requireJSON(t, string(orEmptyObject(wa.Params)), ga.Params)
		wa.Params, ga.Params = nil, nil
		require.Equal(t, wa, ga, "action %d", i)
	}
	want.Actions, got.Actions = nil, nil
	require.Equal(t, want, got)
}

func orEmptyObject(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("{}")
	}
	return raw
}

// normalisePlan is what the store returns for a plan it was given.
func normalisePlan(p store.Plan) store.Plan {
	p.CreatedAt, p.UpdatedAt = ts(p.CreatedAt), ts(p.UpdatedAt)
	actions := make([]store.PlanAction, len(p.Actions))
	for i, a := range p.Actions {
		a.UpdatedAt = ts(a.UpdatedAt)
		actions[i] = a
	}
	p.Actions = actions
	return p
}

// reportVMs records VM states and returns the VMs the store says changed.
func (f *fixture) reportVMs(t testing.TB, hostID uuid.UUID, reports []store.VMStateReport, at time.Time) []store.VM {
	t.Helper()
	changed, err := f.s.ReportVMStates(f.ctx, hostID, reports, at)
	require.NoError(t, err)
	return changed
}
