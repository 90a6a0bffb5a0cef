package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
)

// BenchmarkListSites measures an authenticated GET /v1/sites (key lookup,
// rate limits, tenant scope, a page of 50 sites) over a real socket.
func BenchmarkListSites(b *testing.B) {
	e := newEnv(b, nil)
	tenant := e.createTenant("bench")
	op, _ := e.createKey(tenant, store.RoleOperator)
	key, _ := e.createKey(tenant, store.RoleViewer)
	for i := range 60 {
		e.createSite(op, fmt.Sprintf("s%d", i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp := e.do(req{method: "GET", path: "/v1/sites", key: key})
		if resp.status != http.StatusOK {
			require.Equal(b, http.StatusOK, resp.status)
		}
	}
}
