package form

import (
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/style"
)

var hosts = []data.Host{{ID: "h1", SiteID: "s1", Hostname: "ams-01"}}

func TestValidate(t *testing.T) {
	t.Parallel()
	good := [fieldCount]string{"web-3", "ams-01", "2", "1024", "/img/alpine.raw"}
	with := func(i int, v string) [fieldCount]string { g := good; g[i] = v; return g }
	tests := []struct {
		name    string
		values  [fieldCount]string
		wantErr string
	}{
		{"valid", good, ""},
		{"host by id", with(FieldHost, "h1"), ""},
		{"empty name", with(FieldName, ""), "name"},
		{"upper-case name", with(FieldName, "Web"), "name"},
		{"unknown host", with(FieldHost, "nope"), "host"},
		{"zero vcpus", with(FieldVCPUs, "0"), "vcpus"},
		{"non-numeric memory", with(FieldMemory, "lots"), "memory"},
		{"tiny memory", with(FieldMemory, "16"), "memory"},
		{"no disk", with(FieldDisk, " "), "disk image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec, err := Validate(tt.values, hosts)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ErrInvalid)
				require.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, data.VMSpec{Name: "web-3", SiteID: "s1", HostID: "h1", VCPUs: 2, MemoryMiB: 1024, DiskImage: "/img/alpine.raw"}, spec)
		})
	}
}

func TestHandleSubmitsOnLastField(t *testing.T) {
	t.Parallel()
	m := New(hosts, "ams-01", style.Plain())
	m.SetValue(FieldName, "web-3")
	m.SetValue(FieldDisk, "/img/a.raw")
	enter := tea.KeyMsg{Type: tea.KeyEnter}
	for range FieldDisk {
		out, _, _ := m.Handle(enter)
		require.Equal(t, Editing, out)
	}
	out, spec, _ := m.Handle(enter)
	require.Equal(t, Submitted, out)
	require.Equal(t, "h1", spec.HostID)
	out, _, _ = m.Handle(tea.KeyMsg{Type: tea.KeyEsc})
	require.Equal(t, Cancelled, out)
}
