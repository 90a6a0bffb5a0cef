package api

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// openAPIDoc is the hand-written OpenAPI 3.1 description of the routes.
// Whoever adds a route adds it here; CheckOpenAPI (run by the tests on
// every registered route) fails until both agree.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPIDocument returns a copy of the served OpenAPI document.
func OpenAPIDocument() []byte { return bytes.Clone(openAPIDoc) }

func (a *API) serveOpenAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", openAPIDoc)
}

// CheckOpenAPI compares the served document with every route registered
// on the engine, including routes added through Engine after New.
func (a *API) CheckOpenAPI() error {
	undocumented, unrouted, err := OpenAPIRouteDiff(openAPIDoc, a.engine.Routes())
	if err != nil {
		return err
	}
	if len(undocumented) == 0 && len(unrouted) == 0 {
		return nil
	}
	return fmt.Errorf("%w: routes missing from the document: %v; documented operations with no route: %v",
		ErrOpenAPIMismatch, undocumented, unrouted)
}

// OpenAPIRouteDiff lists, as "METHOD /path/{param}", the routes missing
// from the document and the documented operations that no route serves.
func OpenAPIRouteDiff(doc []byte, routes gin.RoutesInfo) (undocumented, unrouted []string, err error) {
	var parsed struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &parsed); err != nil {
		return nil, nil, fmt.Errorf("parsing openapi document: %w", err)
	}
	documented := make(map[string]bool)
	for path, item := range parsed.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	routed := make(map[string]bool, len(routes))
	for _, r := range routes {
		op := r.Method + " " + openAPIPath(r.Path)
		routed[op] = true
		if !documented[op] {
			undocumented = append(undocumented, op)
		}
	}
	for op := range documented {
		if !routed[op] {
			unrouted = append(unrouted, op)
		}
	}
	slices.Sort(undocumented)
	slices.Sort(unrouted)
	return undocumented, unrouted, nil
}

// openAPIPath turns gin's /v1/sites/:site into /v1/sites/{site}.
func openAPIPath(ginPath string) string {
	parts := strings.Split(ginPath, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") || strings.HasPrefix(p, "*") {
			parts[i] = "{" + p[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}
