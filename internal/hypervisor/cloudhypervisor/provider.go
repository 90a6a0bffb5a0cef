package cloudhypervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agent/statefile"
	"github.com/kubedoio/n-kudo/internal/cloudinit"
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

	mu      sync.Mutex // guards the following
	vms     map[uuid.UUID]*vm
	tombs   map[uuid.UUID]time.Time
	exits   map[int]string // how reaped VMM children ended, by pid
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
		vms:      make(map[uuid.UUID]*vm),
		tombs:    make(map[uuid.UUID]time.Time),
		exits:    make(map[int]string),
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

// adopt loads the tombstones and every VM directory. No operation can be
// in flight yet.
func (p *Provider) adopt() error {
	tpath := filepath.Join(p.dir, tombstoneFile)
	if _, err := statefile.RemoveStale(tpath); err != nil {
		return err
	}
	var tombs []tombstone
	if err := statefile.Read(tpath, &tombs); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading tombstones: %w", err)
	}
	for _, t := range tombs {
		p.tombs[t.ID] = t.DeletedAt
	}
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadRuntimeDir, err)
	}
	for _, e := range entries {
		id, err := uuid.Parse(e.Name())
		if err != nil || !e.IsDir() || id.String() != e.Name() {
			continue // not ours
		}
		if err := p.adoptOne(id); err != nil {
			return err
		}
	}
	return nil
}

