package datatest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/tui/data"
)

// TestCreateVMPlaces checks the fake places a VM without a host the way
// the server does: the least loaded online host of the site.
func TestCreateVMPlaces(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		spec     data.VMSpec
		wantHost string
		wantErr  error
	}{
		{"host given", data.VMSpec{Name: "a", SiteID: "site-ams", HostID: "host-ams-02"}, "host-ams-02", nil},
		{"tie goes to the first host", data.VMSpec{Name: "a", SiteID: "site-ams"}, "host-ams-01", nil},
		{"the only online host", data.VMSpec{Name: "a", SiteID: "site-lab"}, "host-lab-01", nil},
		{"no online host", data.VMSpec{Name: "a", SiteID: "site-fra"}, "", ErrNoHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := New(Standard())
			vm, err := f.CreateVM(context.Background(), tt.spec)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantHost, vm.HostID)
			require.Equal(t, data.StateCreating, vm.ActualState)
			require.Equal(t, []Call{{Op: "create", Target: "a"}}, f.Calls())
		})
	}
	t.Run("load decides", func(t *testing.T) {
		t.Parallel()
		f := New(Standard())
		first, err := f.CreateVM(context.Background(), data.VMSpec{Name: "a", SiteID: "site-ams"})
		require.NoError(t, err)
		second, err := f.CreateVM(context.Background(), data.VMSpec{Name: "b", SiteID: "site-ams"})
		require.NoError(t, err)
		require.NotEqual(t, first.HostID, second.HostID, "the second VM goes to the less loaded host")
	})
}
