package cloudhypervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agent/statefile"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/vmnet"
)

// BinaryName is the VMM executable looked up on PATH when no binary is
// configured.
const BinaryName = "cloud-hypervisor"

// Defaults for Options.
const (
	DefaultBootTimeout     = 30 * time.Second
	DefaultSocketTimeout   = 10 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultStopGrace is how long Stop waits for a guest to power off
	// after the power button before it stops the VM hard.
	DefaultStopGrace = 30 * time.Second
	// MaxTombstones bounds how many deleted VM ids are remembered.
	MaxTombstones = 1024
)

// maxSocketPath is the longest Unix socket path the kernel accepts
// (sun_path is 108 bytes including the terminating NUL).
const maxSocketPath = 107

// tombstoneFile, in the runtime directory, remembers deleted VM ids so
// replayed operations on them are answered consistently after a restart.
const tombstoneFile = "deleted.json"

// recordVersion is the layout version of state.json.
const recordVersion = 1

// Log keys.
const (
	keyVM     = "vm_id"
	keyPID    = "pid"
	keyPath   = "path"
	keyBytes  = "bytes"
	keyMethod = "method"
	keyError  = "error"
	keyState  = "state"
)

// Sentinel errors.
var (
	// ErrNoBinary: no Cloud Hypervisor binary configured or on PATH.
	ErrNoBinary = errors.New("cloud-hypervisor binary not found")
	// ErrVMM: the VMM process failed to start, answer, or stay up.
	ErrVMM = errors.New("cloud-hypervisor vmm failure")
	// ErrBadRuntimeDir: the runtime directory is unusable.
	ErrBadRuntimeDir = errors.New("unusable runtime directory")
)

// errNoop, from an operation's step, means it succeeded without changing
// the VM: apply records nothing.
var errNoop = errors.New("nothing to do")

// Network is the host side of VM networking: a TAP device per VM on the
// bridge. *vmnet.Manager implements it; tests without root pass their own.
type Network interface {
	// EnsureTAP creates the TAP, attached to the bridge and up; an
	// existing one is kept.
	EnsureTAP(ctx context.Context, tap vmnet.TAP) error
	// DeleteTAP removes the TAP; a missing one is not an error.
	DeleteTAP(ctx context.Context, name string) error
}

// Options configures a Provider.
type Options struct {
	// Binary is the cloud-hypervisor executable (--cloud-hypervisor-bin);
	// empty means look it up on PATH.
	Binary string
	// RuntimeDir holds one directory per VM. Required.
	RuntimeDir string
	// Bridge is the bridge TAPs attach to; empty means vmnet.DefaultBridge.
	// Used only when Network is nil.
	Bridge string
	// Firmware boots VMs whose spec has no kernel (hypervisor-fw or
	// CLOUDHV.fd); such VMs fail to create when it is empty.
	Firmware string
	// Network creates and removes TAPs; nil means a vmnet.Manager on Bridge
	// in the agent's network namespace.
	Network Network
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// BootTimeout bounds vm.create and vm.boot calls.
	BootTimeout time.Duration
	// SocketTimeout bounds the wait for a new VMM's API socket to answer
	// vmm.ping, and every other API call.
	SocketTimeout time.Duration
	// ShutdownTimeout bounds the wait for a VMM to exit after
	// vmm.shutdown before it is killed.
	ShutdownTimeout time.Duration
	// StopGrace bounds how long Stop waits for the guest to power off
	// after vm.power-button before vm.shutdown stops it hard
	// (nkudo-agent --stop-grace); zero means DefaultStopGrace.
	StopGrace time.Duration
}

// Provider is the Cloud Hypervisor hypervisor.Provider. It is safe for
// concurrent use: operations on one VM are serialised, operations on
// different VMs run in parallel.
type Provider struct {
	binary   string
	dir      string
	firmware string
	network  Network
	ownNet   *vmnet.Manager // closed by Close when the Provider made it
	log      *slog.Logger
	boot     time.Duration
	sock     time.Duration
	shutdown time.Duration
	grace    time.Duration

	mu      sync.Mutex // guards the following
	vms     map[uuid.UUID]*vm
	tombs   map[uuid.UUID]time.Time
	exits   map[int]procState // how reaped VMM children ended, by pid
	version string
}

var _ hypervisor.Provider = (*Provider)(nil)

// vm is one VM the provider knows.
type vm struct {
	mu     sync.Mutex // serialises operations on the VM; guards the following
	rec    record
	paths  Paths
	client *client
	// provisioned is false while Create has not completed: the VM's files,
	// TAP and VMM may be partial or absent.
	provisioned bool
	gone        bool // deleted; the entry is being dropped
}

// record is state.json: what the provider knows about a VM across agent
// restarts.
type record struct {
	Version int               `json:"version"`
	Spec    hypervisor.VMSpec `json:"spec"`
	// State is the last state the provider put the VM in or observed.
	State     hypervisor.State `json:"state"`
	Error     string           `json:"error,omitempty"`
	PID       int              `json:"pid,omitempty"`
	TAP       string           `json:"tap"`
	MAC       string           `json:"mac"`
	UpdatedAt time.Time        `json:"updated_at"`
}