func (p *Provider) adoptOne(id uuid.UUID) error {
	paths := PathsFor(p.dir, id, p.firmware)
	log := p.log.With(slog.String(keyVM, id.String()))
	if _, err := statefile.RemoveStale(paths.StateFile); err != nil {
		return err
	}
	var rec record
	err := statefile.Read(paths.StateFile, &rec)
	if errors.Is(err, os.ErrNotExist) {
		// Create writes state.json right after making the directory; a
		// directory without one holds nothing worth keeping.
		log.Warn("removing vm directory without state", slog.String(keyPath, paths.Dir))
		if err := os.RemoveAll(paths.Dir); err != nil {
			return fmt.Errorf("removing stateless vm directory %s: %w", paths.Dir, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("adopting vm %s: %w", id, err)
	}
	if rec.Version != recordVersion || rec.Spec.ID != id {
		return fmt.Errorf("adopting vm %s: %s has version %d for vm %s", id, paths.StateFile, rec.Version, rec.Spec.ID)
	}
	v := &vm{rec: rec, paths: paths, client: newClient(paths.APISocket, p.sock), provisioned: rec.State != hypervisor.StateCreating}
	if pid, err := readPID(paths.PIDFile); err == nil && pid != 0 {
		v.rec.PID = pid
	}
	if v.rec.PID != 0 && probe(v.rec.PID, paths.APISocket).alive {
		ctx, cancel := context.WithTimeout(context.Background(), p.sock)
		pr, err := v.client.ping(ctx)
		cancel()
		if err == nil {
			log.Info("re-adopted vm", slog.Int(keyPID, v.rec.PID), slog.String("vmm_version", pr.Version))
		} else {
			log.Warn("vmm of vm is alive but not answering", slog.Int(keyPID, v.rec.PID), slog.String(keyError, err.Error()))
		}
	} else if v.rec.State != hypervisor.StateStopped && v.rec.State != hypervisor.StateCreating {
		log.Warn("vmm of vm is gone", slog.Int(keyPID, v.rec.PID), slog.String(keyState, string(v.rec.State)))
	}
	p.vms[id] = v
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

// Create defines the VM: runtime directory, disk copy, seed, TAP, VMM
// process and vm.create, each step skipped when its result exists. It
// leaves the VM stopped. When a step fails everything made so far is
// removed and the VM is reported failed until Create is retried or the VM
// deleted.
func (p *Provider) Create(ctx context.Context, spec hypervisor.VMSpec) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("creating vm %s: %w", spec.ID, err)
	}
	if p.deleted(spec.ID) {
		return &hypervisor.TransitionError{ID: spec.ID, Op: hypervisor.OpCreate, From: hypervisor.StateDeleted, To: hypervisor.StateStopped}
	}
	p.mu.Lock()
	v, ok := p.vms[spec.ID]
	if !ok {
		paths := PathsFor(p.dir, spec.ID, p.firmware)
		v = &vm{
			rec:   record{Version: recordVersion, Spec: spec, State: hypervisor.StateCreating, TAP: vmnet.TAPName(spec.ID), MAC: MACOf(spec)},
			paths: paths, client: newClient(paths.APISocket, p.sock),
		}
		p.vms[spec.ID] = v
	}
	p.mu.Unlock()

	v.mu.Lock()
	defer v.mu.Unlock()
	if v.gone {
		return &hypervisor.TransitionError{ID: spec.ID, Op: hypervisor.OpCreate, From: hypervisor.StateDeleted, To: hypervisor.StateStopped}
	}
	if v.rec.Spec != spec {
		return fmt.Errorf("creating vm %s: %w", spec.ID, hypervisor.ErrAlreadyExists)
	}
	if v.provisioned {
		return nil
	}
	if err := p.provision(ctx, v); err != nil {
		return fmt.Errorf("creating vm %s: %w", spec.ID, err)
	}
	return nil
}

// provision runs the create steps. Must be called with v.mu held.
func (p *Provider) provision(ctx context.Context, v *vm) error {
	log := p.log.With(slog.String(keyVM, v.rec.Spec.ID.String()))
	err := p.provisionSteps(ctx, log, v)
	if err == nil {
		v.provisioned = true
		return p.setState(v, hypervisor.StateStopped, "")
	}
	log.Warn("creating vm failed; removing what was made", slog.String(keyError, err.Error()))
	// Clean up with a fresh context: the caller's may be what expired.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.shutdown+p.sock)
	defer cancel()
	if cerr := p.teardown(cctx, v); cerr != nil {
		log.Error("cleaning up failed create", slog.String(keyError, cerr.Error()))
		err = errors.Join(err, cerr)
	}
	v.rec.State, v.rec.Error, v.rec.PID = hypervisor.StateFailed, err.Error(), 0
	return err
}

func (p *Provider) provisionSteps(ctx context.Context, log *slog.Logger, v *vm) error {
	spec := v.rec.Spec
	if err := checkFile("disk_image", spec.DiskImage); err != nil {
		return err
	}
	if spec.Kernel != "" {
		if err := checkFile("kernel", spec.Kernel); err != nil {
			return err
		}
	} else if p.firmware == "" {
		return fmt.Errorf("%w: vm has no kernel and no firmware is configured", hypervisor.ErrInvalidSpec)
	} else if err := checkFile("firmware", p.firmware); err != nil {
		return err
	}
	if err := os.MkdirAll(v.paths.Dir, 0o700); err != nil {
		return fmt.Errorf("creating runtime directory: %w", err)
	}
	v.rec.State = hypervisor.StateCreating
	if err := p.save(v); err != nil {
		return err
	}
	if err := statefile.Write(v.paths.SpecFile, spec); err != nil {
		return fmt.Errorf("writing spec: %w", err)
	}
	if err := cloneFile(ctx, log, spec.DiskImage, v.paths.Disk); err != nil {
		return err
	}
	seed := cloudinit.Config{
		InstanceID: spec.ID.String(),
		Hostname:   cloudinit.Hostname(spec.Name, "vm-"+spec.ID.String()[:8]),
		UserData:   spec.CloudInit.UserData,
		MAC:        v.rec.MAC,
	}
	if err := cloudinit.WriteFile(v.paths.Seed, seed); err != nil {
		return err
	}
	if err := p.network.EnsureTAP(ctx, vmnet.TAP{Name: v.rec.TAP, Owner: uint32(os.Geteuid()), Group: uint32(os.Getegid())}); err != nil {
		return err
	}
	if err := p.ensureVMM(ctx, log, v); err != nil {
		return err
	}
	return p.ensureDefined(ctx, v)
}

func checkFile(what, path string) error {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %s %s: %w", hypervisor.ErrInvalidSpec, what, path, err)
	case !st.Mode().IsRegular():
		return fmt.Errorf("%w: %s %s is not a regular file", hypervisor.ErrInvalidSpec, what, path)
	}
	return nil
}

