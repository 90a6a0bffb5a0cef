package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agent/statefile"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
)

// Version is the simulated VMM's version, reported in Capabilities.
const Version = "sim-1"

// StateFileName is the name of the file, in the runtime directory, that
// holds the simulated VMs.
const StateFileName = "sim-vms.json"

// DefaultMaxTombstones bounds how many deleted VMs are remembered. Enough
// to answer replays of recent deletes; old tombstones are forgotten so a
// long-running load test does not grow the state file forever.
const DefaultMaxTombstones = 1024

// ConsoleLogName is the file, in <runtime-dir>/<vm-id>/, where the
// simulator writes each VM's synthetic serial console: the same place the
// Cloud Hypervisor provider's VMM writes a real guest's, so console tails
// work the same way in `nkudo dev`.
const ConsoleLogName = "console.log"

// fileVersion is the layout version of the state file.
const fileVersion = 1

// ErrCorruptState is returned by Open when the state file cannot be used.
var ErrCorruptState = errors.New("sim state file unusable")

// Option configures a Provider.
type Option func(*Provider)

// WithClock sets the clock used to stamp state changes (tests).
func WithClock(now func() time.Time) Option {
	return func(p *Provider) { p.now = now }
}

// WithMaxTombstones sets how many deleted VMs are remembered (at least 1).
func WithMaxTombstones(n int) Option {
	return func(p *Provider) { p.maxTombstones = max(n, 1) }
}

// Provider is the simulated hypervisor.Provider. It is safe for concurrent
// use.
type Provider struct {
	path          string
	dir           string
	now           func() time.Time
	maxTombstones int

	mu  sync.Mutex // guards vms and serialises writes of the state file
	vms map[uuid.UUID]record
}

var _ hypervisor.Provider = (*Provider)(nil)

// record is one VM as persisted.
type record struct {
	Spec      hypervisor.VMSpec `json:"spec"`
	State     hypervisor.State  `json:"state"`
	Error     string            `json:"error,omitempty"`
	UpdatedAt time.Time         `json:"updated_at"`
}

type stateFile struct {
	Version int      `json:"version"`
	VMs     []record `json:"vms"`
}

// Open returns a Provider whose VMs live in runtimeDir, creating the
// directory if needed and re-adopting the VMs a previous Provider (or agent
// process) left there.
func Open(runtimeDir string, opts ...Option) (*Provider, error) {
	if runtimeDir == "" {
		return nil, errors.New("opening sim provider: runtime dir is required")
	}
	p := &Provider{
		path:          filepath.Join(runtimeDir, StateFileName),
		dir:           runtimeDir,
		now:           time.Now,
		maxTombstones: DefaultMaxTombstones,
		vms:           make(map[uuid.UUID]record),
	}
	for _, o := range opts {
		o(p)
	}
	if err := os.MkdirAll(runtimeDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating sim runtime dir %s: %w", runtimeDir, err)
	}
	// No Write can be in flight yet: clean what a crash left behind.
	if _, err := statefile.RemoveStale(p.path); err != nil {
		return nil, fmt.Errorf("opening sim provider: %w", err)
	}
	var sf stateFile
	err := statefile.Read(p.path, &sf)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return p, nil
	case err != nil:
		return nil, fmt.Errorf("opening sim provider: %w: %w", ErrCorruptState, err)
	}
	if sf.Version != fileVersion {
		return nil, fmt.Errorf("opening sim provider: %w: %s has version %d, want %d", ErrCorruptState, p.path, sf.Version, fileVersion)
	}
	for i, r := range sf.VMs {
		if err := checkRecord(r); err != nil {
			return nil, fmt.Errorf("opening sim provider: %w: vms[%d]: %w", ErrCorruptState, i, err)
		}
		p.vms[r.Spec.ID] = r
	}
	return p, nil
}

func checkRecord(r record) error {
	if err := r.Spec.Validate(); err != nil {
		return err
	}
	switch r.State {
	case hypervisor.StateCreating, hypervisor.StateRunning, hypervisor.StateStopped,
		hypervisor.StatePaused, hypervisor.StateFailed, hypervisor.StateDeleted:
		return nil
	}
	return fmt.Errorf("unknown state %q", r.State)
}

// Name returns hypervisor.KindSim.
func (p *Provider) Name() string { return hypervisor.KindSim }