type tombstone struct {
	ID        uuid.UUID `json:"id"`
	DeletedAt time.Time `json:"deleted_at"`
}

// New returns a Provider on opts.RuntimeDir, re-adopting the VMs found
// there.
func New(opts Options) (*Provider, error) {
	p := &Provider{
		binary:   opts.Binary,
		dir:      opts.RuntimeDir,
		firmware: opts.Firmware,
		network:  opts.Network,
		log:      opts.Logger,
		boot:     opts.BootTimeout,
		sock:     opts.SocketTimeout,
		shutdown: opts.ShutdownTimeout,
		grace:    opts.StopGrace,
		vms:      make(map[uuid.UUID]*vm),
		tombs:    make(map[uuid.UUID]time.Time),
		exits:    make(map[int]procState),
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.log = p.log.With(slog.String("provider", hypervisor.KindCloudHypervisor))
	if p.boot <= 0 {
		p.boot = DefaultBootTimeout
	}
	if p.sock <= 0 {
		p.sock = DefaultSocketTimeout
	}
	if p.shutdown <= 0 {
		p.shutdown = DefaultShutdownTimeout
	}
	if p.grace <= 0 {
		p.grace = DefaultStopGrace
	}
	if p.binary == "" {
		bin, err := exec.LookPath(BinaryName)
		if err != nil {
			return nil, fmt.Errorf("opening cloud-hypervisor provider: %w: %w", ErrNoBinary, err)
		}
		p.binary = bin
	}
	if st, err := os.Stat(p.binary); err != nil || st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("opening cloud-hypervisor provider: %w: %s is not an executable file", ErrNoBinary, p.binary)
	}
	if p.dir == "" || !filepath.IsAbs(p.dir) {
		return nil, fmt.Errorf("opening cloud-hypervisor provider: %w: %q must be an absolute path", ErrBadRuntimeDir, p.dir)
	}
	p.dir = filepath.Clean(p.dir)
	if strings.Contains(p.dir, ",") {
		// The VMM's option parser splits --api-socket path=… on commas.
		return nil, fmt.Errorf("opening cloud-hypervisor provider: %w: %q contains a comma, which cloud-hypervisor's option parser would split the api socket path on", ErrBadRuntimeDir, p.dir)
	}
	if sock := PathsFor(p.dir, uuid.Nil, "").APISocket; len(sock) > maxSocketPath {
		return nil, fmt.Errorf("opening cloud-hypervisor provider: %w: %s makes api socket paths longer than %d bytes", ErrBadRuntimeDir, p.dir, maxSocketPath)
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening cloud-hypervisor provider: %w: %w", ErrBadRuntimeDir, err)
	}
	if p.network == nil {
		m, err := vmnet.New(vmnet.Options{Bridge: opts.Bridge})
		if err != nil {
			return nil, fmt.Errorf("opening cloud-hypervisor provider: %w", err)
		}
		p.network, p.ownNet = m, m
	}
	if err := p.adopt(); err != nil {
		p.Close()
		return nil, fmt.Errorf("opening cloud-hypervisor provider: %w", err)
	}
	return p, nil
}

// Close releases the provider's resources. VMs and their VMMs keep
// running: a Provider opened later on the same runtime directory adopts
// them.
func (p *Provider) Close() error {
	p.mu.Lock()
	vms := make([]*vm, 0, len(p.vms))
	for _, v := range p.vms {
		vms = append(vms, v)
	}
	p.mu.Unlock()
	for _, v := range vms {
		v.client.close()
	}
	if p.ownNet != nil {
		return p.ownNet.Close()
	}
	return nil
}

// Name returns hypervisor.KindCloudHypervisor.
func (p *Provider) Name() string { return hypervisor.KindCloudHypervisor }

// Capabilities reports the VMM's version (from --version, asked once).
func (p *Provider) Capabilities(ctx context.Context) (hypervisor.Capabilities, error) {
	p.mu.Lock()
	version := p.version
	p.mu.Unlock()
	if version == "" {
		caps, err := Probe(ctx, p.binary)
		if err != nil {
			return hypervisor.Capabilities{}, err
		}
		p.mu.Lock()
		p.version = caps.Version
		p.mu.Unlock()
		return caps, nil
	}
	return capabilities(version), nil
}

// Probe reports the capabilities of the cloud-hypervisor binary without
// starting a provider (no runtime dir, no VMs): `nkudo-agent hostfacts`
// uses it to describe a host before the agent runs.
func Probe(ctx context.Context, binary string) (hypervisor.Capabilities, error) {
	out, err := exec.CommandContext(ctx, binary, "--version").Output()
	if err != nil {
		return hypervisor.Capabilities{}, fmt.Errorf("reading cloud-hypervisor version: %w: %w", ErrVMM, err)
	}
	return capabilities(parseVersion(out)), nil
}

