// Command nkudo-agent runs on each edge host: it enrolls once, keeps one
// mutual-TLS WebSocket session to nkudo-server and runs microVMs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/kubedoio/n-kudo/internal/agent"
	"github.com/kubedoio/n-kudo/internal/agent/doctor"
	"github.com/kubedoio/n-kudo/internal/agent/enroll"
	"github.com/kubedoio/n-kudo/internal/agent/hostfacts"
	"github.com/kubedoio/n-kudo/internal/agent/identity"
	"github.com/kubedoio/n-kudo/internal/agent/imagedir"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/hypervisor/cloudhypervisor"
	"github.com/kubedoio/n-kudo/internal/hypervisor/sim"
	"github.com/kubedoio/n-kudo/internal/netbird"
	"github.com/kubedoio/n-kudo/internal/version"
	"github.com/kubedoio/n-kudo/internal/vmnet"
)

// Environment fallbacks for flags (SPEC "Contract details").
const (
	envEnrollToken = "NKUDO_ENROLL_TOKEN"
	envStateDir    = "NKUDO_STATE_DIR"
	envRuntimeDir  = "NKUDO_RUNTIME_DIR"
	envServer      = "NKUDO_SERVER"
	envImageDirs   = "NKUDO_IMAGE_DIRS"
)

// errUnknownHypervisor: --hypervisor names no provider of this build.
var errUnknownHypervisor = errors.New("unknown hypervisor")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "nkudo-agent:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "nkudo-agent",
		Short:         "The n-kudo edge agent",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version.String("nkudo-agent"))
		},
	})
	root.AddCommand(newEnrollCmd(), newRunCmd(), newHostfactsCmd(), newDoctorCmd())
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func defaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/nkudo-agent"
	}
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "nkudo-agent")
	}
	return ".nkudo-agent"
}

