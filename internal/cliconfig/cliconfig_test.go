package cliconfig_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/cliconfig"
)

func TestPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"override", map[string]string{"NKUDO_CONFIG": "/etc/n.yaml", "XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/etc/n.yaml"},
		{"xdg", map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/x/nkudo/config.yaml"},
		{"home", map[string]string{"HOME": "/h"}, "/h/.config/nkudo/config.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := cliconfig.Path(func(k string) string { return tt.env[k] })
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func ctx(name string) cliconfig.Context {
	return cliconfig.Context{Name: name, Server: "https://" + name + ".example:8443", CA: "/ca/" + name + ".crt", APIKey: "nk_" + name}
}

func TestRoundTripAndMode(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "config.yaml")

	c, err := cliconfig.Load(path)
	require.NoError(t, err, "a missing file is an empty config")
	require.Empty(t, c.Contexts)
	_, err = c.Current()
	require.ErrorIs(t, err, cliconfig.ErrNoCurrentContext)

	prod := ctx("prod")
	prod.ReadOnly = true
	prod.Tenant = "0190c0de-0000-7000-8000-000000000001"
	require.NoError(t, c.Set(prod))
	require.NoError(t, c.Set(ctx("dev")))
	require.NoError(t, c.Use("dev"))
	require.NoError(t, c.Save(path))

	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, cliconfig.FileMode, st.Mode().Perm())
	dir, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), dir.Mode().Perm())

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(raw), "current-context: dev")
	require.Contains(t, string(raw), "api-key: nk_prod")
	require.Contains(t, string(raw), "read-only: true")

	back, err := cliconfig.Load(path)
	require.NoError(t, err)
	require.Equal(t, c, back)
	cur, err := back.Current()
	require.NoError(t, err)
	require.Equal(t, "dev", cur.Name)

	// Replacing keeps the order; no temp files are left behind.
	updated := ctx("prod")
	updated.APIKey = "nk_rotated"
	require.NoError(t, back.Set(updated))
	require.Equal(t, "prod", back.Contexts[0].Name)
	require.NoError(t, back.Save(path))
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1)

	// A file others can read is refused, and a save repairs the mode.
	require.NoError(t, os.Chmod(path, 0o644))
	_, err = cliconfig.Load(path)
	require.ErrorIs(t, err, cliconfig.ErrInsecureFile)
	require.NoError(t, back.Save(path))
	st, err = os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, cliconfig.FileMode, st.Mode().Perm())
}

func TestEditContexts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		edit    func(*cliconfig.Config) error
		wantErr error
		current string
		names   []string
	}{
		{"use unknown", func(c *cliconfig.Config) error { return c.Use("nope") }, cliconfig.ErrContextNotFound, "a", []string{"a", "b"}},
		{"use other", func(c *cliconfig.Config) error { return c.Use("b") }, nil, "b", []string{"a", "b"}},
		{"delete current clears it", func(c *cliconfig.Config) error { return c.Delete("a") }, nil, "", []string{"b"}},
		{"delete other keeps current", func(c *cliconfig.Config) error { return c.Delete("b") }, nil, "a", []string{"a"}},
		{"delete unknown", func(c *cliconfig.Config) error { return c.Delete("zz") }, cliconfig.ErrContextNotFound, "a", []string{"a", "b"}},
		{"invalid server", func(c *cliconfig.Config) error {
			bad := ctx("c")
			bad.Server = "http://plain"
			return c.Set(bad)
		}, cliconfig.ErrInvalidContext, "a", []string{"a", "b"}},
		{"missing key", func(c *cliconfig.Config) error {
			bad := ctx("c")
			bad.APIKey = ""
			return c.Set(bad)
		}, cliconfig.ErrInvalidContext, "a", []string{"a", "b"}},
		{"name with space", func(c *cliconfig.Config) error { return c.Set(ctx("c d")) }, cliconfig.ErrInvalidContext, "a", []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &cliconfig.Config{CurrentContext: "a", Contexts: []cliconfig.Context{ctx("a"), ctx("b")}}
			err := tt.edit(c)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.current, c.CurrentContext)
			var names []string
			for _, x := range c.Contexts {
				names = append(names, x.Name)
			}
			require.Equal(t, tt.names, names)
		})
	}
}

func TestCAPEM(t *testing.T) {
	t.Parallel()
	pem := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	file := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(file, []byte(pem), 0o600))

	got, err := cliconfig.Context{Name: "inline", CA: pem}.CAPEM()
	require.NoError(t, err)
	require.Equal(t, pem, string(got))
	got, err = cliconfig.Context{Name: "file", CA: file}.CAPEM()
	require.NoError(t, err)
	require.Equal(t, pem, string(got))
	_, err = cliconfig.Context{Name: "missing", CA: file + ".nope"}.CAPEM()
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestLoadRejectsDuplicatesAndGarbage(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"duplicate": "contexts:\n- name: a\n- name: a\n",
		"garbage":   "contexts: [\n",
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "config.yaml")
			require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
			_, err := cliconfig.Load(path)
			require.Error(t, err)
		})
	}
}

func TestTenantLabel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ctx  cliconfig.Context
		want string
	}{
		{"name known", cliconfig.Context{Tenant: "0190aaaa-0000-7000-8000-000000000000", TenantName: "acme"}, "acme"},
		{"admin key's tenant id", cliconfig.Context{Tenant: "0190aaaa-0000-7000-8000-000000000000"}, "0190aaaa-0000-7000-8000-000000000000"},
		{"tenant key, name unknown", cliconfig.Context{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, tc.ctx.TenantLabel())
		})
	}
}