func capabilities(version string) hypervisor.Capabilities {
	return hypervisor.Capabilities{
		Kind:        hypervisor.KindCloudHypervisor,
		Version:     version,
		Simulated:   false,
		PauseResume: true,
		Reboot:      true,
	}
}

// parseVersion turns "cloud-hypervisor v43.0" into "v43.0".
func parseVersion(out []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(out), []byte("\n"))
	s := strings.TrimSpace(string(line))
	s = strings.TrimSpace(strings.TrimPrefix(s, BinaryName))
	return s
}

// KVMAvailable reports whether /dev/kvm exists as a device: without it the
// VMM starts but cannot boot a guest.
func KVMAvailable() bool {
	st, err := os.Stat("/dev/kvm")
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// lookup returns the VM entry, or nil.
func (p *Provider) lookup(id uuid.UUID) *vm {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.vms[id]
}

func (p *Provider) deleted(id uuid.UUID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.tombs[id]
	return ok
}

// setState records a state and persists it. Must be called with v.mu held.
func (p *Provider) setState(v *vm, s hypervisor.State, msg string) error {
	v.rec.State, v.rec.Error = s, msg
	return p.save(v)
}

func (p *Provider) save(v *vm) error {
	v.rec.UpdatedAt = time.Now().UTC()
	if err := statefile.Write(v.paths.StateFile, v.rec); err != nil {
		return fmt.Errorf("persisting vm state: %w", err)
	}
	return nil
}

// State reports one VM as the VMM sees it.
func (p *Provider) State(ctx context.Context, id uuid.UUID) (hypervisor.VMState, error) {
	v := p.lookup(id)
	if v == nil {
		if p.deleted(id) {
			return hypervisor.VMState{ID: id, State: hypervisor.StateDeleted}, nil
		}
		return hypervisor.VMState{}, fmt.Errorf("reading state of vm %s: %w", id, hypervisor.ErrNotFound)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.gone {
		return hypervisor.VMState{ID: id, State: hypervisor.StateDeleted}, nil
	}
	return p.observe(ctx, v), nil
}

// List reports every VM, tombstones included, ordered by id.
func (p *Provider) List(ctx context.Context) ([]hypervisor.VMState, error) {
	p.mu.Lock()
	ids := make([]uuid.UUID, 0, len(p.vms)+len(p.tombs))
	for id := range p.vms {
		ids = append(ids, id)
	}
	for id := range p.tombs {
		if _, ok := p.vms[id]; !ok {
			ids = append(ids, id)
		}
	}
	p.mu.Unlock()
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	out := make([]hypervisor.VMState, 0, len(ids))
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("listing vms: %w", err)
		}
		st, err := p.State(ctx, id)
		if errors.Is(err, hypervisor.ErrNotFound) {
			continue // deleted and forgotten meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("listing vms: %w", err)
		}
		out = append(out, st)
	}
	return out, nil
}

func (p *Provider) call(ctx context.Context, v *vm, path string) error {
	cctx, cancel := context.WithTimeout(ctx, p.sock)
	defer cancel()
	if err := v.client.put(cctx, path, nil); err != nil {
		return fmt.Errorf("%w: %w%s", ErrVMM, err, p.exitNote(v))
	}
	return nil
}

// apply runs one lifecycle operation: it observes the VM's actual state,
// decides with hypervisor.Transition (no-ops and invalid transitions are
// answered without touching the VMM), runs do, and records the result.
func (p *Provider) apply(ctx context.Context, id uuid.UUID, op hypervisor.Op, verb string,
	do func(context.Context, *vm, hypervisor.State) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s vm %s: %w", verb, id, err)
	}
	v := p.lookup(id)
	if v == nil {
		if p.deleted(id) {
			_, _, err := hypervisor.Transition(id, hypervisor.StateDeleted, op)
			return err
		}
		return fmt.Errorf("%s vm %s: %w", verb, id, hypervisor.ErrNotFound)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	from := hypervisor.StateDeleted
	if !v.gone {
		from = p.observe(ctx, v).State
	}
	to, noop, err := hypervisor.Transition(id, from, op)
	if err != nil || noop {
		return err
	}
	if err := do(ctx, v, from); errors.Is(err, errNoop) {
		return nil
	} else if err != nil {
		err = fmt.Errorf("%s vm %s: %w", verb, id, err)
		// A VMM that died under the call leaves the VM failed; otherwise
		// the VM is where it was and the error says why.
		if v.provisioned && v.rec.PID != 0 && !p.probe(v).alive {
			if serr := p.setState(v, hypervisor.StateFailed, err.Error()); serr != nil {
				err = errors.Join(err, serr)
			}
		}
		return err
	}
	if err := p.setState(v, to, ""); err != nil {
		return fmt.Errorf("%s vm %s: %w", verb, id, err)
	}
	return nil
}
