package migrations

import (
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var migrationName = regexp.MustCompile(`^(\d{5})_[a-z0-9_]+\.sql$`)

// TestEnginesShareVersions keeps the two engines' migrations in step:
// the same version numbers, each named NNNNN_name.sql with goose Up and
// Down sections, so `nkudo-server migrate` means the same on both.
func TestEnginesShareVersions(t *testing.T) {
	t.Parallel()
	versions := func(fsys fs.FS, dir string) []string {
		entries, err := fs.ReadDir(fsys, dir)
		require.NoError(t, err)
		var out []string
		for _, e := range entries {
			m := migrationName.FindStringSubmatch(e.Name())
			require.NotNil(t, m, "%s/%s is not named NNNNN_name.sql", dir, e.Name())
			body, err := fs.ReadFile(fsys, dir+"/"+e.Name())
			require.NoError(t, err)
			require.True(t, strings.Contains(string(body), "-- +goose Up"), "%s/%s has no goose Up section", dir, e.Name())
			require.True(t, strings.Contains(string(body), "-- +goose Down"), "%s/%s has no goose Down section", dir, e.Name())
			out = append(out, m[1])
		}
		return out
	}
	tests := []struct {
		name string
		fsys fs.FS
		dir  string
	}{
		{"sqlite", SQLite, "sqlite"},
		{"postgres", Postgres, "postgres"},
	}
	var first []string
	for i, tt := range tests {
		got := versions(tt.fsys, tt.dir)
		require.NotEmpty(t, got, tt.name)
		for j := range got {
			require.Equal(t, j+1, atoi(t, got[j]), "%s versions must be 1, 2, 3… without gaps", tt.name)
		}
		if i == 0 {
			first = got
			continue
		}
		require.Equal(t, first, got, "%s and %s must have the same versions", tests[0].name, tt.name)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}
