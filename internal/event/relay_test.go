package event

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/notify"
	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
)

// replica is one server's broker, decorated store and relay.
type replica struct {
	b     *Broker
	st    *Store
	relay *Relay
}

// twoReplicas builds two replicas sharing one SQLite store and one
// in-process bus, which stands for PostgreSQL NOTIFY here.
func twoReplicas(t *testing.T) (a, b replica, raw store.Store, tenant uuid.UUID) {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "nkudo.db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	tenant = store.NewID()
	require.NoError(t, db.CreateTenant(t.Context(), store.Tenant{ID: tenant, Name: "t", CreatedAt: clock}))
	bus := notify.NewLocal(notify.LocalOptions{})
	mk := func() replica {
		br := NewBroker(Options{})
		r, err := NewRelay(br, db, bus, nil)
		require.NoError(t, err)
		return replica{b: br, st: NewStore(db, br, nil), relay: r}
	}
	a, b = mk(), mk()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 3)
	go func() { done <- bus.Run(ctx) }()
	go func() { done <- a.relay.Run(ctx) }()
	go func() { done <- b.relay.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 3 {
			require.NoError(t, <-done)
		}
	})
	return a, b, db, tenant
}

func TestRelayCarriesEventsToOtherReplicas(t *testing.T) {
	t.Parallel()
	a, b, _, tenant := twoReplicas(t)
	onA, _, _ := a.b.Subscribe(tenant, 0)
	defer onA.Close()
	onB, _, _ := b.b.Subscribe(tenant, 0)
	defer onB.Close()

	// Each step waits until both replicas have the events of the one
	// before: the relay re-reads objects, so a site deleted before its
	// creation is relayed is (rightly) never announced as updated on the
	// other replica; TestRelayDropsUpdateOfObjectGone covers that.
	site := store.Site{ID: store.NewID(), TenantID: tenant, Name: "lab", CreatedAt: clock, UpdatedAt: clock}
	require.NoError(t, a.st.CreateSite(t.Context(), site))
	patch := HostPatch{ID: store.NewID(), TenantID: tenant, AgentID: store.NewID(), Online: true, LastSeenAt: clock, Usage: []byte(`{"cpu_percent":12.5}`)}
	a.b.Publish(Event{Type: TypeHostUpdated, TenantID: tenant, ID: patch.ID, At: clock, Object: patch})
	gotA := drain(t, onA, 2)
	gotB := drain(t, onB, 2)
	require.NoError(t, b.st.DeleteSite(t.Context(), tenant, site.ID))
	gotB = append(gotB, drain(t, onB, 1)...)
	gotA = append(gotA, drain(t, onA, 1)...)

	cases := []struct {
		name string
		got  []Event
		want []string
	}{
		{"replica a", gotA, []string{TypeSiteUpdated, TypeHostUpdated, TypeSiteDeleted}},
		{"replica b", gotB, []string{TypeSiteUpdated, TypeHostUpdated, TypeSiteDeleted}},
	}
	for _, tc := range cases {
		types := make([]string, 0, len(tc.got))
		for i, e := range tc.got {
			types = append(types, e.Type)
			if i > 0 {
				require.Equal(t, tc.got[i-1].Seq+1, e.Seq, "%s: seq increases by one", tc.name)
			}
		}
		require.Equal(t, tc.want, types, tc.name)
		for _, e := range tc.got {
			switch e.Type {
			case TypeSiteUpdated:
				s, ok := e.Object.(store.Site)
				require.True(t, ok, "%s: site object is %T", tc.name, e.Object)
				require.Equal(t, "lab", s.Name, tc.name)
			case TypeHostUpdated:
				p, ok := e.Object.(HostPatch)
				require.True(t, ok, "%s: host object is %T", tc.name, e.Object)
				require.JSONEq(t, `{"cpu_percent":12.5}`, string(p.Usage), tc.name)
				require.True(t, p.Online, tc.name)
			case TypeSiteDeleted:
				s, ok := e.Object.(store.Site)
				require.True(t, ok, "%s: deleted site object is %T", tc.name, e.Object)
				require.Equal(t, site.ID, s.ID, tc.name)
			}
		}
	}
	// Nothing is echoed back to the replica it came from.
	requireNothing(t, onA)
	requireNothing(t, onB)
}

// An update whose object is gone by the time another replica re-reads it
// is not published there: the delete that removed it is (or will be) in
// that replica's stream, and an update after it would bring the object
// back to life in its clients.
func TestRelayDropsUpdateOfObjectGone(t *testing.T) {
	t.Parallel()
	a, b, raw, tenant := twoReplicas(t)
	onB, _, _ := b.b.Subscribe(tenant, 0)
	defer onB.Close()

	site := store.Site{ID: store.NewID(), TenantID: tenant, Name: "gone", CreatedAt: clock, UpdatedAt: clock}
	require.NoError(t, raw.CreateSite(t.Context(), site))
	require.NoError(t, raw.DeleteSite(t.Context(), tenant, site.ID))
	a.b.Publish(Event{Type: TypeSiteUpdated, TenantID: tenant, ID: site.ID, At: clock, Object: site})
	// The bus delivers in order, so the patch arriving on b means the
	// site's notice was handled before it.
	patch := HostPatch{ID: store.NewID(), TenantID: tenant, AgentID: store.NewID(), Online: true, LastSeenAt: clock}
	a.b.Publish(Event{Type: TypeHostUpdated, TenantID: tenant, ID: patch.ID, At: clock, Object: patch})

	got := drain(t, onB, 1)
	require.Equal(t, TypeHostUpdated, got[0].Type)
	require.Equal(t, patch.ID, got[0].ID)
	requireNothing(t, onB)
}

// A gap on the bus cuts every subscriber off, and resuming where it was
// answers resync: the lost events are not in the history.
func TestRelayGapForcesResync(t *testing.T) {
	t.Parallel()
	a, _, _, tenant := twoReplicas(t)
	sub, _, _ := a.b.Subscribe(tenant, 0)
	a.b.Publish(Event{Type: TypeSiteUpdated, TenantID: tenant, ID: store.NewID(), Object: store.Site{}})
	last := drain(t, sub, 1)[0].Seq

	a.relay.receive(nil)
	_, ok := <-sub.C()
	require.False(t, ok)
	require.ErrorIs(t, sub.Err(), ErrLagged)

	again, replay, resync := a.b.Subscribe(tenant, last)
	defer again.Close()
	require.True(t, resync)
	require.Empty(t, replay)

	// A client that starts after the gap resumes normally once newer
	// events exist.
	e := a.b.Publish(Event{Type: TypeSiteUpdated, TenantID: tenant, ID: store.NewID(), Object: store.Site{}})
	later, _, resync := a.b.Subscribe(tenant, e.Seq)
	defer later.Close()
	require.False(t, resync)
}
