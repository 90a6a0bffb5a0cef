package form

import (
	"errors"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/style"
)

var (
	sites = []data.Site{{ID: "s1", Name: "ams"}, {ID: "s2", Name: "fra"}}
	hosts = []data.Host{{ID: "h1", SiteID: "s1", Hostname: "ams-01"}, {ID: "h2", SiteID: "s2", Hostname: "fra-01"}}
)

func TestValidate(t *testing.T) {
	t.Parallel()
	good := [fieldCount]string{"web-3", "ams", "ams-01", "2", "1024", "/img/alpine.raw"}
	with := func(vs ...string) [fieldCount]string {
		g := good
		for i := 0; i < len(vs); i += 2 {
			switch vs[i] {
			case "name":
				g[FieldName] = vs[i+1]
			case "site":
				g[FieldSite] = vs[i+1]
			case "host":
				g[FieldHost] = vs[i+1]
			case "vcpus":
				g[FieldVCPUs] = vs[i+1]
			case "memory":
				g[FieldMemory] = vs[i+1]
			case "disk":
				g[FieldDisk] = vs[i+1]
			}
		}
		return g
	}
	spec := func(site, host string) data.VMSpec {
		return data.VMSpec{Name: "web-3", SiteID: site, HostID: host, VCPUs: 2, MemoryMiB: 1024, DiskImage: "/img/alpine.raw"}
	}
	tests := []struct {
		name    string
		values  [fieldCount]string
		want    data.VMSpec
		wantErr string
	}{
		{name: "valid", values: good, want: spec("s1", "h1")},
		{name: "host by id", values: with("host", "h1"), want: spec("s1", "h1")},
		{name: "site by id", values: with("site", "s1"), want: spec("s1", "h1")},
		{name: "empty host: the server places it", values: with("host", ""), want: spec("s1", "")},
		{name: "blank host is empty", values: with("host", "  "), want: spec("s1", "")},
		{name: "host decides the site", values: with("site", "", "host", "fra-01"), want: spec("s2", "h2")},
		{name: "host outside the site", values: with("host", "fra-01"), wantErr: `host "fra-01" is not in site "ams"`},
		{name: "neither site nor host", values: with("site", "", "host", ""), wantErr: "site: required"},
		{name: "unknown site", values: with("site", "nope"), wantErr: `site "nope"`},
		{name: "empty name", values: with("name", ""), wantErr: "name"},
		{name: "upper-case name", values: with("name", "Web"), wantErr: "name"},
		{name: "unknown host", values: with("host", "nope"), wantErr: `host "nope"`},
		{name: "zero vcpus", values: with("vcpus", "0"), wantErr: "vcpus"},
		{name: "non-numeric memory", values: with("memory", "lots"), wantErr: "memory"},
		{name: "tiny memory", values: with("memory", "16"), wantErr: "memory"},
		{name: "no disk", values: with("disk", " "), wantErr: "disk_image is required"},
		{name: "vcpus over the server's bound", values: with("vcpus", "65"), wantErr: "vcpus must be 1 to 64"},
		{name: "memory over 1 TiB", values: with("memory", "1048577"), wantErr: "memory_mib must be 64 to 1048576"},
		{name: "relative disk", values: with("disk", "img/a.raw"), wantErr: "absolute"},
		{name: "disk with comma", values: with("disk", "/img/a.raw,readonly=off"), wantErr: "','"},
		{name: "disk with dot-dot", values: with("disk", "/img/../etc/shadow"), wantErr: "'..'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Validate(tt.values, sites, hosts)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ErrInvalid)
				require.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestNewPrefills(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		opts             Options
		wantSite, wantHo string
	}{
		{"opened from a site", Options{Sites: sites, Hosts: hosts, Site: "fra"}, "fra", ""},
		{"opened from a host", Options{Sites: sites, Hosts: hosts, Site: "ams", Host: "ams-01"}, "ams", "ams-01"},
		{"only one site is implied", Options{Sites: sites[:1], Hosts: hosts[:1]}, "ams", ""},
		{"several sites: nothing implied", Options{Sites: sites, Hosts: hosts}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := New(tt.opts, style.Plain())
			v := m.values()
			require.Equal(t, tt.wantSite, v[FieldSite])
			require.Equal(t, tt.wantHo, v[FieldHost])
			require.Equal(t, "1", v[FieldVCPUs])
			require.Equal(t, "512", v[FieldMemory])
		})
	}
}

func TestHandle(t *testing.T) {
	t.Parallel()
	enter := tea.KeyMsg{Type: tea.KeyEnter}
	tab := tea.KeyMsg{Type: tea.KeyTab}
	typ := func(s string) tea.KeyMsg { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)} }
	tests := []struct {
		name     string
		opts     Options
		keys     []tea.KeyMsg
		want     Outcome
		wantSpec data.VMSpec
		wantErr  string
		focus    int
	}{
		{
			name: "enter walks the fields and submits on the last",
			opts: Options{Sites: sites[:1], Hosts: hosts[:1]},
			keys: []tea.KeyMsg{typ("web-3"), enter, enter, enter, enter, enter, typ("/img/a.raw"), enter},
			want: Submitted, wantSpec: data.VMSpec{Name: "web-3", SiteID: "s1", VCPUs: 1, MemoryMiB: 512, DiskImage: "/img/a.raw"},
			focus: FieldDisk,
		},
		{
			name: "ctrl+s submits from any field",
			opts: Options{Sites: sites, Hosts: hosts, Host: "fra-01"},
			keys: []tea.KeyMsg{typ("db"), {Type: tea.KeyCtrlS}},
			want: Editing, wantErr: "disk_image is required", focus: FieldDisk,
		},
		{
			name: "a bad value is flagged when its field is left",
			opts: Options{Sites: sites, Hosts: hosts, Host: "fra-01"},
			keys: []tea.KeyMsg{typ("db"), tab, tab, tab, {Type: tea.KeyBackspace}, typ("256"), tab},
			want: Editing, wantErr: "vcpus", focus: FieldMemory,
		},
		{
			name: "memory beyond the server's limit is refused at the field",
			opts: Options{Sites: sites, Hosts: hosts, Host: "fra-01"},
			keys: []tea.KeyMsg{typ("db"), tab, tab, tab, tab, {Type: tea.KeyCtrlU}, typ("4194304"), {Type: tea.KeyCtrlS}},
			want: Editing, wantErr: "memory_mib", focus: FieldMemory,
		},
		{
			name: "tab completes a host before moving on",
			opts: Options{Sites: sites, Hosts: hosts, Site: "fra"},
			keys: []tea.KeyMsg{typ("x"), tab, tab, typ("fr"), tab},
			want: Editing, focus: FieldHost,
		},
		{
			name: "tab on an empty host moves on",
			opts: Options{Sites: sites, Hosts: hosts, Site: "fra"},
			keys: []tea.KeyMsg{tab, tab, tab},
			want: Editing, focus: FieldVCPUs,
		},
		{
			name: "shift+tab goes back and wraps",
			opts: Options{Sites: sites, Hosts: hosts},
			keys: []tea.KeyMsg{{Type: tea.KeyShiftTab}},
			want: Editing, focus: FieldDisk,
		},
		{
			name: "esc cancels",
			opts: Options{Sites: sites, Hosts: hosts},
			keys: []tea.KeyMsg{typ("web"), {Type: tea.KeyEsc}},
			want: Cancelled, focus: FieldName,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := New(tt.opts, style.Plain())
			var out Outcome
			var spec data.VMSpec
			for _, k := range tt.keys {
				out, spec, _ = m.Handle(k)
			}
			require.Equal(t, tt.want, out)
			require.Equal(t, tt.focus, m.focus)
			if tt.want == Submitted {
				require.Equal(t, tt.wantSpec, spec)
			}
			if tt.wantErr != "" {
				require.ErrorIs(t, m.Err(), ErrInvalid)
				require.Contains(t, m.Err().Error(), tt.wantErr)
				require.Contains(t, ansi.Strip(m.View()), tt.wantErr, "the error is shown")
			}
		})
	}
	t.Run("completed host", func(t *testing.T) {
		t.Parallel()
		m := New(Options{Sites: sites, Hosts: hosts, Site: "fra"}, style.Plain())
		for _, k := range []tea.KeyMsg{tab, tab, typ("fr"), tab} {
			m.Handle(k)
		}
		require.Equal(t, "fra-01", m.values()[FieldHost])
	})
}

