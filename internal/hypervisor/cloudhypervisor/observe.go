package cloudhypervisor

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/kubedoio/n-kudo/internal/hypervisor"
)

// probe checks the VM's VMM, remembering how a reaped child ended.
func (p *Provider) probe(v *vm) procState {
	st := probe(v.rec.PID, v.paths.APISocket)
	if !st.alive && st.exit == "" {
		p.mu.Lock()
		_, known := p.exits[v.rec.PID]
		p.mu.Unlock()
		if !known {
			st = settle(v.rec.PID)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if st.exit != "" {
		p.exits[v.rec.PID] = st
	} else if !st.alive {
		st = p.exits[v.rec.PID]
	}
	return st
}

// settleExit tells a VMM on its way out from a live one after a call to
// it failed: a VMM that exits (after vmm.shutdown, or with its guest)
// closes its API socket a moment before the process ends. After a failure
// below HTTP (no answer at all) it gives our child that moment, and
// reports how it ended.
func (p *Provider) settleExit(v *vm, err error) procState {
	if statusOf(err) != 0 {
		return procState{alive: true}
	}
	if st := settle(v.rec.PID); st.exit != "" {
		p.mu.Lock()
		p.exits[v.rec.PID] = st
		p.mu.Unlock()
		return st
	}
	return p.probe(v)
}

// observe reports the VM's actual state, asking the VMM. Must be called
// with v.mu held.
func (p *Provider) observe(ctx context.Context, v *vm) hypervisor.VMState {
	id := v.rec.Spec.ID
	if !v.provisioned {
		return hypervisor.VMState{ID: id, State: v.rec.State, Error: v.rec.Error}
	}
	if st := p.probe(v); !st.alive {
		return p.observeGone(v, st)
	}
	cctx, cancel := context.WithTimeout(ctx, p.sock)
	info, err := v.client.info(cctx)
	cancel()
	if err != nil {
		if st := p.settleExit(v, err); !st.alive {
			return p.observeGone(v, st)
		}
		return p.observeNoVM(v, err)
	}
	var s hypervisor.State
	switch info.State {
	case chCreated, chShutdown:
		// The real VMM drops the Vm at vm.shutdown and reports "Created"
		// afterwards (vm_shutdown and vm_info in vmm/src/lib.rs); the
		// document's "Shutdown" means the same.
		s = hypervisor.StateStopped
	case chRunning:
		s = hypervisor.StateRunning
	case chPaused, chBreakPoint:
		s = hypervisor.StatePaused
	default:
		return hypervisor.VMState{ID: id, State: hypervisor.StateFailed, Error: fmt.Sprintf("vmm reports unknown state %q", info.State)}
	}
	p.record(v, s, "")
	return hypervisor.VMState{ID: id, State: s}
}

// observeGone is the state of a VM whose VMM process is gone. A VMM that
// exited with status 0 while its VM ran was ended by the guest powering
// off (Cloud Hypervisor exits on the guest's exit event; from v52 it
// stays up only with --no-shutdown): the VM is stopped, and Start makes a
// new VMM. Any other end is a failure.
func (p *Provider) observeGone(v *vm, st procState) hypervisor.VMState {
	id := v.rec.Spec.ID
	switch {
	case v.rec.State == hypervisor.StateStopped:
		return hypervisor.VMState{ID: id, State: hypervisor.StateStopped}
	case st.clean && (v.rec.State == hypervisor.StateRunning || v.rec.State == hypervisor.StatePaused):
		p.log.Info("vmm exited with status 0 after the guest powered off; vm is stopped",
			slog.String(keyVM, id.String()), slog.Int(keyPID, v.rec.PID))
		p.record(v, hypervisor.StateStopped, "")
		return hypervisor.VMState{ID: id, State: hypervisor.StateStopped}
	}
	msg := v.rec.Error
	if v.rec.State != hypervisor.StateFailed || msg == "" {
		msg = fmt.Sprintf("vmm process %d %s", v.rec.PID, orGone(st.exit))
	}
	p.record(v, hypervisor.StateFailed, msg)
	return hypervisor.VMState{ID: id, State: hypervisor.StateFailed, Error: msg}
}

// observeNoVM is the state of a VM whose VMM answers but not vm.info. A
// VMM without the VM is where a failed boot (whose VM was deleted so a
// retry starts clean) or a stop leaves it; otherwise the VM is failed.
func (p *Provider) observeNoVM(v *vm, err error) hypervisor.VMState {
	id := v.rec.Spec.ID
	if !isNotCreated(err) {
		return hypervisor.VMState{ID: id, State: hypervisor.StateFailed, Error: fmt.Sprintf("reading vm info: %v", err)}
	}
	switch v.rec.State {
	case hypervisor.StateFailed:
		return hypervisor.VMState{ID: id, State: hypervisor.StateFailed, Error: v.rec.Error}
	case hypervisor.StateStopped:
		return hypervisor.VMState{ID: id, State: hypervisor.StateStopped}
	}
	msg := "vmm holds no vm definition"
	p.record(v, hypervisor.StateFailed, msg)
	return hypervisor.VMState{ID: id, State: hypervisor.StateFailed, Error: msg}
}

// record persists an observed state when it changed, logging a failure to
// persist (the observation itself stands).
func (p *Provider) record(v *vm, s hypervisor.State, msg string) {
	if v.rec.State == s && v.rec.Error == msg {
		return
	}
	if err := p.setState(v, s, msg); err != nil {
		p.log.Warn("persisting observed state", slog.String(keyVM, v.rec.Spec.ID.String()), slog.String(keyError, err.Error()))
	}
}
