package cloudhypervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/kubedoio/n-kudo/internal/agent/statefile"
	"github.com/kubedoio/n-kudo/internal/cloudinit"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/vmnet"
)

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
		Hostname:   cloudinit.Hostname(spec.Name, "vm-"+spec.ID.String()), // the full id: a UUIDv7 prefix is a timestamp
		UserData:   spec.CloudInit.UserData,
		MAC:        v.rec.MAC,
	}
	if err := cloudinit.WriteFile(v.paths.Seed, seed); err != nil {
		return err
	}
	if err := p.ensureTAP(ctx, v); err != nil {
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
// Not created is 404 or, before Cloud Hypervisor v53, 500 naming
// VmNotCreated (isNotCreated).
func (p *Provider) ensureDefined(ctx context.Context, v *vm) error {
	cctx, cancel := context.WithTimeout(ctx, p.sock)
	_, err := v.client.info(cctx)
	cancel()
	switch {
	case err == nil:
		return nil
	case !isNotCreated(err):
		return fmt.Errorf("%w: reading vm info: %w%s", ErrVMM, err, p.exitNote(v))
	}
	// vm.create opens the serial file anew, truncating it: keep what the
	// last run of the VM wrote.
	p.rotateConsole(v)
	cctx, cancel = context.WithTimeout(ctx, p.boot)
	defer cancel()
	if err := v.client.put(cctx, "/vm.create", BuildVMConfig(v.rec.Spec, v.paths)); err != nil {
		return fmt.Errorf("%w: defining vm: %w%s", ErrVMM, err, p.exitNote(v))
	}
	return nil
}

// ensureTAP makes the VM's TAP exist, on the bridge and up. It runs
// before every VMM start and boot: a TAP that is gone (the host
// rebooted) would otherwise be created by the VMM itself, attached to no
// bridge, and the VM would boot without a network.
func (p *Provider) ensureTAP(ctx context.Context, v *vm) error {
	return p.network.EnsureTAP(ctx, vmnet.TAP{Name: v.rec.TAP, Owner: uint32(os.Geteuid()), Group: uint32(os.Getegid())})
}

// exitNote says how the VMM ended when a call failed because it died.
func (p *Provider) exitNote(v *vm) string {
	if st := p.probe(v); !st.alive {
		return fmt.Sprintf(" (vmm %d %s)%s", v.rec.PID, orGone(st.exit), p.tail(v))
	}
	return ""
}
