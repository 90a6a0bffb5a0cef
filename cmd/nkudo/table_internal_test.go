package main

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/client"
)

// TestRenderHostsUnavailable: `nkudo get hosts` names why a host's
// hypervisor cannot run VMs.
func TestRenderHostsUnavailable(t *testing.T) {
	t.Parallel()
	h := client.Host{ID: uuid.New(), SiteID: uuid.New(), Hostname: "ams-02", Online: true}
	h.Facts.Hypervisor = client.HypervisorInfo{Kind: client.HypervisorCloudHypervisor, Unavailable: "/dev/kvm is missing"}
	var out bytes.Buffer
	n := names{sites: map[uuid.UUID]string{}, hosts: map[uuid.UUID]client.Host{}}
	require.NoError(t, renderHosts(&out, time.Now(), n, []client.Host{h}))
	require.Contains(t, out.String(), "cloud-hypervisor [unavailable: /dev/kvm is missing]")
}

// TestExitCodeOfServerRefusals: a 400 from the server is a usage error
// (exit 2), like a bad flag; other refusals keep their codes.
func TestExitCodeOfServerRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{&client.APIError{Status: 400, Code: client.CodeInvalidArgument, Message: "vcpus must be 1 to 64"}, exitUsage},
		{fmt.Errorf("creating vm: %w", &client.APIError{Status: 400, Code: client.CodeInvalidJSON}), exitUsage},
		{&client.APIError{Status: 409, Code: "vm_not_running"}, exitError},
		{&client.APIError{Status: 404, Code: client.CodeNotFound}, exitNotFound},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, exitCode(tt.err), "%v", tt.err)
	}
}
