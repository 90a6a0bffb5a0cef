package hypervisor

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// ErrUnavailable: the hypervisor cannot run VMs on this host; the error
// says why (see NewUnavailable).
var ErrUnavailable = errors.New("hypervisor unavailable")

// Unavailable is the Provider of an agent whose chosen hypervisor cannot
// run on the host (binary missing, no /dev/kvm): the agent still connects
// and reports the reason in its host facts, and every VM action fails
// with that reason, instead of the agent exiting and being restarted in a
// loop, or silently simulating.
type Unavailable struct {
	kind, reason string
}

// NewUnavailable returns the Provider for a hypervisor of kind that cannot
// run, for reason (one line an operator can act on).
func NewUnavailable(kind, reason string) *Unavailable {
	return &Unavailable{kind: kind, reason: reason}
}

func (u *Unavailable) err(op Op, id uuid.UUID) error {
	return fmt.Errorf("%s vm %s: %w: %s cannot run on this host: %s", op, id, ErrUnavailable, u.kind, u.reason)
}

// Name implements Provider.
func (u *Unavailable) Name() string { return u.kind }

// Capabilities reports the kind and the reason; no operation is offered.
func (u *Unavailable) Capabilities(context.Context) (Capabilities, error) {
	return Capabilities{Kind: u.kind, Unavailable: u.reason}, nil
}

// Create implements Provider; it always fails with the reason.
func (u *Unavailable) Create(_ context.Context, spec VMSpec) error { return u.err(OpCreate, spec.ID) }

// Start implements Provider; it always fails with the reason.
func (u *Unavailable) Start(_ context.Context, id uuid.UUID) error { return u.err(OpStart, id) }

// Stop implements Provider; it always fails with the reason.
func (u *Unavailable) Stop(_ context.Context, id uuid.UUID) error { return u.err(OpStop, id) }

// Reboot implements Provider; it always fails with the reason.
func (u *Unavailable) Reboot(_ context.Context, id uuid.UUID) error { return u.err(OpReboot, id) }

// Pause implements Provider; it always fails with the reason.
func (u *Unavailable) Pause(_ context.Context, id uuid.UUID) error { return u.err(OpPause, id) }

// Resume implements Provider; it always fails with the reason.
func (u *Unavailable) Resume(_ context.Context, id uuid.UUID) error { return u.err(OpResume, id) }

// Delete implements Provider; it always fails with the reason: VMs this
// host ran before may still exist, and only a working provider can remove
// them.
func (u *Unavailable) Delete(_ context.Context, id uuid.UUID) error { return u.err(OpDelete, id) }

// State knows no VM.
func (u *Unavailable) State(_ context.Context, id uuid.UUID) (VMState, error) {
	return VMState{}, fmt.Errorf("reading state of vm %s: %w", id, ErrNotFound)
}

// List knows no VM.
func (u *Unavailable) List(context.Context) ([]VMState, error) { return nil, nil }
