package container_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

type plan struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

type vm struct {
	ID          string `json:"id"`
	HostID      string `json:"host_id"`
	ActualState string `json:"actual_state"`
}

// TestContainer runs the image as an operator would: a volume for the
// data, the port published, the CA taken from the volume, an agent on
// the host enrolled with the fingerprint from the logs, a VM, and a
// container restart that the agent survives.
func TestContainer(t *testing.T) {
	requireDocker(t)
	tag := uniqueName("nkudo-server:test-")
	ctxDir := buildImage(t, tag)
	checkImageConfig(t, tag)
	checkImageFiles(t, tag)

	volume := uniqueName("nkudo-test-")
	mustDocker(t, "volume", "create", volume)
	t.Cleanup(func() { _, _ = docker("volume", "rm", "--force", volume) })
	c := runContainer(t, tag, volume)
	c.waitReady()
	logs := mustDocker(t, "logs", c.name)
	fingerprint := fingerprintFromLogs(t, logs)

	// Bootstrap through the published port.
	var tenant, key, site struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	c.call(http.StatusCreated, "POST", "/v1/tenants", adminKey, map[string]string{"name": "acme"}, &tenant)
	c.call(http.StatusCreated, "POST", "/v1/tenants/"+tenant.ID+"/api-keys", adminKey,
		map[string]string{"name": "ops", "role": "admin"}, &key)
	c.call(http.StatusCreated, "POST", "/v1/sites", key.Key, map[string]string{"name": "edge"}, &site)
	var token struct{ Token string }
	c.call(http.StatusCreated, "POST", "/v1/sites/"+site.ID+"/enrollment-tokens", key.Key, map[string]any{}, &token)

	// A real agent on the host, trusting the CA by the logged fingerprint.
	stateDir := filepath.Join(t.TempDir(), "state")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	out, err := exec.CommandContext(ctx, agentBin(ctxDir), "enroll", "--server", c.url(""), "--token", token.Token,
		"--state-dir", stateDir, "--ca-fingerprint", fingerprint, "--hostname", "edge-1").CombinedOutput()
	require.NoError(t, err, "enroll: %s", out)
	images := t.TempDir()
	disk := filepath.Join(images, "root.img")
	require.NoError(t, os.WriteFile(disk, make([]byte, 1<<20), 0o600))
	// --hypervisor sim explicitly: this host has no Cloud Hypervisor.
	startAgent(t, agentBin(ctxDir), "run", "--state-dir", stateDir, "--runtime-dir", filepath.Join(t.TempDir(), "run"),
		"--hypervisor", "sim", "--image-dir", images, "--log-level", "debug")
	eventually(t, "agent session on the server", func() bool { return c.metric("nkudo_hub_sessions") == 1 })

	var created struct {
		VM   vm   `json:"vm"`
		Plan plan `json:"plan"`
	}
	c.call(http.StatusCreated, "POST", "/v1/vms", key.Key, map[string]any{
		"name": "web-1", "site_id": site.ID, "vcpus": 1, "memory_mib": 128, "disk_image": disk,
	}, &created)
	waitPlan(t, c, key.Key, created.Plan.ID)
	waitVM(t, c, key.Key, created.VM.ID, "running")
	eventually(t, "Docker reports the container healthy", func() bool { return c.health() == "healthy" })

	// Restart: same volume, same CA, and the agent reconnects by itself.
	mustDocker(t, "restart", "--time", "30", c.name)
	c.waitReady()
	ca, err := c.copyCA()
	require.NoError(t, err)
	require.Equal(t, string(c.caPEM), string(ca), "the CA survives the restart in the volume")
	eventually(t, "agent back on the restarted server", func() bool {
		return c.metric(`nkudo_hub_frames_received_total{type="hello"}`) >= 1 && c.metric("nkudo_hub_sessions") == 1
	})
	var stop plan
	c.call(http.StatusAccepted, "POST", "/v1/vms/"+created.VM.ID+"/stop", key.Key, nil, &stop)
	waitPlan(t, c, key.Key, stop.ID)
	waitVM(t, c, key.Key, created.VM.ID, "stopped")
}

func waitPlan(t *testing.T, c *container, key, id string) {
	t.Helper()
	eventually(t, "plan "+id+" succeeded", func() bool {
		var p plan
		c.call(http.StatusOK, "GET", "/v1/plans/"+id, key, nil, &p)
		require.NotEqual(t, "failed", p.Status, "plan %s failed", id)
		return p.Status == "succeeded"
	})
}

func waitVM(t *testing.T, c *container, key, id, state string) {
	t.Helper()
	eventually(t, "vm "+id+" "+state, func() bool {
		var v vm
		c.call(http.StatusOK, "GET", "/v1/vms/"+id, key, nil, &v)
		return v.ActualState == state
	})
}
