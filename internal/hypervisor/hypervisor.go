package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/vmspec"
)

// Sentinel errors every Provider returns (wrapped with context).
var (
	// ErrNotFound: no VM with that id is known to the provider.
	ErrNotFound = errors.New("vm not found")
	// ErrInvalidTransition: the operation is not allowed in the VM's
	// current state. The error is a *TransitionError naming both states.
	ErrInvalidTransition = errors.New("invalid vm state transition")
	// ErrAlreadyExists: a VM with that id exists with a different spec.
	ErrAlreadyExists = errors.New("vm already exists with a different spec")
	// ErrInvalidSpec: the VM spec is unusable (see VMSpec.Validate).
	ErrInvalidSpec = errors.New("invalid vm spec")
)

// Provider kinds.
const (
	KindCloudHypervisor = "cloud-hypervisor"
	KindSim             = "sim"
)

// Provider is a VMM backend. Every method takes a context that bounds the
// call; VMs themselves outlive the call (and the agent process) and are
// re-adopted by a provider opened on the same runtime directory.
//
// Implementations are safe for concurrent use and follow the state machine
// documented in the package comment.
type Provider interface {
	// Name is the provider's kind, e.g. "cloud-hypervisor" or "sim".
	Name() string
	// Capabilities describes the backend for host facts and for the
	// server's choice of actions.
	Capabilities(ctx context.Context) (Capabilities, error)
	// Create defines the VM without booting it. It is a no-op when the VM
	// exists with the same spec.
	Create(ctx context.Context, spec VMSpec) error
	Start(ctx context.Context, id uuid.UUID) error
	Stop(ctx context.Context, id uuid.UUID) error
	Reboot(ctx context.Context, id uuid.UUID) error
	Pause(ctx context.Context, id uuid.UUID) error
	Resume(ctx context.Context, id uuid.UUID) error
	// Delete stops the VM if needed and removes it and its runtime files.
	// It is a no-op for an unknown or already deleted VM.
	Delete(ctx context.Context, id uuid.UUID) error
	// State reports one VM; ErrNotFound for an unknown id.
	State(ctx context.Context, id uuid.UUID) (VMState, error)
	// List reports every VM the provider knows, deleted tombstones
	// included, ordered by id.
	List(ctx context.Context) ([]VMState, error)
}

// Capabilities describes a Provider.
type Capabilities struct {
	// Kind is KindCloudHypervisor or KindSim.
	Kind string `json:"kind"`
	// Version is the VMM's version, as it reports it.
	Version string `json:"version,omitempty"`
	// Simulated is true when no real VM runs: every view labels such hosts.
	Simulated bool `json:"simulated"`
	// PauseResume is true when Pause and Resume are supported.
	PauseResume bool `json:"pause_resume"`
	// Reboot is true when Reboot is supported.
	Reboot bool `json:"reboot"`
	// Unavailable says why the hypervisor cannot run VMs on this host;
	// empty when it can (see NewUnavailable).
	Unavailable string `json:"unavailable,omitempty"`
}

// CloudInit is the NoCloud seed given to the guest.
type CloudInit struct {
	UserData string `json:"user_data,omitempty"`
}

