package cloudhypervisor

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/hypervisor"
)

// Stop shuts the VM down: it asks the guest first (vm.power-button) and
// waits up to StopGrace for it to power off, then stops the vCPUs
// (vm.shutdown, which in Cloud Hypervisor is a hard stop with no ACPI:
// vm_shutdown in vmm/src/lib.rs). A guest that powers off ends its VMM
// (status 0); Start then makes a new one. Stopping a failed VM records
// it as stopped, shutting it down first if its VMM still runs it; a VM
// that never came up (its create failed) has nothing to stop: the stop
// succeeds and the VM stays failed with its reason.
func (p *Provider) Stop(ctx context.Context, id uuid.UUID) error {
	return p.apply(ctx, id, hypervisor.OpStop, "stopping", func(ctx context.Context, v *vm, from hypervisor.State) error {
		log := p.log.With(slog.String(keyVM, id.String()))
		if !v.provisioned {
			log.Info("stop of a vm that never came up: nothing to stop; it stays failed", slog.String(keyError, v.rec.Error))
			return errNoop
		}
		if !p.probe(v).alive {
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, p.sock)
		info, err := v.client.info(cctx)
		cancel()
		switch {
		case err != nil && (from == hypervisor.StateFailed || isNotCreated(err) || !p.settleExit(v, err).alive):
			return nil
		case err != nil:
			return fmt.Errorf("%w: reading vm info: %w%s", ErrVMM, err, p.exitNote(v))
		case info.State == chRunning:
			return p.shutdownGuest(ctx, log, v)
		case info.State == chPaused || info.State == chBreakPoint:
			// A paused guest cannot answer the power button.
			return p.call(ctx, v, "/vm.shutdown")
		}
		return nil // Created or Shutdown: not running
	})
}

// shutdownGuest presses the power button, waits for the guest, and stops
// it hard when it does not power off within the grace period. Must be
// called with v.mu held.
func (p *Provider) shutdownGuest(ctx context.Context, log *slog.Logger, v *vm) error {
	if err := p.call(ctx, v, "/vm.power-button"); err != nil {
		log.Warn("power button refused; stopping the vm hard", slog.String(keyError, err.Error()))
	} else if p.waitGuestOff(ctx, log, v) {
		return nil
	} else {
		log.Warn("guest did not power off in time; stopping it hard", slog.Duration("grace", p.grace))
	}
	if !p.probe(v).alive {
		return nil
	}
	return p.call(ctx, v, "/vm.shutdown")
}

// waitGuestOff polls, for at most StopGrace, until the VMM exits (a guest
// power-off ends it) or its VM is no longer running (a VMM that stays up,
// as with --no-shutdown). It reports whether the guest went off.
func (p *Provider) waitGuestOff(ctx context.Context, log *slog.Logger, v *vm) bool {
	wctx, cancel := context.WithTimeout(ctx, p.grace)
	defer cancel()
	t := time.NewTicker(5 * pollInterval)
	defer t.Stop()
	for {
		if st := p.probe(v); !st.alive {
			log.Info("guest powered off; its vmm ended", slog.Int(keyPID, v.rec.PID), slog.String("exit", orGone(st.exit)))
			return true
		}
		ictx, icancel := context.WithTimeout(wctx, p.sock)
		info, err := v.client.info(ictx)
		icancel()
		if err == nil && info.State != chRunning {
			return true
		}
		select {
		case <-wctx.Done():
			return false
		case <-t.C:
		}
	}
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
		if p.waitGone(ctx, v) == nil {
			return nil
		}
		log.Warn("vmm did not exit; killing it", slog.Duration("waited", p.shutdown))
	}
	if err := kill(v.rec.PID, v.paths.APISocket); err != nil {
		return err
	}
	if err := p.waitGone(ctx, v); err != nil {
		return fmt.Errorf("%w: vmm %d survived SIGKILL: %w", ErrVMM, v.rec.PID, err)
	}
	return nil
}

// waitGone polls until the VM's VMM is gone, for at most ShutdownTimeout,
// remembering how it ended.
func (p *Provider) waitGone(ctx context.Context, v *vm) error {
	ctx, cancel := context.WithTimeout(ctx, p.shutdown)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if !p.probe(v).alive {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
