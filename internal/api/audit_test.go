package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
)

func TestAuditEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	f := e.seedFleet("alpha")

	created := e.must(http.StatusCreated, req{method: "POST", path: "/v1/sites", key: f.operator, body: `{"name":"audited"}`,
		header: map[string]string{"X-Request-ID": "audit-req-1"}})
	var site struct{ ID uuid.UUID }
	created.json(t, &site)
	e.must(http.StatusForbidden, req{method: "DELETE", path: "/v1/sites/" + site.ID.String(), key: f.viewer,
		header: map[string]string{"X-Request-ID": "audit-req-2"}})
	e.must(http.StatusOK, req{method: "PATCH", path: "/v1/sites/" + site.ID.String(), key: testAdminKey, body: `{"description":"d"}`,
		header: map[string]string{"X-Request-ID": "audit-req-3", "X-Nkudo-Tenant": f.tenant.String()}})
	e.must(http.StatusUnauthorized, req{method: "DELETE", path: "/v1/sites/" + site.ID.String(), key: "nk_wrong",
		header: map[string]string{"X-Request-ID": "audit-req-4"}})

	type event struct {
		Actor, Action, Target, Result string
		RequestID                     string `json:"request_id"`
		At                            time.Time
	}
	var list struct{ Items []event }
	e.must(http.StatusOK, req{method: "GET", path: "/v1/audit-events?limit=500", key: f.admin}).json(t, &list)
	byReq := map[string]event{}
	for _, ev := range list.Items {
		byReq[ev.RequestID] = ev
	}
	cases := []struct {
		reqID                         string
		actor, action, target, result string
	}{
		{"audit-req-1", "", "site.create", site.ID.String(), "ok"},
		{"audit-req-2", "", "site.delete", site.ID.String(), "forbidden"},
		{"audit-req-3", "admin", "site.update", site.ID.String(), "ok"},
	}
	for _, tc := range cases {
		t.Run(tc.reqID, func(t *testing.T) {
			ev, ok := byReq[tc.reqID]
			require.True(t, ok, "no audit event for %s", tc.reqID)
			require.Equal(t, tc.action, ev.Action)
			require.Equal(t, tc.target, ev.Target)
			require.Equal(t, tc.result, ev.Result)
			require.False(t, ev.At.IsZero())
			if tc.actor != "" {
				require.Equal(t, tc.actor, ev.Actor)
			} else {
				require.Regexp(t, `^key:[0-9a-f-]{36}$`, ev.Actor)
			}
		})
	}
	require.NotContains(t, byReq, "audit-req-4", "unauthenticated calls have no actor to audit")

	// Admin-scope actions are recorded outside any tenant.
	e.createTenant("bravo")
	events, _, err := e.store.ListAudit(context.Background(), uuid.Nil, store.Page{Limit: 500})
	require.NoError(t, err)
	found := false
	for _, ev := range events {
		if ev.Action == "tenant.create" && ev.Actor == "admin" && ev.Result == "ok" {
			found = true
		}
	}
	require.True(t, found, "tenant.create by admin is audited")
}
