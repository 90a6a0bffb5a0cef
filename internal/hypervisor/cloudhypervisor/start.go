package cloudhypervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/hypervisor"
)

// Start boots the VM (vm.boot). A failed VM is brought back first: its
// create is completed if it never finished, its TAP re-made if it is
// gone, its VMM restarted if it died or exited after a guest power-off,
// and the VM defined again if the VMM no longer holds it.
func (p *Provider) Start(ctx context.Context, id uuid.UUID) error {
	return p.apply(ctx, id, hypervisor.OpStart, "starting", func(ctx context.Context, v *vm, _ hypervisor.State) error {
		if !v.provisioned {
			if err := p.provision(ctx, v); err != nil {
				return err
			}
		} else if err := p.prepareBoot(ctx, v); err != nil {
			return err
		}
		return p.bootVM(ctx, v)
	})
}

// prepareBoot brings a provisioned VM to where vm.boot can run: TAP on the
// bridge, VMM answering, VM defined. Must be called with v.mu held.
func (p *Provider) prepareBoot(ctx context.Context, v *vm) error {
	if err := p.ensureTAP(ctx, v); err != nil {
		return err
	}
	if err := p.ensureVMM(ctx, p.log.With(slog.String(keyVM, v.rec.Spec.ID.String())), v); err != nil {
		return err
	}
	return p.ensureDefined(ctx, v)
}

// bootVM issues vm.boot. Cloud Hypervisor validates the config and opens
// the payload and disks only now (Vm::new and Vm::boot, called from
// vm_boot in vmm/src/lib.rs), so a vm.create that succeeded can still
// fail here; and from v53 a VM whose boot failed answers every later
// vm.boot with "VM is already created". So a refused boot fails the VM
// with the VMM's message and deletes its definition: a retried Start
// defines it afresh. Must be called with v.mu held.
func (p *Provider) bootVM(ctx context.Context, v *vm) error {
	// A boot after a vm.shutdown truncates the serial file.
	p.rotateConsole(v)
	cctx, cancel := context.WithTimeout(ctx, p.boot)
	err := v.client.put(cctx, "/vm.boot", nil)
	cancel()
	if err == nil {
		return nil
	}
	if !p.probe(v).alive {
		return fmt.Errorf("%w: booting: %w%s", ErrVMM, err, p.exitNote(v))
	}
	err = fmt.Errorf("%w: booting: %w", ErrVMM, err)
	p.discardVM(ctx, v)
	if serr := p.setState(v, hypervisor.StateFailed, err.Error()); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// discardVM deletes the VM from its VMM after a failed boot. On v53 the
// first vm.delete of such a VM fails (its shutdown is an invalid
// Created→Shutdown transition) yet drops it, so a second one is tried;
// a VMM that still will not let go is stopped, and Start starts a new
// one. Must be called with v.mu held.
func (p *Provider) discardVM(ctx context.Context, v *vm) {
	log := p.log.With(slog.String(keyVM, v.rec.Spec.ID.String()), slog.Int(keyPID, v.rec.PID))
	// The caller's context may be what expired; cleaning up must not.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.sock+p.shutdown)
	defer cancel()
	for range 2 {
		err := p.call(ctx, v, "/vm.delete")
		if err == nil {
			log.Info("deleted the vm from its vmm after a failed boot; a retry defines it again")
			return
		}
		log.Warn("deleting vm after a failed boot", slog.String(keyError, err.Error()))
	}
	if err := p.stopVMM(ctx, v, false); err != nil {
		log.Warn("stopping vmm after a failed boot", slog.String(keyError, err.Error()))
	}
}

// Reboot restarts a running VM (vm.reboot), keeping the console history:
// the VMM truncates the serial file when it reboots.
func (p *Provider) Reboot(ctx context.Context, id uuid.UUID) error {
	return p.apply(ctx, id, hypervisor.OpReboot, "rebooting", func(ctx context.Context, v *vm, _ hypervisor.State) error {
		p.rotateConsole(v)
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
