package cloudhypervisor

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

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
