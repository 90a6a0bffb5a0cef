package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubedoio/n-kudo/internal/agent/enroll"
	"github.com/kubedoio/n-kudo/internal/netbird"
)

// NetBirdOptions configures the agent's NetBird membership from the
// `nkudo-agent run --netbird-*` flags.
type NetBirdOptions struct {
	// Enabled turns NetBird on; off, the state is always "disabled".
	Enabled bool
	// Bin is the netbird client binary; a missing one is reported as
	// "not-installed", not a startup failure.
	Bin string
	// AutoJoin runs `netbird up` with the setup key delivered at
	// enrollment when the peer is not connected.
	AutoJoin bool
	// Hostname is passed to `netbird up`; empty leaves NetBird's own.
	Hostname string
	// StateDir holds the setup key and management URL from enrollment.
	StateDir string
	// Probe, when set, checks reachability through the mesh.
	Probe  *netbird.Probe
	Logger *slog.Logger
}

// NewNetBird returns the Manager that reports NetBird state in hello and
// heartbeats (it is a NetBirdSource) and, once its Run is started by the
// caller, reconciles membership. The management URL comes from the state
// directory, where enrollment stored it.
func NewNetBird(o NetBirdOptions) (*netbird.Manager, error) {
	mo := netbird.ManagerOptions{Enabled: o.Enabled, Logger: o.Logger}
	if !o.Enabled {
		return netbird.NewManager(mo)
	}
	mgmt, err := os.ReadFile(filepath.Join(o.StateDir, enroll.NetBirdManagementFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading netbird management url: %w", err)
	}
	mo.Client = netbird.NewCLI(netbird.CLIOptions{Bin: o.Bin, Logger: o.Logger})
	mo.AutoJoin = o.AutoJoin
	mo.SetupKey = netbird.SetupKeyFile{Path: filepath.Join(o.StateDir, enroll.NetBirdSetupKeyFile)}
	mo.ManagementURL = strings.TrimSpace(string(mgmt))
	mo.Hostname = o.Hostname
	mo.Probe = o.Probe
	m, err := netbird.NewManager(mo)
	if err != nil {
		return nil, fmt.Errorf("configuring netbird: %w", err)
	}
	return m, nil
}