// Capabilities reports a simulated backend that supports every operation.
func (p *Provider) Capabilities(ctx context.Context) (hypervisor.Capabilities, error) {
	if err := ctx.Err(); err != nil {
		return hypervisor.Capabilities{}, fmt.Errorf("reading sim capabilities: %w", err)
	}
	return hypervisor.Capabilities{
		Kind:        hypervisor.KindSim,
		Version:     Version,
		Simulated:   true,
		PauseResume: true,
		Reboot:      true,
	}, nil
}

// Create defines a stopped VM. The spec is validated like a real backend's,
// except that the image paths need not exist.
func (p *Provider) Create(ctx context.Context, spec hypervisor.VMSpec) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("creating vm %s: %w", spec.ID, err)
	}
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("creating vm %s: %w", spec.ID, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.vms[spec.ID]; ok {
		if _, _, err := hypervisor.Transition(spec.ID, old.State, hypervisor.OpCreate); err != nil {
			return err
		}
		if old.Spec != spec {
			return fmt.Errorf("creating vm %s: %w", spec.ID, hypervisor.ErrAlreadyExists)
		}
		return nil
	}
	return p.commit(spec.ID, nil, record{Spec: spec, State: hypervisor.StateStopped, UpdatedAt: p.now().UTC()})
}

// Start boots the VM.
func (p *Provider) Start(ctx context.Context, id uuid.UUID) error {
	return p.apply(ctx, id, hypervisor.OpStart, "starting")
}

// Stop shuts the VM down.
func (p *Provider) Stop(ctx context.Context, id uuid.UUID) error {
	return p.apply(ctx, id, hypervisor.OpStop, "stopping")
}

// Reboot restarts a running VM.
func (p *Provider) Reboot(ctx context.Context, id uuid.UUID) error {
	return p.apply(ctx, id, hypervisor.OpReboot, "rebooting")
}

// Pause pauses a running VM.
func (p *Provider) Pause(ctx context.Context, id uuid.UUID) error {
	return p.apply(ctx, id, hypervisor.OpPause, "pausing")
}

// Resume resumes a paused VM.
func (p *Provider) Resume(ctx context.Context, id uuid.UUID) error {
	return p.apply(ctx, id, hypervisor.OpResume, "resuming")
}

// Delete removes the VM, leaving a tombstone. Deleting an unknown VM is a
// no-op.
func (p *Provider) Delete(ctx context.Context, id uuid.UUID) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deleting vm %s: %w", id, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.vms[id]; !ok {
		return nil
	}
	return p.applyLocked(id, hypervisor.OpDelete, "deleting")
}

// Fail puts a VM in the failed state with reason as its error, as a real
// VMM crash would. It exists only in the simulator, for demos and for tests
// of how failures are reported; deleted VMs cannot fail.
func (p *Provider) Fail(ctx context.Context, id uuid.UUID, reason string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("failing vm %s: %w", id, err)
	}
	if reason == "" {
		reason = "simulated failure"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old, ok := p.vms[id]
	if !ok {
		return fmt.Errorf("failing vm %s: %w", id, hypervisor.ErrNotFound)
	}
	if old.State == hypervisor.StateDeleted {
		return &hypervisor.TransitionError{ID: id, Op: "fail", From: old.State, To: hypervisor.StateFailed}
	}
	next := old
	next.State, next.Error, next.UpdatedAt = hypervisor.StateFailed, reason, p.now().UTC()
	return p.commit(id, &old, next)
}

