package main

import (
	"bytes"
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