// ensureVMM makes sure the VM's VMM process runs and answers, starting it
// if needed. Must be called with v.mu held.
func (p *Provider) ensureVMM(ctx context.Context, log *slog.Logger, v *vm) error {
	if v.rec.PID != 0 && p.probe(v).alive {
		pctx, cancel := context.WithTimeout(ctx, p.sock)
		_, err := v.client.ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		// Alive but deaf: replace it rather than wait forever.
		log.Warn("replacing unresponsive vmm", slog.Int(keyPID, v.rec.PID), slog.String(keyError, err.Error()))
		if err := p.stopVMM(ctx, v, false); err != nil {
			return err
		}
	}
	pid, err := launch(p.binary, v.paths)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVMM, err)
	}
	v.rec.PID = pid
	if err := statefile.WriteBytes(v.paths.PIDFile, []byte(strconv.Itoa(pid)+"\n")); err != nil {
		_ = kill(pid, v.paths.APISocket)
		return fmt.Errorf("writing pid file: %w", err)
	}
	if err := p.save(v); err != nil {
		_ = kill(pid, v.paths.APISocket)
		return err
	}
	log.Info("started vmm", slog.Int(keyPID, pid))
	if err := p.waitReady(ctx, v); err != nil {
		_ = kill(pid, v.paths.APISocket)
		p.probe(v) // reap it
		return err
	}
	return nil
}

// waitReady polls vmm.ping on the new VMM's socket until it answers, the
// process dies, or SocketTimeout passes.
func (p *Provider) waitReady(ctx context.Context, v *vm) error {
	ctx, cancel := context.WithTimeout(ctx, p.sock)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var last error
	for {
		if st := p.probe(v); !st.alive {
			return fmt.Errorf("%w: vmm %d %s before its api socket answered%s", ErrVMM, v.rec.PID, orGone(st.exit), p.tail(v))
		}
		if _, err := os.Stat(v.paths.APISocket); err == nil {
			if _, err := v.client.ping(ctx); err == nil {
				return nil
			} else {
				last = err
			}
		}
		select {
		case <-ctx.Done():
			if last == nil {
				return fmt.Errorf("%w: api socket %s did not appear within %s", ErrVMM, v.paths.APISocket, p.sock)
			}
			return fmt.Errorf("%w: api socket did not answer within %s: %w", ErrVMM, p.sock, last)
		case <-t.C:
		}
	}
}

func orGone(exit string) string {
	if exit == "" {
		return "is gone"
	}
	return exit
}

// tail quotes the end of the VMM's log for error messages.
func (p *Provider) tail(v *vm) string {
	b, err := os.ReadFile(v.paths.VMMLog)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	b = bytes.TrimSpace(b)
	if len(b) > 512 {
		b = b[len(b)-512:]
	}
	return "; vmm log: " + string(b)
}

// ensureDefined issues vm.create unless the VMM already holds the VM.
func (p *Provider) ensureDefined(ctx context.Context, v *vm) error {
	cctx, cancel := context.WithTimeout(ctx, p.sock)
	_, err := v.client.info(cctx)
	cancel()
	switch {
	case err == nil:
		return nil
	case statusOf(err) != http.StatusNotFound:
		return fmt.Errorf("%w: reading vm info: %w", ErrVMM, err)
	}
	cctx, cancel = context.WithTimeout(ctx, p.boot)
	defer cancel()
	if err := v.client.put(cctx, "/vm.create", BuildVMConfig(v.rec.Spec, v.paths)); err != nil {
		return fmt.Errorf("%w: defining vm: %w%s", ErrVMM, err, p.exitNote(v))
	}
	return nil
}

// exitNote says how the VMM ended when a call failed because it died.
func (p *Provider) exitNote(v *vm) string {
	if st := p.probe(v); !st.alive {
		return fmt.Sprintf(" (vmm %d %s)%s", v.rec.PID, orGone(st.exit), p.tail(v))
	}
	return ""
}

