package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// CreateVM stores a VM. Its site (and host, when set) must belong to the
// VM's tenant, else store.ErrNotFound; a live VM of the same name in the
// tenant is store.ErrConflict. Empty states default to desired running and
// actual unknown.
func (s *Store) CreateVM(ctx context.Context, vm store.VM) error {
	args, err := vmArgs(vm)
	if err != nil {
		return fmt.Errorf("creating vm %s: %w", vm.ID, err)
	}
	if _, err := s.w.ExecContext(ctx, qInsertVM, args...); err != nil {
		return fmt.Errorf("creating vm %s: %w", vm.ID, translate(err))
	}
	return nil
}

// CreateVMWithPlan stores a VM and its plan in one transaction: the VM
// row goes first, so the plan's actions may reference it, and a failure
// of either rolls both back.
func (s *Store) CreateVMWithPlan(ctx context.Context, vm store.VM, p store.Plan) error {
	args, err := vmArgs(vm)
	if err != nil {
		return fmt.Errorf("creating vm %s with plan %s: %w", vm.ID, p.ID, err)
	}
	params, err := planParams(p)
	if err != nil {
		return fmt.Errorf("creating vm %s with plan %s: %w", vm.ID, p.ID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, qInsertVM, args...); err != nil {
			return fmt.Errorf("inserting vm: %w", translate(err))
		}
		if err := insertPlan(ctx, tx, p, params); err != nil {
			return fmt.Errorf("inserting plan: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("creating vm %s with plan %s: %w", vm.ID, p.ID, err)
	}
	return nil
}

// vmArgs are the arguments of qInsertVM for vm, with its defaults applied.
func vmArgs(vm store.VM) ([]any, error) {
	spec, err := jsonObject(vm.Spec)
	if err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	desired, actual := vm.DesiredState, vm.ActualState
	if desired == "" {
		desired = store.VMRunning
	}
	if actual == "" {
		actual = store.VMUnknown
	}
	return []any{vm.ID, vm.TenantID, vm.SiteID, nullID(vm.HostID), vm.Name,
		desired, actual, vm.VCPUs, vm.MemoryMiB, spec, vm.Error, micros(vm.CreatedAt), micros(vm.UpdatedAt)}, nil
}

// GetVM returns a tenant's VM, deleted or not.
func (s *Store) GetVM(ctx context.Context, tenantID, id uuid.UUID) (store.VM, error) {
	vm, err := scanVM(s.r.QueryRowContext(ctx, qGetVM, tenantID, id))
	if err != nil {
		return vm, fmt.Errorf("getting vm %s: %w", id, err)
	}
	return vm, nil
}

// ListVMs lists a tenant's VMs matching f in id order.
func (s *Store) ListVMs(ctx context.Context, tenantID uuid.UUID, f store.VMFilter, p store.Page) ([]store.VM, bool, error) {
	limit := pageLimit(p.Limit)
	rows, err := s.r.QueryContext(ctx, qListVMs, tenantID, filterID(f.SiteID), filterID(f.HostID),
		boolInt(f.IncludeDeleted), afterKey(p.After), limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("listing vms of tenant %s: %w", tenantID, translate(err))
	}
	items, err := collect(rows, scanVM)
	if err != nil {
		return nil, false, fmt.Errorf("listing vms of tenant %s: %w", tenantID, err)
	}
	items, more := trimPage(items, limit)
	return items, more, nil
}

// SetVMDesiredState records what the operator wants the VM to be.
func (s *Store) SetVMDesiredState(ctx context.Context, tenantID, id uuid.UUID, desired string, at time.Time) error {
	if err := s.execOne(ctx, qSetVMDesired, tenantID, id, desired, micros(at)); err != nil {
		return fmt.Errorf("setting desired state of vm %s: %w", id, err)
	}
	return nil
}

// ReportVMStates records the actual states reported by the agent of hostID
// in one transaction and returns the VMs that changed. Reports for VMs on
// other hosts, for VMs already deleted, and repeating the stored state
// change nothing. When a VM is reported twice in the batch, the last
// report wins and the VM is returned once, as it ends up.
func (s *Store) ReportVMStates(ctx context.Context, hostID uuid.UUID, reports []store.VMStateReport, at time.Time) ([]store.VM, error) {
	if len(reports) == 0 {
		return nil, nil
	}
	var changed []store.VM
	err := s.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, qReportVMState)
		if err != nil {
			return translate(err)
		}
		defer func() { _ = stmt.Close() }()
		for _, r := range reports {
			vm, err := scanVM(stmt.QueryRowContext(ctx, r.VMID, hostID, r.ActualState, r.Error, micros(at)))
			if errors.Is(err, store.ErrNotFound) {
				continue // unchanged, deleted or another host's
			}
			if err != nil {
				return err
			}
			changed = upsertVM(changed, vm)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recording %d vm states of host %s: %w", len(reports), hostID, err)
	}
	return changed, nil
}

// upsertVM replaces the entry of vm's id in vms, or appends vm.
func upsertVM(vms []store.VM, vm store.VM) []store.VM {
	for i := range vms {
		if vms[i].ID == vm.ID {
			vms[i] = vm
			return vms
		}
	}
	return append(vms, vm)
}

// CountVMsByHost returns the number of live VMs of every host of a site,
// hosts without VMs included (with 0), so a scheduler sees every candidate.
func (s *Store) CountVMsByHost(ctx context.Context, tenantID, siteID uuid.UUID) (map[uuid.UUID]int, error) {
	rows, err := s.r.QueryContext(ctx, qCountVMsByHost, tenantID, siteID)
	if err != nil {
		return nil, fmt.Errorf("counting vms of site %s: %w", siteID, translate(err))
	}
	type count struct {
		host uuid.UUID
		n    int
	}
	counts, err := collect(rows, func(r rowScanner) (count, error) {
		var c count
		if err := r.Scan(&c.host, &c.n); err != nil {
			return c, translate(err)
		}
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("counting vms of site %s: %w", siteID, err)
	}
	out := make(map[uuid.UUID]int, len(counts))
	for _, c := range counts {
		out[c.host] = c.n
	}
	return out, nil
}