// envList splits a comma-separated environment variable.
func envList(key string) []string {
	var out []string
	for v := range strings.SplitSeq(os.Getenv(key), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func newEnrollCmd() *cobra.Command {
	var o enroll.Options
	var servers []string
	cmd := &cobra.Command{
		Use:   "enroll",
		Short: "Enroll this host with nkudo-server (once)",
		Long: `Generates this agent's private key locally (it never leaves the host),
sends a certificate request with the enrollment token and stores the
issued identity in the state directory. Trust the server with --ca-file
or with the CA fingerprint nkudo-server prints (--ca-fingerprint).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Token == "" {
				o.Token = os.Getenv(envEnrollToken)
			}
			if len(servers) > 0 {
				o.Server, o.Servers = servers[0], servers[1:]
			}
			info, err := enroll.Enroll(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "enrolled agent %s (host %s, site %s) with %s; identity stored in %s\n",
				info.AgentID, info.HostID, info.SiteID, info.Server, o.StateDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&servers, "server", envList(envServer),
		"server base URL, https://HOST:PORT; repeat it for each replica: enrolls through the first, stores all for failover [NKUDO_SERVER, comma-separated]")
	f.StringVar(&o.Token, "token", "", "enrollment token [NKUDO_ENROLL_TOKEN]")
	f.StringVar(&o.StateDir, "state-dir", envOr(envStateDir, defaultStateDir()), "agent state directory [NKUDO_STATE_DIR]")
	f.StringVar(&o.CAFile, "ca-file", "", "server CA certificate (PEM) to trust for enrollment")
	f.StringVar(&o.CAFingerprint, "ca-fingerprint", "", "SHA-256 fingerprint of the server CA (as nkudo-server prints it)")
	f.StringVar(&o.Hostname, "hostname", "", "host name to register (default: this machine's)")
	f.BoolVar(&o.Force, "force", false, "replace an existing identity in the state directory")
	return cmd
}

type runConfig struct {
	stateDir, runtimeDir, hypervisor string
	servers                          []string
	chBin, netbirdBin                string
	bridge, firmware                 string
	imageDirs                        []string
	kvmDevice                        string
	netbirdEnabled                   bool
	netbirdAutoJoin                  bool
	netbirdHostname                  string
	netbirdProbe                     netbird.Probe
	logLevel                         string
	// stopGrace: how long a stop waits for the guest to power off after
	// the ACPI power button before the VM is stopped hard.
	stopGrace time.Duration
	// vmmSocketTimeout: how long a new VMM has to open its API socket
	// (and each API call has to answer); tests running a stand-in VMM
	// under a race build on a loaded machine need more than a real VMM.
	vmmSocketTimeout time.Duration
}

// Validate checks the configuration, refusing what this build cannot do
// rather than pretending.
func (c runConfig) Validate() error {
	switch {
	case c.stateDir == "":
		return errors.New("--state-dir is required")
	case c.runtimeDir == "":
		return errors.New("--runtime-dir is required")
	}
	switch c.hypervisor {
	case hypervisor.KindSim, hypervisor.KindCloudHypervisor:
	default:
		return fmt.Errorf("--hypervisor %q: %w: want cloud-hypervisor or sim", c.hypervisor, errUnknownHypervisor)
	}
	// Cloud Hypervisor splits its options on ',' (--api-socket path=…).
	for flag, dir := range map[string]string{"--state-dir": c.stateDir, "--runtime-dir": c.runtimeDir} {
		if strings.Contains(dir, ",") {
			return fmt.Errorf("%s %q must not contain ','", flag, dir)
		}
	}
	if _, err := imagedir.New(c.imageDirs); err != nil {
		return fmt.Errorf("--image-dir: %w", err)
	}
	if c.stopGrace <= 0 || c.stopGrace > maxStopGrace {
		return fmt.Errorf("--stop-grace %s: want more than 0 and at most %s", c.stopGrace, maxStopGrace)
	}
	if c.vmmSocketTimeout <= 0 || c.vmmSocketTimeout > maxStopGrace {
		return fmt.Errorf("--vmm-socket-timeout %s: want more than 0 and at most %s", c.vmmSocketTimeout, maxStopGrace)
	}
	if c.netbirdEnabled && c.netbirdProbe.Type != "" {
		if err := c.netbirdProbe.Validate(); err != nil {
			return fmt.Errorf("--netbird-probe-*: %w", err)
		}
	}
	return nil
}

// maxStopGrace bounds --stop-grace (and --vmm-socket-timeout) well
// inside the executor's action timeout, so a stop always has time for its
// hard stop.
const maxStopGrace = 5 * time.Minute

func newRunCmd() *cobra.Command {
	var c runConfig
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent: keep the session to the server and run microVMs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.Validate(); err != nil {
				return err
			}
			return run(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.stateDir, "state-dir", envOr(envStateDir, defaultStateDir()), "agent state directory [NKUDO_STATE_DIR]")
	f.StringSliceVar(&c.servers, "server", envList(envServer),
		"server base URL, https://HOST:PORT; repeatable: the agent fails over between them (default: the servers given at enrollment) [NKUDO_SERVER, comma-separated]")
	f.StringVar(&c.runtimeDir, "runtime-dir", envOr(envRuntimeDir, filepath.Join(defaultStateDir(), "runtime")), "directory for VM runtime files [NKUDO_RUNTIME_DIR]")
	f.StringVar(&c.hypervisor, "hypervisor", hypervisor.KindCloudHypervisor, "VMM backend: cloud-hypervisor, or sim (simulated: no real VM runs)")
	f.StringArrayVar(&c.imageDirs, "image-dir", defaultImageDirs(), "directory VM disk images and kernels must be in (repeatable) [NKUDO_IMAGE_DIRS, colon-separated]")
	f.StringVar(&c.kvmDevice, "kvm-device", "/dev/kvm", "KVM device node (cloud-hypervisor)")
	_ = f.MarkHidden("kvm-device")
	f.StringVar(&c.chBin, "cloud-hypervisor-bin", "", "Cloud Hypervisor binary (default: cloud-hypervisor on PATH)")
	f.StringVar(&c.bridge, "bridge", vmnet.DefaultBridge, "bridge the VMs' TAP devices attach to (cloud-hypervisor)")
	f.StringVar(&c.firmware, "firmware", "", "firmware (hypervisor-fw or CLOUDHV.fd) for VMs created without a kernel (cloud-hypervisor)")
	f.StringVar(&c.netbirdBin, "netbird-bin", "netbird", "NetBird client binary")
	f.BoolVar(&c.netbirdEnabled, "netbird-enabled", false, "join the NetBird mesh and report its state")
	f.BoolVar(&c.netbirdAutoJoin, "netbird-auto-join", true, "run `netbird up` with the enrollment setup key when not connected")
	f.StringVar(&c.netbirdHostname, "netbird-hostname", "", "host name to join NetBird with (default: the enrolled host name)")
	f.StringVar(&c.netbirdProbe.Type, "netbird-probe-type", "", "reachability probe through the mesh: http or ping (empty: none)")
	f.StringVar(&c.netbirdProbe.Target, "netbird-probe-target", "", "probe target: a URL for http, a host for ping")
	f.DurationVar(&c.netbirdProbe.Timeout, "netbird-probe-timeout", 0, "probe timeout (default 5s)")
	f.IntVar(&c.netbirdProbe.HTTPMin, "netbird-probe-http-min", 0, "lowest accepted HTTP status of the probe (default 200)")
	f.IntVar(&c.netbirdProbe.HTTPMax, "netbird-probe-http-max", 0, "highest accepted HTTP status of the probe (default 399)")
	f.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.DurationVar(&c.stopGrace, "stop-grace", cloudhypervisor.DefaultStopGrace, "how long a stop waits for the guest to power off after the ACPI power button before stopping it hard (cloud-hypervisor)")
	f.DurationVar(&c.vmmSocketTimeout, "vmm-socket-timeout", cloudhypervisor.DefaultSocketTimeout, "how long a new VMM has to open its API socket, and each API call to answer (cloud-hypervisor)")
	_ = f.MarkHidden("vmm-socket-timeout")
	return cmd
}

func run(ctx context.Context, c runConfig) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	id, err := identity.Load(c.stateDir)
	if err != nil {
		return err
	}
	pv, closePV, err := openProvider(c, logger)
	if err != nil {
		return err
	}
	defer func() {
		if err := closePV(); err != nil {
			logger.Warn("closing hypervisor provider", "err", err)
		}
	}()
	caps, err := pv.Capabilities(ctx)
	if err != nil {
		return fmt.Errorf("reading hypervisor capabilities: %w", err)
	}
	facts := agent.NewHostFacts(hostfacts.Options{
		Mounts: []string{"/", c.runtimeDir}, Hostname: id.Info.Hostname,
		Hypervisor: caps, AgentVersion: version.Version,
	})
	hostname := c.netbirdHostname
	if hostname == "" {
		hostname = id.Info.Hostname
	}
	var probe *netbird.Probe
	if c.netbirdProbe.Type != "" {
		probe = &c.netbirdProbe
	}
	nb, err := agent.NewNetBird(agent.NetBirdOptions{
		Enabled: c.netbirdEnabled, Bin: c.netbirdBin, AutoJoin: c.netbirdAutoJoin, Hostname: hostname,
		StateDir: c.stateDir, Probe: probe, Logger: logger.With("component", "netbird"),
	})
	if err != nil {
		return err
	}
	images, err := imagedir.New(c.imageDirs)
	if err != nil {
		return fmt.Errorf("--image-dir: %w", err)
	}
	a, err := agent.New(agent.Options{
		StateDir: c.stateDir, RuntimeDir: c.runtimeDir, Identity: id, Provider: pv, Images: images, Facts: facts,
		AgentVersion: version.Version, Logger: logger, NetBird: nb, Servers: c.servers,
	})
	if err != nil {
		return err
	}
	servers := c.servers
	if len(servers) == 0 {
		servers = id.Info.ServerList()
	}
	logger.Info("agent starting", "agent_id", id.Info.AgentID, "servers", strings.Join(servers, ","),
		"hypervisor", caps.Kind, "vmm_version", caps.Version, "simulated", caps.Simulated,
		"image_dirs", strings.Join(c.imageDirs, ":"), "version", version.Version)
	if caps.Unavailable != "" {
		logger.Error("the hypervisor cannot run VMs on this host; VM actions will fail until it is fixed and the agent restarted (see `nkudo-agent doctor`)",
			"hypervisor", caps.Kind, "reason", caps.Unavailable)
	}
	// The NetBird reconcile loop lives as long as the agent's session
	// loop; either ending stops the other.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.Run(gctx) })
	if c.netbirdEnabled {
		g.Go(func() error {
			if err := nb.Run(gctx); err != nil && gctx.Err() == nil {
				return fmt.Errorf("running netbird: %w", err)
			}
			return nil
		})
	}
	return g.Wait()
}

// openProvider opens the hypervisor provider the flags name, on the
// runtime directory, with the function that releases it on shutdown (VMs
// keep running: the next agent re-adopts them).
func openProvider(c runConfig, logger *slog.Logger) (hypervisor.Provider, func() error, error) {
	dir, err := filepath.Abs(c.runtimeDir)
	if err != nil {
		return nil, nil, fmt.Errorf("--runtime-dir %q: %w", c.runtimeDir, err)
	}
	switch c.hypervisor {
	case hypervisor.KindSim:
		pv, err := sim.Open(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("opening sim hypervisor: %w", err)
		}
		return pv, func() error { return nil }, nil
	case hypervisor.KindCloudHypervisor:
		return openCloudHypervisor(c, dir, logger)
	}
	return nil, nil, fmt.Errorf("--hypervisor %q: %w: want cloud-hypervisor or sim", c.hypervisor, errUnknownHypervisor)
}

// openCloudHypervisor opens the Cloud Hypervisor provider, or, when the
// host cannot run it (binary missing, no usable /dev/kvm), a provider that
// reports why in the host facts and fails every VM action with it: the
// agent stays connected instead of exiting in a restart loop, and never
// falls back to simulating.
func openCloudHypervisor(c runConfig, dir string, logger *slog.Logger) (hypervisor.Provider, func() error, error) {
	noop := func() error { return nil }
	bin := c.chBin
	if bin == "" {
		bin = cloudhypervisor.BinaryName
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, problem := range []string{doctor.VMMProblem(ctx, bin), doctor.KVMProblem(c.kvmDevice)} {
		if problem != "" {
			return hypervisor.NewUnavailable(hypervisor.KindCloudHypervisor, problem), noop, nil
		}
	}
	pv, err := cloudhypervisor.New(cloudhypervisor.Options{
		Binary: c.chBin, RuntimeDir: dir, Bridge: c.bridge, Firmware: c.firmware, Logger: logger,
		StopGrace: c.stopGrace, SocketTimeout: c.vmmSocketTimeout,
	})
	if err != nil {
		return hypervisor.NewUnavailable(hypervisor.KindCloudHypervisor, fmt.Sprintf("opening cloud-hypervisor: %v", err)), noop, nil
	}
	return pv, pv.Close, nil
}

// defaultImageDirs is NKUDO_IMAGE_DIRS split on ':', or the default.
func defaultImageDirs() []string {
	var dirs []string
	for _, d := range strings.Split(os.Getenv(envImageDirs), ":") {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		return []string{imagedir.DefaultDir}
	}
	return dirs
}

func newHostfactsCmd() *cobra.Command {
	var runtimeDir, kind, chBin string
	cmd := &cobra.Command{
		Use:   "hostfacts",
		Short: "Print this host's facts as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			caps, err := probeHypervisor(cmd.Context(), kind, chBin)
			if err != nil {
				return err
			}
			mounts := []string{"/"}
			if runtimeDir != "" {
				mounts = append(mounts, runtimeDir)
			}
			f, err := hostfacts.Collect(cmd.Context(), hostfacts.Options{
				Mounts: mounts, AgentVersion: version.Version, Hypervisor: caps,
			})
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(f)
		},
	}
	cmd.Flags().StringVar(&runtimeDir, "runtime-dir", "", "also report the file system of this directory")
	cmd.Flags().StringVar(&kind, "hypervisor", hypervisor.KindCloudHypervisor, "VMM backend to describe: cloud-hypervisor, or sim (simulated)")
	cmd.Flags().StringVar(&chBin, "cloud-hypervisor-bin", "cloud-hypervisor", "Cloud Hypervisor binary")
	return cmd
}

// probeHypervisor describes the backend `run --hypervisor` would use,
// without opening it (no runtime dir is touched).
func probeHypervisor(ctx context.Context, kind, chBin string) (hypervisor.Capabilities, error) {
	switch kind {
	case hypervisor.KindSim:
		return hypervisor.Capabilities{Kind: hypervisor.KindSim, Version: sim.Version, Simulated: true, PauseResume: true, Reboot: true}, nil
	case hypervisor.KindCloudHypervisor:
		caps, err := cloudhypervisor.Probe(ctx, chBin)
		if err != nil {
			// Reported, as the running agent reports it, not hidden.
			return hypervisor.Capabilities{Kind: hypervisor.KindCloudHypervisor, Unavailable: err.Error()}, nil
		}
		return caps, nil
	}
	return hypervisor.Capabilities{}, fmt.Errorf("--hypervisor %q: %w: want cloud-hypervisor or sim", kind, errUnknownHypervisor)
}
