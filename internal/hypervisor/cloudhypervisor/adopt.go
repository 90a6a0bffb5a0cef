package cloudhypervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/google/uuid"
	"github.com/kubedoio/n-kudo/internal/agent/statefile"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
)

// adopt loads the tombstones and every VM directory. No operation can be
// in flight yet.
func (p *Provider) adopt() error {
	tpath := filepath.Join(p.dir, tombstoneFile)
	if _, err := statefile.RemoveStale(tpath); err != nil {
		return err
	}
	var tombs []tombstone
	if err := statefile.Read(tpath, &tombs); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading tombstones: %w", err)
	}
	for _, t := range tombs {
		p.tombs[t.ID] = t.DeletedAt
	}
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadRuntimeDir, err)
	}
	for _, e := range entries {
		id, err := uuid.Parse(e.Name())
		if err != nil || !e.IsDir() || id.String() != e.Name() {
			continue // not ours
		}
		if err := p.adoptOne(id); err != nil {
			return err
		}
	}
	return nil
}

func (p *Provider) adoptOne(id uuid.UUID) error {
	paths := PathsFor(p.dir, id, p.firmware)
	log := p.log.With(slog.String(keyVM, id.String()))
	if _, err := statefile.RemoveStale(paths.StateFile); err != nil {
		return err
	}
	var rec record
	err := statefile.Read(paths.StateFile, &rec)
	if errors.Is(err, os.ErrNotExist) {
		// Create writes state.json right after making the directory; a
		// directory without one holds nothing worth keeping.
		log.Warn("removing vm directory without state", slog.String(keyPath, paths.Dir))
		if err := os.RemoveAll(paths.Dir); err != nil {
			return fmt.Errorf("removing stateless vm directory %s: %w", paths.Dir, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("adopting vm %s: %w", id, err)
	}
	if rec.Version != recordVersion || rec.Spec.ID != id {
		return fmt.Errorf("adopting vm %s: %s has version %d for vm %s", id, paths.StateFile, rec.Version, rec.Spec.ID)
	}
	v := &vm{rec: rec, paths: paths, client: newClient(paths.APISocket, p.sock), provisioned: rec.State != hypervisor.StateCreating}
	if pid, err := readPID(paths.PIDFile); err == nil && pid != 0 {
		v.rec.PID = pid
	}
	if v.rec.PID != 0 && probe(v.rec.PID, paths.APISocket).alive {
		ctx, cancel := context.WithTimeout(context.Background(), p.sock)
		pr, err := v.client.ping(ctx)
		cancel()
		if err == nil {
			log.Info("re-adopted vm", slog.Int(keyPID, v.rec.PID), slog.String("vmm_version", pr.Version))
		} else {
			log.Warn("vmm of vm is alive but not answering", slog.Int(keyPID, v.rec.PID), slog.String(keyError, err.Error()))
		}
	} else if v.rec.State != hypervisor.StateStopped && v.rec.State != hypervisor.StateCreating {
		log.Warn("vmm of vm is gone", slog.Int(keyPID, v.rec.PID), slog.String(keyState, string(v.rec.State)))
	}
	if v.provisioned {
		// The TAP must be on the bridge before a VMM opens it again.
		ctx, cancel := context.WithTimeout(context.Background(), p.sock)
		if err := p.ensureTAP(ctx, v); err != nil {
			log.Warn("re-creating the tap of an adopted vm", slog.String(keyError, err.Error()))
		}
		cancel()
	}
	p.vms[id] = v
	return nil
}
