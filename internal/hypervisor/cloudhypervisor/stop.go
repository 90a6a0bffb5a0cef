package cloudhypervisor

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
)

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