func TestViewShowsPlacementHint(t *testing.T) {
	t.Parallel()
	m := New(Options{Sites: sites, Hosts: hosts, Site: "ams"}, style.Plain())
	m.SetSize(80, 20)
	v := ansi.Strip(m.View())
	for _, want := range []string{"Create VM", "Site", "ams", "Host", "empty: the server picks"} {
		require.True(t, strings.Contains(v, want), "view lacks %q:\n%s", want, v)
	}
}

// TestServerErrorAtField: the server's refusal lands at the field it
// names, focus moves there and the input is kept.
func TestServerErrorAtField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		err   error
		field int
	}{
		{"vmspec field", &data.Refusal{Code: "invalid_argument", Message: "memory_mib must be at most 1048576"}, FieldMemory},
		{"name taken", &data.Refusal{Code: "name_taken", Message: `a vm named "db" already exists in this tenant`}, FieldName},
		{"no host online", &data.Refusal{Code: "unavailable", Message: "no host of site x is online to place the vm on"}, FieldHost},
		{"other", errors.New("server unavailable"), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := New(Options{Sites: sites, Hosts: hosts, Host: "fra-01"}, style.Plain())
			m.SetSize(100, 20)
			m.Handle(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("db")})
			m.SetServerError(tt.err)
			require.Equal(t, tt.field, FieldOf(m.Err()))
			if tt.field >= 0 {
				require.Equal(t, tt.field, m.focus)
			}
			require.Equal(t, "db", m.values()[FieldName], "input kept")
			require.Contains(t, ansi.Strip(m.View()), "server: ")
		})
	}
}
