package api_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/api"
)

// TestOpenAPIErrorCodesComplete checks that the Error schema's code
// enumeration is exactly the set of Code… constants of the package: a
// code added to the source but not to openapi.json (or left in the
// document after its constant went) fails here. The constants are read
// from the package's source, so new files are covered without a list to
// keep up to date.
func TestOpenAPIErrorCodesComplete(t *testing.T) {
	t.Parallel()
	consts := errorCodeConstants(t)
	require.NotEmpty(t, consts)
	for _, want := range []string{api.CodeInternal, api.CodeTokenInvalid, api.CodeHostOffline, api.CodeNetBirdUnavailable} {
		require.Contains(t, consts, want, "the source scan finds the constants of every file")
	}

	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPIDocument())
	require.NoError(t, err)
	errSchema := doc.Components.Schemas["Error"]
	require.NotNil(t, errSchema)
	code := errSchema.Value.Properties["error"].Value.Properties["code"]
	require.NotNil(t, code, "Error.error.code")
	documented := map[string]bool{}
	for _, v := range code.Value.Enum {
		s, ok := v.(string)
		require.True(t, ok, "enum value %v is not a string", v)
		require.False(t, documented[s], "%q is listed twice", s)
		documented[s] = true
	}

	for value, name := range consts {
		require.True(t, documented[value], "%s (%q) is missing from the Error code enumeration of openapi.json", name, value)
	}
	for value := range documented {
		_, ok := consts[value]
		require.True(t, ok, "openapi.json documents error code %q, which no Code… constant declares", value)
	}
}

// errorCodeConstants parses the package's non-test sources and returns its
// exported string constants named Code…, by value.
func errorCodeConstants(t *testing.T) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	fset := token.NewFileSet()
	out := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "Code") || !id.IsExported() || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					value, err := strconv.Unquote(lit.Value)
					require.NoError(t, err)
					prev, dup := out[value]
					require.False(t, dup, "%s and %s share the code %q", prev, id.Name, value)
					out[value] = id.Name
				}
			}
		}
	}
	return out
}
