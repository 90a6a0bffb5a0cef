package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kubedoio/n-kudo/internal/agent/doctor"
)

// errNotReady: doctor found a blocker (exit status 1).
var errNotReady = errors.New("this host cannot run VMs yet")

func newDoctorCmd() *cobra.Command {
	var (
		o      doctor.Options
		output string
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check that this host can run VMs (preflight, before enrolling)",
		Long: `doctor checks /dev/kvm, the Cloud Hypervisor binary and its version, the
right to create bridges and TAP devices (in a throwaway network namespace),
the image, state and runtime directories, the server and its CA (the
enrolled agent's, or --server with --ca-fingerprint), the clock against the
server, and the NetBird CLI. It prints a table (or -o json) and exits 1,
with a one-line fix per blocker, when the host cannot run VMs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %q: want table or json", output)
			}
			r := doctor.Run(cmd.Context(), o)
			var err error
			if output == "json" {
				err = r.WriteJSON(cmd.OutOrStdout())
			} else {
				err = r.WriteTable(cmd.OutOrStdout())
			}
			if err != nil {
				return err
			}
			if !r.OK {
				return errNotReady
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Server, "server", "", "server to check when not enrolled, https://HOST:PORT")
	f.StringVar(&o.CAFingerprint, "ca-fingerprint", "", "SHA-256 fingerprint of the server CA (with --server)")
	f.StringVar(&o.CAFile, "ca-file", "", "server CA certificate (PEM), instead of --ca-fingerprint")
	f.StringVar(&o.StateDir, "state-dir", envOr(envStateDir, defaultStateDir()), "agent state directory [NKUDO_STATE_DIR]")
	f.StringVar(&o.RuntimeDir, "runtime-dir", envOr(envRuntimeDir, filepath.Join(defaultStateDir(), "runtime")), "directory for VM runtime files [NKUDO_RUNTIME_DIR]")
	f.StringArrayVar(&o.ImageDirs, "image-dir", defaultImageDirs(), "image directory to check (repeatable) [NKUDO_IMAGE_DIRS]")
	f.StringVar(&o.CloudHypervisorBin, "cloud-hypervisor-bin", "", "Cloud Hypervisor binary (default: cloud-hypervisor on PATH)")
	f.StringVar(&o.NetBirdBin, "netbird-bin", "netbird", "NetBird client binary")
	f.BoolVar(&o.NetBirdRequired, "netbird-enabled", false, "the agent will run with --netbird-enabled: a missing NetBird is a blocker")
	f.StringVar(&o.KVMDevice, "kvm-device", "/dev/kvm", "KVM device node")
	_ = f.MarkHidden("kvm-device")
	f.StringVarP(&output, "output", "o", "table", "output: table or json")
	return cmd
}
