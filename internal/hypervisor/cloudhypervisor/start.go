package cloudhypervisor

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
)

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
