package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/api"
)

// TestOpenAPI checks that the document parses and validates as OpenAPI
// 3.1, that it documents exactly the registered routes, and that it is
// what /v1/openapi.json serves. Routes added later through Engine are
// covered by the same check.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	require.NoError(t, e.api.CheckOpenAPI())

	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPIDocument())
	require.NoError(t, err)
	require.Equal(t, "3.1.0", doc.OpenAPI)
	require.NoError(t, doc.Validate(context.Background()))

	resp := e.must(http.StatusOK, req{method: "GET", path: "/v1/openapi.json"})
	require.JSONEq(t, string(api.OpenAPIDocument()), string(resp.body))

	// Every documented operation has an error schema for its failures.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for code, r := range op.Responses.Map() {
				if code[0] == '4' || code[0] == '5' {
					require.NotNil(t, r.Value, "%s %s %s", method, path, code)
					mt := r.Value.Content.Get("application/json")
					require.NotNil(t, mt, "%s %s %s has no JSON error body", method, path, code)
					require.Equal(t, "#/components/schemas/Error", mt.Schema.Ref, "%s %s %s", method, path, code)
				}
			}
		}
	}
}

func TestOpenAPIRouteDiff(t *testing.T) {
	t.Parallel()
	doc := []byte(`{"openapi":"3.1.0","paths":{"/v1/a/{id}":{"get":{},"parameters":[]},"/v1/b":{"post":{}}}}`)
	cases := []struct {
		name                   string
		routes                 gin.RoutesInfo
		undocumented, unrouted []string
	}{
		{"match", gin.RoutesInfo{{Method: "GET", Path: "/v1/a/:id"}, {Method: "POST", Path: "/v1/b"}}, nil, nil},
		{"route missing from doc", gin.RoutesInfo{{Method: "GET", Path: "/v1/a/:id"}, {Method: "POST", Path: "/v1/b"}, {Method: "DELETE", Path: "/v1/a/:id"}},
			[]string{"DELETE /v1/a/{id}"}, nil},
		{"doc without route", gin.RoutesInfo{{Method: "GET", Path: "/v1/a/:id"}}, nil, []string{"POST /v1/b"}},
		{"param renamed", gin.RoutesInfo{{Method: "GET", Path: "/v1/a/:vm"}, {Method: "POST", Path: "/v1/b"}},
			[]string{"GET /v1/a/{vm}"}, []string{"GET /v1/a/{id}"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			undoc, unrouted, err := api.OpenAPIRouteDiff(doc, tc.routes)
			require.NoError(t, err)
			require.Equal(t, tc.undocumented, undoc)
			require.Equal(t, tc.unrouted, unrouted)
		})
	}

	// A route added through Engine makes the live check fail.
	e := newEnv(t, nil)
	e.api.Engine().GET("/v1/undocumented", func(c *gin.Context) {})
	require.ErrorIs(t, e.api.CheckOpenAPI(), api.ErrOpenAPIMismatch)
}