// State reports one VM, tombstones included.
func (p *Provider) State(ctx context.Context, id uuid.UUID) (hypervisor.VMState, error) {
	if err := ctx.Err(); err != nil {
		return hypervisor.VMState{}, fmt.Errorf("reading state of vm %s: %w", id, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.vms[id]
	if !ok {
		return hypervisor.VMState{}, fmt.Errorf("reading state of vm %s: %w", id, hypervisor.ErrNotFound)
	}
	return r.vmState(), nil
}

// List reports every VM, tombstones included, ordered by id.
func (p *Provider) List(ctx context.Context) ([]hypervisor.VMState, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("listing vms: %w", err)
	}
	p.mu.Lock()
	out := make([]hypervisor.VMState, 0, len(p.vms))
	for _, r := range p.vms {
		out = append(out, r.vmState())
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b hypervisor.VMState) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return out, nil
}

// Spec returns the spec a VM was created with.
func (p *Provider) Spec(id uuid.UUID) (hypervisor.VMSpec, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.vms[id]
	return r.Spec, ok
}

func (r record) vmState() hypervisor.VMState {
	return hypervisor.VMState{ID: r.Spec.ID, State: r.State, Error: r.Error}
}

func (p *Provider) apply(ctx context.Context, id uuid.UUID, op hypervisor.Op, verb string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s vm %s: %w", verb, id, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applyLocked(id, op, verb)
}

// applyLocked must be called with p.mu held.
func (p *Provider) applyLocked(id uuid.UUID, op hypervisor.Op, verb string) error {
	old, ok := p.vms[id]
	if !ok {
		return fmt.Errorf("%s vm %s: %w", verb, id, hypervisor.ErrNotFound)
	}
	to, noop, err := hypervisor.Transition(id, old.State, op)
	if err != nil {
		return err
	}
	if noop {
		return nil
	}
	next := old
	next.State, next.UpdatedAt = to, p.now().UTC()
	if to != hypervisor.StateFailed {
		next.Error = ""
	}
	if err := p.commit(id, &old, next); err != nil {
		return err
	}
	p.console(next, op)
	return nil
}

// consoleText is what a simulated guest "prints" on each operation. Every
// line says it is simulated, so nobody mistakes it for a real guest.
var consoleText = map[hypervisor.Op]string{
	hypervisor.OpStart:  "[simulated] nkudo sim guest %s booting\n[simulated] welcome to the simulated guest %s\n[simulated] %s login: ",
	hypervisor.OpReboot: "\n[simulated] reboot: restarting system\n[simulated] nkudo sim guest %s booting\n[simulated] welcome to the simulated guest %s\n[simulated] %s login: ",
	hypervisor.OpStop:   "\n[simulated] reboot: power down\n",
}

// console writes the synthetic console output of an operation to
// <runtime-dir>/<vm-id>/console.log, and removes that directory on
// delete. It is best effort: the console is a view of the guest, and a
// simulated state change must not fail because its decoration could not
// be written.
func (p *Provider) console(r record, op hypervisor.Op) {
	dir := filepath.Join(p.dir, r.Spec.ID.String())
	if op == hypervisor.OpDelete {
		_ = os.RemoveAll(dir)
		return
	}
	text, ok := consoleText[op]
	if !ok {
		return
	}
	if strings.Count(text, "%s") > 0 {
		text = fmt.Sprintf(text, r.Spec.Name, r.Spec.Name, r.Spec.Name)
	}
	if os.MkdirAll(dir, 0o700) != nil {
		return
	}
	f, err := os.OpenFile(filepath.Join(dir, ConsoleLogName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	_, _ = f.WriteString(text)
	_ = f.Close()
}

// commit stores next as the record of id and persists the whole set; if
// persisting fails the change is undone, so memory never claims a state the
// disk does not hold. old is nil for a new VM. Must be called with p.mu
// held.
func (p *Provider) commit(id uuid.UUID, old *record, next record) error {
	p.vms[id] = next
	dropped := p.pruneTombstones()
	if err := p.save(); err != nil {
		if old == nil {
			delete(p.vms, id)
		} else {
			p.vms[id] = *old
		}
		for _, r := range dropped {
			p.vms[r.Spec.ID] = r
		}
		return fmt.Errorf("persisting vm %s: %w", id, err)
	}
	return nil
}

// pruneTombstones forgets the oldest deleted VMs beyond the bound and
// returns them so a failed save can put them back. Must be called with
// p.mu held.
func (p *Provider) pruneTombstones() []record {
	var tombs []record
	for _, r := range p.vms {
		if r.State == hypervisor.StateDeleted {
			tombs = append(tombs, r)
		}
	}
	if len(tombs) <= p.maxTombstones {
		return nil
	}
	slices.SortFunc(tombs, func(a, b record) int {
		if c := a.UpdatedAt.Compare(b.UpdatedAt); c != 0 {
			return c
		}
		return bytes.Compare(a.Spec.ID[:], b.Spec.ID[:])
	})
	dropped := tombs[:len(tombs)-p.maxTombstones]
	for _, r := range dropped {
		delete(p.vms, r.Spec.ID)
	}
	return dropped
}

// save must be called with p.mu held. The whole file is rewritten: a host
// runs tens of VMs, not thousands, so a rewrite is a few kilobytes and keeps
// the file trivially consistent.
func (p *Provider) save() error {
	sf := stateFile{Version: fileVersion, VMs: make([]record, 0, len(p.vms))}
	for _, r := range p.vms {
		sf.VMs = append(sf.VMs, r)
	}
	slices.SortFunc(sf.VMs, func(a, b record) int { return bytes.Compare(a.Spec.ID[:], b.Spec.ID[:]) })
	return statefile.Write(p.path, sf)
}