// probe checks the VM's VMM, remembering how a reaped child ended.
func (p *Provider) probe(v *vm) procState {
	st := probe(v.rec.PID, v.paths.APISocket)
	if !st.alive && st.exit == "" {
		p.mu.Lock()
		_, known := p.exits[v.rec.PID]
		p.mu.Unlock()
		if !known {
			st.exit = settle(v.rec.PID)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if st.exit != "" {
		p.exits[v.rec.PID] = st.exit
	} else if !st.alive {
		st.exit = p.exits[v.rec.PID]
	}
	return st
}

// stopVMM asks the VMM to exit (vmm.shutdown, after vm.delete when
// graceful), waits ShutdownTimeout, then kills its process group.
func (p *Provider) stopVMM(ctx context.Context, v *vm, graceful bool) error {
	if v.rec.PID == 0 || !p.probe(v).alive {
		return nil
	}
	log := p.log.With(slog.String(keyVM, v.rec.Spec.ID.String()), slog.Int(keyPID, v.rec.PID))
	if graceful {
		cctx, cancel := context.WithTimeout(ctx, p.sock)
		if err := v.client.put(cctx, "/vm.delete", nil); err != nil {
			log.Warn("vm.delete failed", slog.String(keyError, err.Error()))
		}
		if err := v.client.put(cctx, "/vmm.shutdown", nil); err != nil {
			log.Warn("vmm.shutdown failed", slog.String(keyError, err.Error()))
		}
		cancel()
		wctx, cancel := context.WithTimeout(ctx, p.shutdown)
		_, err := waitExit(wctx, v.rec.PID, v.paths.APISocket)
		cancel()
		if err == nil {
			p.probe(v)
			return nil
		}
		log.Warn("vmm did not exit; killing it", slog.Duration("waited", p.shutdown))
	}
	if err := kill(v.rec.PID, v.paths.APISocket); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, p.shutdown)
	defer cancel()
	if _, err := waitExit(wctx, v.rec.PID, v.paths.APISocket); err != nil {
		return fmt.Errorf("%w: vmm %d survived SIGKILL: %w", ErrVMM, v.rec.PID, err)
	}
	return nil
}

// teardown removes everything a VM has on the host: VMM, TAP, runtime
// directory. Each part is skipped when already gone.
func (p *Provider) teardown(ctx context.Context, v *vm) error {
	if err := p.stopVMM(ctx, v, true); err != nil {
		return err
	}
	if err := p.network.DeleteTAP(ctx, v.rec.TAP); err != nil {
		return err
	}
	if err := os.RemoveAll(v.paths.Dir); err != nil {
		return fmt.Errorf("removing runtime directory: %w", err)
	}
	return nil
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

// observe reports the VM's actual state, asking the VMM. Must be called
// with v.mu held.
func (p *Provider) observe(ctx context.Context, v *vm) hypervisor.VMState {
	id := v.rec.Spec.ID
	if !v.provisioned {
		return hypervisor.VMState{ID: id, State: v.rec.State, Error: v.rec.Error}
	}
	st := p.probe(v)
	if !st.alive {
		if v.rec.State == hypervisor.StateStopped {
			return hypervisor.VMState{ID: id, State: hypervisor.StateStopped}
		}
		msg := v.rec.Error
		if v.rec.State != hypervisor.StateFailed || msg == "" {
			msg = fmt.Sprintf("vmm process %d %s", v.rec.PID, orGone(st.exit))
		}
		if v.rec.State != hypervisor.StateFailed || v.rec.Error != msg {
			if err := p.setState(v, hypervisor.StateFailed, msg); err != nil {
				p.log.Warn("persisting failed state", slog.String(keyVM, id.String()), slog.String(keyError, err.Error()))
			}
		}
		return hypervisor.VMState{ID: id, State: hypervisor.StateFailed, Error: msg}
	}
	cctx, cancel := context.WithTimeout(ctx, p.sock)
	info, err := v.client.info(cctx)
	cancel()
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			return hypervisor.VMState{ID: id, State: hypervisor.StateFailed, Error: "vmm holds no vm definition"}
		}
		return hypervisor.VMState{ID: id, State: hypervisor.StateFailed, Error: fmt.Sprintf("reading vm info: %v", err)}
	}
	var s hypervisor.State
	switch info.State {
	case chCreated, chShutdown:
		s = hypervisor.StateStopped
	case chRunning:
		s = hypervisor.StateRunning
	case chPaused, chBreakPoint:
		s = hypervisor.StatePaused
	default:
		return hypervisor.VMState{ID: id, State: hypervisor.StateFailed, Error: fmt.Sprintf("vmm reports unknown state %q", info.State)}
	}
	if v.rec.State != s || v.rec.Error != "" {
		if err := p.setState(v, s, ""); err != nil {
			p.log.Warn("persisting observed state", slog.String(keyVM, id.String()), slog.String(keyError, err.Error()))
		}
	}
	return hypervisor.VMState{ID: id, State: s}
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

// Start boots the VM (vm.boot). A failed VM is brought back first: its
// create is completed if it never finished, its VMM restarted if it died.
func (p *Provider) Start(ctx context.Context, id uuid.UUID) error {
	return p.apply(ctx, id, hypervisor.OpStart, "starting", func(ctx context.Context, v *vm, from hypervisor.State) error {
		log := p.log.With(slog.String(keyVM, id.String()))
		if !v.provisioned {
			if err := p.provision(ctx, v); err != nil {
				return err
			}
		} else {
			if err := p.ensureVMM(ctx, log, v); err != nil {
				return err
			}
			if err := p.ensureDefined(ctx, v); err != nil {
				return err
			}
		}
		cctx, cancel := context.WithTimeout(ctx, p.boot)
		defer cancel()
		if err := v.client.put(cctx, "/vm.boot", nil); err != nil {
			return fmt.Errorf("%w: booting: %w%s", ErrVMM, err, p.exitNote(v))
		}
		return nil
	})
}

// Stop shuts the VM down (vm.shutdown); the VMM stays up so Start can boot
// it again. Stopping a failed VM only records it as stopped, shutting it
// down first if its VMM still runs it.
func (p *Provider) Stop(ctx context.Context, id uuid.UUID) error {
	return p.apply(ctx, id, hypervisor.OpStop, "stopping", func(ctx context.Context, v *vm, from hypervisor.State) error {
		if from == hypervisor.StateFailed {
			if !v.provisioned || !p.probe(v).alive {
				return nil
			}
			cctx, cancel := context.WithTimeout(ctx, p.sock)
			defer cancel()
			if info, err := v.client.info(cctx); err != nil || (info.State != chRunning && info.State != chPaused) {
				return nil
			}
		}
		return p.call(ctx, v, "/vm.shutdown")
	})
}

// Reboot restarts a running VM (vm.reboot).
func (p *Provider) Reboot(ctx context.Context, id uuid.UUID) error {
	return p.apply(ctx, id, hypervisor.OpReboot, "rebooting", func(ctx context.Context, v *vm, _ hypervisor.State) error {
		return p.call(ctx, v, "/vm.reboot")
	})
}

// Pause pauses a running VM's vCPUs (vm.pause).
func (p *Provider) Pause(ctx context.Context, id uuid.UUID) error {
	return p.apply(ctx, id, hypervisor.OpPause, "pausing", func(ctx context.Context, v *vm, _ hypervisor.State) error {
		return p.call(ctx, v, "/vm.pause")
	})
}

// Resume resumes a paused VM (vm.resume).
func (p *Provider) Resume(ctx context.Context, id uuid.UUID) error {
	return p.apply(ctx, id, hypervisor.OpResume, "resuming", func(ctx context.Context, v *vm, _ hypervisor.State) error {
		return p.call(ctx, v, "/vm.resume")
	})
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
	if err := do(ctx, v, from); err != nil {
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

// Delete removes the VM: vm.delete and vmm.shutdown (killing the VMM if it
// does not exit), its TAP and its runtime directory. It leaves a tombstone
// so replays on the id are answered as deleted.
func (p *Provider) Delete(ctx context.Context, id uuid.UUID) error {
	v := p.lookup(id)
	if v == nil {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.gone {
		return nil
	}
	if err := p.teardown(ctx, v); err != nil {
		return fmt.Errorf("deleting vm %s: %w", id, err)
	}
	v.gone = true
	v.client.close()
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.vms, id)
	delete(p.exits, v.rec.PID)
	p.tombs[id] = time.Now().UTC()
	if err := p.saveTombstonesLocked(); err != nil {
		return fmt.Errorf("deleting vm %s: %w", id, err)
	}
	p.log.Info("deleted vm", slog.String(keyVM, id.String()))
	return nil
}

// saveTombstonesLocked persists the newest MaxTombstones tombstones. Must
// be called with p.mu held.
func (p *Provider) saveTombstonesLocked() error {
	list := make([]tombstone, 0, len(p.tombs))
	for id, at := range p.tombs {
		list = append(list, tombstone{ID: id, DeletedAt: at})
	}
	slices.SortFunc(list, func(a, b tombstone) int {
		if c := b.DeletedAt.Compare(a.DeletedAt); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	for _, t := range list[min(len(list), MaxTombstones):] {
		delete(p.tombs, t.ID)
	}
	list = list[:min(len(list), MaxTombstones)]
	if err := statefile.Write(filepath.Join(p.dir, tombstoneFile), list); err != nil {
		return fmt.Errorf("persisting tombstones: %w", err)
	}
	return nil
}
