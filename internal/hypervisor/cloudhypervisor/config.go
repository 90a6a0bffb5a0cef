package cloudhypervisor

import (
	"path/filepath"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/vmnet"
	"github.com/kubedoio/n-kudo/internal/vmspec"
)

// The subset of Cloud Hypervisor's VmConfig (cloud-hypervisor.yaml) that
// the provider sets. Field names and JSON keys follow the API document;
// fields left out take the VMM's defaults.

// VmConfig is the body of PUT /vm.create, named after the API schema.
type VmConfig struct {
	Cpus    CpusConfig    `json:"cpus"`
	Memory  MemoryConfig  `json:"memory"`
	Payload PayloadConfig `json:"payload"`
	Disks   []DiskConfig  `json:"disks"`
	Net     []NetConfig   `json:"net"`
	Rng     RngConfig     `json:"rng"`
	Serial  ConsoleConfig `json:"serial"`
	Console ConsoleConfig `json:"console"`
}

// CpusConfig is the VM's vCPU configuration.
type CpusConfig struct {
	BootVcpus int `json:"boot_vcpus"`
	MaxVcpus  int `json:"max_vcpus"`
}

// MemoryConfig is the VM's memory; Size is in bytes.
type MemoryConfig struct {
	Size int64 `json:"size"`
}

// PayloadConfig is what the VM boots: a kernel (with a command line) or a
// firmware that boots the disk.
type PayloadConfig struct {
	Firmware string `json:"firmware,omitempty"`
	Kernel   string `json:"kernel,omitempty"`
	Cmdline  string `json:"cmdline,omitempty"`
}

// DiskConfig is one block device.
type DiskConfig struct {
	Path      string `json:"path"`
	Readonly  bool   `json:"readonly,omitempty"`
	ImageType string `json:"image_type,omitempty"`
	ID        string `json:"id,omitempty"`
}

// NetConfig is one virtio-net device backed by a TAP.
type NetConfig struct {
	Tap string `json:"tap"`
	Mac string `json:"mac"`
	ID  string `json:"id,omitempty"`
}

// RngConfig is the virtio-rng device's entropy source.
type RngConfig struct {
	Src string `json:"src"`
}

// ConsoleConfig is a serial port or virtio console (SerialConfig and
// ConsoleConfig in the API share these fields).
type ConsoleConfig struct {
	Mode string `json:"mode"`
	File string `json:"file,omitempty"`
}

// Console modes used here (ConsoleMode in the API document).
const (
	ConsoleModeOff  = "Off"
	ConsoleModeFile = "File"
)

// DefaultCmdline is the kernel command line when a spec gives a kernel but
// no command line: serial console (which the provider logs to a file) and
// the first partition of the root disk.
const DefaultCmdline = "console=ttyS0 root=/dev/vda1 rw"

// Device ids, so the VMM's device tree and logs name them meaningfully.
const (
	diskRootID = "root"
	diskSeedID = "cidata"
	netID      = "net0"
	rngSource  = "/dev/urandom"
)

// File names inside a VM's runtime directory.
const (
	fileAPISocket = "api.sock"
	filePID       = "pid"
	fileVMMLog    = "vmm.log"
	fileConsole   = "console.log"
	fileDisk      = "disk.raw"
	fileSeed      = "seed.iso"
	fileSpec      = "spec.json"
	fileState     = "state.json"
)

// Paths are a VM's runtime files, and the host firmware used to boot VMs
// without a kernel.
type Paths struct {
	Dir        string
	APISocket  string
	PIDFile    string
	VMMLog     string
	ConsoleLog string
	Disk       string
	Seed       string
	SpecFile   string
	StateFile  string
	// Firmware is the firmware image (e.g. hypervisor-fw or CLOUDHV.fd)
	// for specs without a kernel.
	Firmware string
}

// PathsFor lays out the runtime directory of a VM.
func PathsFor(runtimeDir string, id uuid.UUID, firmware string) Paths {
	dir := filepath.Join(runtimeDir, id.String())
	return Paths{
		Dir:        dir,
		APISocket:  filepath.Join(dir, fileAPISocket),
		PIDFile:    filepath.Join(dir, filePID),
		VMMLog:     filepath.Join(dir, fileVMMLog),
		ConsoleLog: filepath.Join(dir, fileConsole),
		Disk:       filepath.Join(dir, fileDisk),
		Seed:       filepath.Join(dir, fileSeed),
		SpecFile:   filepath.Join(dir, fileSpec),
		StateFile:  filepath.Join(dir, fileState),
		Firmware:   firmware,
	}
}

// MACOf is the guest MAC of a spec, as the VMM reads it: its own in the
// canonical lower-case colon form (vmspec.CanonicalMAC; VMSpec.Validate
// refuses the forms Cloud Hypervisor's parser would answer 400 to), or
// one derived from its id.
func MACOf(spec hypervisor.VMSpec) string {
	if spec.MAC != "" {
		if mac, err := vmspec.CanonicalMAC(spec.MAC); err == nil {
			return mac
		}
		return spec.MAC // refused by VMSpec.Validate before it reaches the VMM
	}
	return vmnet.MACFor(spec.ID).String()
}

// BuildVMConfig is the complete VmConfig for a VM. It is a pure function of
// the spec and the paths: the same VM always gets the same config, which
// is what makes a retried vm.create safe and the config testable against
// the API document.
func BuildVMConfig(spec hypervisor.VMSpec, p Paths) VmConfig {
	payload := PayloadConfig{Firmware: p.Firmware}
	if spec.Kernel != "" {
		cmdline := spec.Cmdline
		if cmdline == "" {
			cmdline = DefaultCmdline
		}
		payload = PayloadConfig{Kernel: spec.Kernel, Cmdline: cmdline}
	}
	return VmConfig{
		Cpus:    CpusConfig{BootVcpus: spec.VCPUs, MaxVcpus: spec.VCPUs},
		Memory:  MemoryConfig{Size: int64(spec.MemoryMiB) << 20},
		Payload: payload,
		Disks: []DiskConfig{
			{Path: p.Disk, ID: diskRootID},
			// The seed is a raw ISO image; saying so stops the VMM from
			// probing it, and the guest has no business writing to it.
			{Path: p.Seed, Readonly: true, ImageType: "Raw", ID: diskSeedID},
		},
		Net:     []NetConfig{{Tap: vmnet.TAPName(spec.ID), Mac: MACOf(spec), ID: netID}},
		Rng:     RngConfig{Src: rngSource},
		Serial:  ConsoleConfig{Mode: ConsoleModeFile, File: p.ConsoleLog},
		Console: ConsoleConfig{Mode: ConsoleModeOff},
	}
}
