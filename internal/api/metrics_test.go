package api_test

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/api"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(o *api.Options) { o.Registerer = reg })
	e.must(http.StatusOK, req{method: "GET", path: "/healthz"})
	e.must(http.StatusOK, req{method: "GET", path: "/healthz"})
	e.must(http.StatusNotFound, req{method: "GET", path: "/no/such/path/12345"})

	mfs, err := reg.Gather()
	require.NoError(t, err)
	byName := map[string]int{}
	for _, mf := range mfs {
		byName[mf.GetName()] = len(mf.GetMetric())
	}
	require.Contains(t, byName, "nkudo_http_requests_total")
	require.Contains(t, byName, "nkudo_http_request_duration_seconds")
	require.Equal(t, 2, byName["nkudo_http_requests_total"], "one series for /healthz 200, one for unmatched 404; the raw path is never a label")

	// A second API on the same registry reuses the collectors.
	_, err = api.New(api.Options{Store: e.store, Registerer: reg})
	require.NoError(t, err)
}