// VMSpec is what Create needs to define a VM.
type VMSpec struct {
	ID        uuid.UUID `json:"id"`
	Name      string    `json:"name"`
	VCPUs     int       `json:"vcpus"`
	MemoryMiB int       `json:"memory_mib"`
	// Kernel is the path of a kernel image on the host; empty means boot
	// the disk image through firmware.
	Kernel  string `json:"kernel,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	// DiskImage is the path of the root disk image on the host.
	DiskImage string    `json:"disk_image"`
	CloudInit CloudInit `json:"cloud_init"`
	// MAC is the guest NIC's address; empty lets the provider derive one.
	MAC string `json:"mac,omitempty"`
}

// Spec limits, from internal/vmspec (the one rule shared with the API,
// the console and the CLI).
const (
	MinVCPUs      = vmspec.MinVCPUs
	MaxVCPUs      = vmspec.MaxVCPUs
	MinMemoryMiB  = vmspec.MinMemoryMiB
	MaxMemoryMiB  = vmspec.MaxMemoryMiB
	MaxNameLen    = vmspec.MaxNameLen
	MaxUserData   = vmspec.MaxUserData
	MaxCmdlineLen = vmspec.MaxCmdlineLen
)

// Validate checks the spec without touching the host, with the rule the
// server applied (internal/vmspec): a plan that bypassed the server's
// check, or came from an older server, is refused the same way. A
// provider that needs files to exist checks that separately.
func (s VMSpec) Validate() error {
	err := vmspec.Spec{
		Name: s.Name, VCPUs: s.VCPUs, MemoryMiB: s.MemoryMiB, Kernel: s.Kernel, Cmdline: s.Cmdline,
		DiskImage: s.DiskImage, UserData: s.CloudInit.UserData, MAC: s.MAC,
	}.Validate()
	var problems []string
	if s.ID == uuid.Nil {
		problems = append(problems, "id is required")
	}
	for _, p := range vmspec.Problems(err) {
		if p.Field == vmspec.FieldName && legacyName(s.Name) {
			continue
		}
		problems = append(problems, p.Error())
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidSpec, strings.Join(problems, "; "))
	}
	return nil
}

// legacyName is the name form agents accepted before the server's RFC 1123
// rule was shared with them (letters of both cases, digits, '-', '_',
// '.'): VMs recorded on hosts under such names must still re-create
// idempotently. New names are held to the RFC 1123 rule by the server.
func legacyName(s string) bool {
	if s == "" || len(s) > MaxNameLen {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}

// State is a VM lifecycle state. The names match the wire protocol's and
// the store's VM state names.
type State string

// VM states.
const (
	StateCreating State = "creating"
	StateRunning  State = "running"
	StateStopped  State = "stopped"
	StatePaused   State = "paused"
	StateFailed   State = "failed"
	StateDeleted  State = "deleted"
)

// VMState is a VM's actual state as the provider sees it.
type VMState struct {
	ID    uuid.UUID `json:"id"`
	State State     `json:"state"`
	// Error says why the VM failed; set only with StateFailed.
	Error string `json:"error,omitempty"`
}

// Op is a lifecycle operation.
type Op string

// Operations.
const (
	OpCreate Op = "create"
	OpStart  Op = "start"
	OpStop   Op = "stop"
	OpReboot Op = "reboot"
	OpPause  Op = "pause"
	OpResume Op = "resume"
	OpDelete Op = "delete"
)

// TransitionError is the error behind ErrInvalidTransition.
type TransitionError struct {
	ID   uuid.UUID
	Op   Op
	From State
	// To is the state the operation would have led to.
	To State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("%s vm %s: %s: from %s to %s", e.Op, e.ID, ErrInvalidTransition, e.From, e.To)
}

// Is makes errors.Is(err, ErrInvalidTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrInvalidTransition }

// target is the state each operation leads to.
var target = map[Op]State{
	OpCreate: StateStopped,
	OpStart:  StateRunning,
	OpStop:   StateStopped,
	OpReboot: StateRunning,
	OpPause:  StatePaused,
	OpResume: StateRunning,
	OpDelete: StateDeleted,
}

// allowed lists, per current state, the operations that change it. The
// no-ops are decided in Transition.
var allowed = map[State]map[Op]bool{
	StateCreating: {OpDelete: true},
	StateStopped:  {OpStart: true, OpDelete: true},
	StateRunning:  {OpStop: true, OpReboot: true, OpPause: true, OpDelete: true},
	StatePaused:   {OpStop: true, OpResume: true, OpDelete: true},
	StateFailed:   {OpStart: true, OpStop: true, OpDelete: true},
	StateDeleted:  {},
}

// Transition decides the effect of op on a VM in state from: the resulting
// state, whether the call is a no-op, or a *TransitionError. Create's
// same-spec check is the caller's (Transition only sees states); for an
// existing VM Transition reports Create as a no-op, except on a tombstone.
func Transition(id uuid.UUID, from State, op Op) (to State, noop bool, err error) {
	to, ok := target[op]
	if !ok {
		return from, false, fmt.Errorf("%s vm %s: unknown operation", op, id)
	}
	if _, ok := allowed[from]; !ok {
		return from, false, fmt.Errorf("%s vm %s: unknown state %q", op, id, from)
	}
	switch {
	case op == OpCreate && from != StateDeleted:
		return from, true, nil
	case op == OpResume && from == StateRunning:
		// Resume's goal (running) already holds.
		return from, true, nil
	case op != OpReboot && from == to:
		return from, true, nil
	case allowed[from][op]:
		return to, false, nil
	}
	return from, false, &TransitionError{ID: id, Op: op, From: from, To: to}
}
