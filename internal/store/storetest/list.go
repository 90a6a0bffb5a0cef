package storetest

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
)

// lister describes one paginated list of the store: how to add an item to a
// tenant's list and how to read a page of it.
type lister struct {
	name string
	// add creates one item visible in the list of scope and returns its id.
	add func(f *fixture, scope scope) uuid.UUID
	// list reads one page of scope's list.
	list func(f *fixture, scope scope, p store.Page) ([]uuid.UUID, bool, error)
}

// scope is a tenant with a site, agent and host in it, so every kind of
// object can be created in it.
type scope struct {
	tenant store.Tenant
	site   store.Site
	agent  store.Agent
	host   store.Host
}

func newScope(f *fixture) scope {
	f.t.Helper()
	ten := f.tenant()
	site := f.site(ten.ID)
	agent, host := f.enroll(site)
	return scope{tenant: ten, site: site, agent: agent, host: host}
}

func ids[T any](items []T, id func(T) uuid.UUID) []uuid.UUID {
	out := make([]uuid.UUID, len(items))
	for i, it := range items {
		out[i] = id(it)
	}
	return out
}

var listers = []lister{
	{
		name: "api keys",
		add:  func(f *fixture, sc scope) uuid.UUID { return f.apiKey(sc.tenant.ID).ID },
		list: func(f *fixture, sc scope, p store.Page) ([]uuid.UUID, bool, error) {
			items, more, err := f.s.ListAPIKeys(f.ctx, sc.tenant.ID, p)
			return ids(items, func(k store.APIKey) uuid.UUID { return k.ID }), more, err
		},
	},
	{
		name: "sites",
		add:  func(f *fixture, sc scope) uuid.UUID { return f.site(sc.tenant.ID).ID },
		list: func(f *fixture, sc scope, p store.Page) ([]uuid.UUID, bool, error) {
			items, more, err := f.s.ListSites(f.ctx, sc.tenant.ID, p)
			return ids(items, func(s store.Site) uuid.UUID { return s.ID }), more, err
		},
	},
	{
		name: "agents",
		add: func(f *fixture, sc scope) uuid.UUID {
			a, _ := f.enroll(sc.site)
			return a.ID
		},
		list: func(f *fixture, sc scope, p store.Page) ([]uuid.UUID, bool, error) {
			items, more, err := f.s.ListAgents(f.ctx, sc.tenant.ID, p)
			return ids(items, func(a store.Agent) uuid.UUID { return a.ID }), more, err
		},
	},
	{
		name: "hosts",
		add: func(f *fixture, sc scope) uuid.UUID {
			_, h := f.enroll(sc.site)
			return h.ID
		},
		list: func(f *fixture, sc scope, p store.Page) ([]uuid.UUID, bool, error) {
			items, more, err := f.s.ListHosts(f.ctx, sc.tenant.ID, uuid.Nil, p)
			return ids(items, func(h store.Host) uuid.UUID { return h.ID }), more, err
		},
	},
	{
		name: "hosts of a site",
		add: func(f *fixture, sc scope) uuid.UUID {
			_, h := f.enroll(sc.site)
			return h.ID
		},
		list: func(f *fixture, sc scope, p store.Page) ([]uuid.UUID, bool, error) {
			items, more, err := f.s.ListHosts(f.ctx, sc.tenant.ID, sc.site.ID, p)
			return ids(items, func(h store.Host) uuid.UUID { return h.ID }), more, err
		},
	},
	{
		name: "vms",
		add:  func(f *fixture, sc scope) uuid.UUID { return f.vm(sc.site, sc.host.ID).ID },
		list: func(f *fixture, sc scope, p store.Page) ([]uuid.UUID, bool, error) {
			items, more, err := f.s.ListVMs(f.ctx, sc.tenant.ID, store.VMFilter{}, p)
			return ids(items, func(v store.VM) uuid.UUID { return v.ID }), more, err
		},
	},
	{
		name: "plans",
		add:  func(f *fixture, sc scope) uuid.UUID { return f.plan(sc.agent).ID },
		list: func(f *fixture, sc scope, p store.Page) ([]uuid.UUID, bool, error) {
			items, more, err := f.s.ListPlans(f.ctx, sc.tenant.ID, store.PlanFilter{}, p)
			return ids(items, func(p store.Plan) uuid.UUID { return p.ID }), more, err
		},
	},
	{
		name: "audit events",
		add: func(f *fixture, sc scope) uuid.UUID {
			e := store.AuditEvent{ID: store.NewID(), TenantID: sc.tenant.ID, Actor: "admin", Action: "site.create", Result: "ok", At: base}
			require.NoError(f.t, f.s.AppendAudit(f.ctx, e))
			return e.ID
		},
		list: func(f *fixture, sc scope, p store.Page) ([]uuid.UUID, bool, error) {
			items, more, err := f.s.ListAudit(f.ctx, sc.tenant.ID, p)
			return ids(items, func(e store.AuditEvent) uuid.UUID { return e.ID }), more, err
		},
	},
}

// testPagination walks every tenant-scoped list in pages of two and checks
// order, the more flag, and that another tenant's items never appear.
func testPagination(t *testing.T, open func(t *testing.T) store.Store) {
	for _, l := range listers {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, open(t))
			mine, theirs := newScope(f), newScope(f)
			// The scope's own agent and host are part of those lists.
			pre, _, err := l.list(f, mine, store.Page{Limit: 100})
			require.NoError(t, err)
			want := append([]uuid.UUID(nil), pre...)
			for range 5 {
				want = append(want, l.add(f, mine))
				l.add(f, theirs)
			}
			var (
				got   []uuid.UUID
				after uuid.UUID
				pages int
			)
			for {
				page, more, err := l.list(f, mine, store.Page{Limit: 2, After: after})
				require.NoError(t, err)
				require.LessOrEqual(t, len(page), 2)
				got = append(got, page...)
				pages++
				require.Less(t, pages, 20, "pagination does not end")
				if !more {
					break
				}
				require.NotEmpty(t, page, "more with an empty page")
				after = page[len(page)-1]
			}
			require.Equal(t, want, got, "pages in id order, each item once, only this tenant's")
			require.Equal(t, (len(want)+1)/2, pages)

			all, more, err := l.list(f, mine, store.Page{Limit: len(want)})
			require.NoError(t, err)
			require.False(t, more, "more must be false when the page holds the rest exactly")
			require.Equal(t, want, all)

			empty, more, err := l.list(f, mine, store.Page{Limit: 2, After: want[len(want)-1]})
			require.NoError(t, err)
			require.False(t, more)
			require.Empty(t, empty)
		})
	}
	t.Run("tenants", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, open(t))
		var want []uuid.UUID
		for range 5 {
			want = append(want, f.tenant().ID)
		}
		var got []uuid.UUID
		after := uuid.Nil
		for {
			page, more, err := f.s.ListTenants(f.ctx, store.Page{Limit: 2, After: after})
			require.NoError(t, err)
			got = append(got, ids(page, func(t store.Tenant) uuid.UUID { return t.ID })...)
			if !more {
				break
			}
			after = page[len(page)-1].ID
		}
		require.Equal(t, want, got)
	})
}
