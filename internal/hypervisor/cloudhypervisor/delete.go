package cloudhypervisor

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/kubedoio/n-kudo/internal/agent/statefile"
)

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
