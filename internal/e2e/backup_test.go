package e2e_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// TestBackupRestoreKeepsTheFleet backs a running SQLite server up, wipes
// its data dir, restores the backup and starts the server again: the
// agents, never re-enrolled, reconnect with the certificates they hold,
// their VM is still known and still obeys, and what happened after the
// backup is gone.
func TestBackupRestoreKeepsTheFleet(t *testing.T) {
	t.Parallel()
	f := newVMFlow(t, "backup")
	f.startAgent("--hypervisor", "sim")
	vm, _ := f.createVM("web-1", filepath.Join(f.images, "root.img"), "succeeded")
	f.waitActual(vm.ID, "running")
	second := newAgent(t, f.srv)
	second.enroll(f.srv.token(f.tn, 1))
	second.run()
	f.srv.waitOnline(f.tn, second.hostID)
	certs := map[*agent][]byte{}
	for _, ag := range []*agent{f.ag, second} {
		raw, err := os.ReadFile(filepath.Join(ag.stateDir, "cert.pem"))
		require.NoError(t, err)
		certs[ag] = raw
	}

	archive := filepath.Join(t.TempDir(), "nkudo.backup")
	dataDir := filepath.Join(f.srv.dir, "data")
	serverCmd(t, "backup", "--to", archive, "--data-dir", dataDir)
	f.srv.must(http.StatusCreated, "POST", "/v1/sites", f.tn.key, map[string]string{"name": "after-backup"})

	f.srv.proc.signal(syscall.SIGTERM)
	require.NoError(t, f.srv.proc.wait())
	require.NoError(t, os.RemoveAll(dataDir))
	require.NoError(t, os.MkdirAll(dataDir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, "stray"), nil, 0o600))
	out, err := serverCmdErr("restore", "--from", archive, "--data-dir", dataDir)
	require.Error(t, err, "a non-empty data dir is refused: %s", out)
	require.Contains(t, out, "not empty")
	require.NoError(t, os.Remove(filepath.Join(dataDir, "stray")))
	serverCmd(t, "restore", "--from", archive, "--data-dir", dataDir)
	restored := time.Now()
	f.srv.restart()

	// Both agents come back on their own with their certificates: their
	// hosts are seen after the restore (a hello refreshes last_seen_at).
	for _, ag := range []*agent{f.ag, second} {
		eventually(t, "agent back after the restore", func() bool {
			var h struct {
				LastSeenAt *time.Time `json:"last_seen_at"`
			}
			r := f.srv.do("GET", "/v1/hosts/"+ag.hostID.String(), f.tn.key, nil)
			if r.status != http.StatusOK {
				return false
			}
			r.into(t, &h)
			return h.LastSeenAt != nil && h.LastSeenAt.After(restored)
		})
		raw, err := os.ReadFile(filepath.Join(ag.stateDir, "cert.pem"))
		require.NoError(t, err)
		require.Equal(t, string(certs[ag]), string(raw), "the agent kept its certificate")
	}
	require.Equal(t, "running", f.getVM(vm.ID).ActualState, "the VM is still known")
	f.act("POST", "/v1/vms/"+vm.ID.String()+"/stop")
	f.waitActual(vm.ID, "stopped")
	require.Equal(t, "stopped", f.ag.simState(vm.ID))

	var sites struct {
		Items []struct {
			ID   uuid.UUID `json:"id"`
			Name string    `json:"name"`
		} `json:"items"`
	}
	f.srv.must(http.StatusOK, "GET", "/v1/sites", f.tn.key, nil).into(t, &sites)
	require.Len(t, sites.Items, 1, "the site created after the backup is not in it")
}

func serverCmdErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	out, err := exec.CommandContext(ctx, serverBin, args...).CombinedOutput()
	return string(out), err
}

func serverCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := serverCmdErr(args...)
	require.NoError(t, err, "%s", out)
}
