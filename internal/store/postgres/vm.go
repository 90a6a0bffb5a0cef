package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/kubedoio/n-kudo/internal/store"
)

// CreateVM stores a VM; a live VM of the same name in the tenant is
// store.ErrConflict, an unknown site or host store.ErrNotFound.
func (s *Store) CreateVM(ctx context.Context, vm store.VM) error {
	args, err := vmArgs(vm)
	if err != nil {
		return fmt.Errorf("creating vm %s: %w", vm.ID, err)
	}
	if _, err := s.pool.Exec(ctx, qInsertVM, args...); err != nil {
		return fmt.Errorf("creating vm %s: %w", vm.ID, translate(err))
	}
	return nil
}

// vmArgs are the arguments of qInsertVM for vm.
func vmArgs(vm store.VM) ([]any, error) {
	spec, err := jsonObject(vm.Spec)
	if err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	return []any{vm.ID, vm.TenantID, vm.SiteID, nullID(vm.HostID), vm.Name,
		vm.DesiredState, vm.ActualState, vm.VCPUs, vm.MemoryMiB, spec, vm.Error,
		ts(vm.CreatedAt), ts(vm.UpdatedAt)}, nil
}

// CreateVMWithPlan stores a VM and its plan in one transaction and one
// round trip: the VM row is queued first, so the plan's actions may
// reference it, and a failure of any statement rolls back all of them.
func (s *Store) CreateVMWithPlan(ctx context.Context, vm store.VM, p store.Plan) error {
	args, err := vmArgs(vm)
	if err != nil {
		return fmt.Errorf("creating vm %s with plan %s: %w", vm.ID, p.ID, err)
	}
	b := &pgx.Batch{}
	b.Queue(qInsertVM, args...)
	if err := queuePlan(b, p); err != nil {
		return fmt.Errorf("creating vm %s with plan %s: %w", vm.ID, p.ID, err)
	}
	if err := s.sendInTx(ctx, b); err != nil {
		return fmt.Errorf("creating vm %s with plan %s: %w", vm.ID, p.ID, err)
	}
	return nil
}

// GetVM returns a tenant's VM.
func (s *Store) GetVM(ctx context.Context, tenantID, id uuid.UUID) (store.VM, error) {
	vm, err := scanVM(s.pool.QueryRow(ctx, qGetVM, tenantID, id))
	if err != nil {
		return vm, fmt.Errorf("getting vm %s: %w", id, err)
	}
	return vm, nil
}

// ListVMs lists a tenant's VMs in id order.
func (s *Store) ListVMs(ctx context.Context, tenantID uuid.UUID, f store.VMFilter, p store.Page) ([]store.VM, bool, error) {
	items, more, err := listPage(ctx, s, scanVM, p.Limit, qListVMs, tenantID, nullID(f.SiteID), nullID(f.HostID),
		f.IncludeDeleted, p.After)
	if err != nil {
		return nil, false, fmt.Errorf("listing vms of tenant %s: %w", tenantID, err)
	}
	return items, more, nil
}

// SetVMDesiredState records what the operator wants the VM to be.
func (s *Store) SetVMDesiredState(ctx context.Context, tenantID, id uuid.UUID, desired string, at time.Time) error {
	if err := s.execOne(ctx, qSetVMDesired, tenantID, id, desired, ts(at)); err != nil {
		return fmt.Errorf("setting desired state of vm %s: %w", id, err)
	}
	return nil
}

// ReportVMStates records the actual states reported by the agent of
// hostID in one statement and returns the VMs that changed; reports for
// VMs not on that host, for deleted VMs, or repeating the stored state
// change nothing.
func (s *Store) ReportVMStates(ctx context.Context, hostID uuid.UUID, reports []store.VMStateReport, at time.Time) ([]store.VM, error) {
	if len(reports) == 0 {
		return nil, nil
	}
	// UPDATE … FROM applies one source row per VM; the last report of a
	// VM in the batch is the newest.
	last := make(map[uuid.UUID]int, len(reports))
	for i, r := range reports {
		last[r.VMID] = i
	}
	ids := make([]uuid.UUID, 0, len(last))
	states := make([]string, 0, len(last))
	errs := make([]string, 0, len(last))
	for i, r := range reports {
		if last[r.VMID] != i {
			continue
		}
		ids = append(ids, r.VMID)
		states = append(states, r.ActualState)
		errs = append(errs, r.Error)
	}
	rows, err := s.pool.Query(ctx, qReportVMStates, hostID, ids, states, errs, ts(at))
	if err != nil {
		return nil, fmt.Errorf("reporting %d vm states of host %s: %w", len(ids), hostID, translate(err))
	}
	defer rows.Close()
	var changed []store.VM
	for rows.Next() {
		vm, err := scanVM(rows)
		if err != nil {
			return nil, fmt.Errorf("reporting %d vm states of host %s: %w", len(ids), hostID, err)
		}
		changed = append(changed, vm)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reporting %d vm states of host %s: %w", len(ids), hostID, translate(err))
	}
	return changed, nil
}

// CountVMsByHost counts the live VMs of every host of a tenant's site.
func (s *Store) CountVMsByHost(ctx context.Context, tenantID, siteID uuid.UUID) (map[uuid.UUID]int, error) {
	rows, err := s.pool.Query(ctx, qCountVMsByHost, tenantID, siteID)
	if err != nil {
		return nil, fmt.Errorf("counting vms of site %s: %w", siteID, translate(err))
	}
	defer rows.Close()
	counts := make(map[uuid.UUID]int)
	for rows.Next() {
		var id uuid.UUID
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("counting vms of site %s: %w", siteID, translate(err))
		}
		counts[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counting vms of site %s: %w", siteID, translate(err))
	}
	return counts, nil
}

// CreatePlan stores a plan, its actions and one execution per action in
// one transaction and one round trip.
func (s *Store) CreatePlan(ctx context.Context, p store.Plan) error {
	b := &pgx.Batch{}
	if err := queuePlan(b, p); err != nil {
		return fmt.Errorf("creating plan %s: %w", p.ID, err)
	}
	if err := s.sendInTx(ctx, b); err != nil {
		return fmt.Errorf("creating plan %s: %w", p.ID, err)
	}
	return nil
}

// queuePlan queues the inserts of p, its actions and their executions
// (one statement each, the rows passed as arrays) on b. Params are
// encoded here, so malformed JSON fails before anything is sent.
func queuePlan(b *pgx.Batch, p store.Plan) error {
	status := p.Status
	if status == "" {
		status = store.StatusPending
	}
	n := len(p.Actions)
	var (
		ids, execIDs, vmIDs  = make([]uuid.UUID, n), make([]uuid.UUID, n), make([]*uuid.UUID, n)
		seqs                 = make([]int32, n)
		types, params, stats = make([]string, n), make([]string, n), make([]string, n)
		errs                 = make([]string, n)
	)
	for i, a := range p.Actions {
		prm, err := jsonObject(a.Params)
		if err != nil {
			return fmt.Errorf("action %s params: %w", a.ID, err)
		}
		ids[i], execIDs[i], seqs[i], types[i], params[i], errs[i] = a.ID, a.ExecutionID, int32(a.Seq), a.Type, prm, a.Error
		if a.VMID != uuid.Nil {
			vm := a.VMID
			vmIDs[i] = &vm
		}
		stats[i] = a.Status
		if stats[i] == "" {
			stats[i] = store.StatusPending
		}
	}
	created, updated := ts(p.CreatedAt), ts(p.UpdatedAt)
	b.Queue(qInsertPlan, p.ID, p.TenantID, p.SiteID, p.HostID, p.AgentID, status, created, updated)
	if n > 0 {
		b.Queue(qInsertActions, p.TenantID, p.ID, updated, ids, seqs, types, vmIDs, params, stats, execIDs, errs)
		b.Queue(qInsertExecutions, p.TenantID, p.ID, created, ids, execIDs, stats, errs)
	}
	return nil
}

// sendInTx runs the statements of b in one transaction: the first one
// that fails rolls back all of them.
func (s *Store) sendInTx(ctx context.Context, b *pgx.Batch) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		return translate(tx.SendBatch(ctx, b).Close())
	})
	return translate(err)
}

// withActions loads the actions of plans (in one query) into them.
func withActions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, plans []store.Plan) error {
	if len(plans) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(plans))
	index := make(map[uuid.UUID]int, len(plans))
	for i, p := range plans {
		ids[i] = p.ID
		index[p.ID] = i
	}
	rows, err := q.Query(ctx, qActionsOfPlans, ids)
	if err != nil {
		return translate(err)
	}
	actions, err := collect(rows, scanAction)
	if err != nil {
		return err
	}
	for _, a := range actions {
		i := index[a.PlanID]
		plans[i].Actions = append(plans[i].Actions, a)
	}
	return nil
}

// GetPlan returns a tenant's plan with its actions.
func (s *Store) GetPlan(ctx context.Context, tenantID, id uuid.UUID) (store.Plan, error) {
	p, err := scanPlan(s.pool.QueryRow(ctx, qGetPlan, tenantID, id))
	if err != nil {
		return p, fmt.Errorf("getting plan %s: %w", id, err)
	}
	plans := []store.Plan{p}
	if err := withActions(ctx, s.pool, plans); err != nil {
		return store.Plan{}, fmt.Errorf("getting plan %s: %w", id, err)
	}
	return plans[0], nil
}

// ListPlans lists a tenant's plans with their actions in id order.
func (s *Store) ListPlans(ctx context.Context, tenantID uuid.UUID, f store.PlanFilter, p store.Page) ([]store.Plan, bool, error) {
	items, more, err := listPage(ctx, s, scanPlan, p.Limit, qListPlans, tenantID, nullID(f.SiteID), f.Status, p.After)
	if err == nil {
		err = withActions(ctx, s.pool, items)
	}
	if err != nil {
		return nil, false, fmt.Errorf("listing plans of tenant %s: %w", tenantID, err)
	}
	return items, more, nil
}

// PendingPlans returns the agent's plans that are not terminal, oldest
// first, with their actions.
func (s *Store) PendingPlans(ctx context.Context, agentID uuid.UUID) ([]store.Plan, error) {
	byAgent, err := s.PendingPlansOf(ctx, []uuid.UUID{agentID})
	return byAgent[agentID], err
}

// PendingPlansOf implements store.Store.
func (s *Store) PendingPlansOf(ctx context.Context, agentIDs []uuid.UUID) (map[uuid.UUID][]store.Plan, error) {
	out := make(map[uuid.UUID][]store.Plan)
	if len(agentIDs) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, qPendingPlansOf, agentIDs)
	if err != nil {
		return nil, fmt.Errorf("listing pending plans of %d agents: %w", len(agentIDs), translate(err))
	}
	plans, err := collect(rows, scanPlan)
	if err == nil {
		err = withActions(ctx, s.pool, plans)
	}
	if err != nil {
		return nil, fmt.Errorf("listing pending plans of %d agents: %w", len(agentIDs), err)
	}
	for _, p := range plans {
		out[p.AgentID] = append(out[p.AgentID], p)
	}
	return out, nil
}

// MarkPlanDispatched moves a pending plan of agentID, its pending actions
// and their executions to dispatched, and returns the plan as stored after
// the change, in one transaction. A plan past pending is left alone and
// returned as it is; another agent's plan or an unknown one is
// store.ErrNotFound.
func (s *Store) MarkPlanDispatched(ctx context.Context, agentID, planID uuid.UUID, at time.Time) (store.Plan, error) {
	var plan store.Plan
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(qDispatchPlan, planID, agentID, ts(at))
		b.Queue(qAgentPlan, planID, agentID)
		br := tx.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return translate(err)
		}
		p, err := scanPlan(br.QueryRow())
		if err != nil {
			_ = br.Close()
			return err
		}
		if err := br.Close(); err != nil {
			return translate(err)
		}
		plans := []store.Plan{p}
		if err := withActions(ctx, tx, plans); err != nil {
			return err
		}
		plan = plans[0]
		return nil
	})
	if err != nil {
		return store.Plan{}, fmt.Errorf("marking plan %s dispatched: %w", planID, translate(err))
	}
	return plan, nil
}

// ApplyActionResult records an agent's result for one action and rolls the
// plan's status up, in one transaction.
func (s *Store) ApplyActionResult(ctx context.Context, agentID uuid.UUID, r store.ActionResult) (store.Plan, error) {
	switch r.Status {
	case store.StatusRunning, store.StatusSucceeded, store.StatusFailed:
	default:
		return store.Plan{}, fmt.Errorf("applying result of action %s: %w: status %q", r.ActionID, ErrInvalidArgument, r.Status)
	}
	at := r.At
	if at.IsZero() {
		at = time.Now()
	}
	at = ts(at)
	var plan store.Plan
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var (
			planID, tenantID uuid.UUID
			status           string
			vmID             *uuid.UUID
		)
		if err := tx.QueryRow(ctx, qActionForAgent, r.ActionID, agentID).Scan(&planID, &status, &vmID, &tenantID); err != nil {
			return translate(err)
		}
		// Results are retried and replayed: a terminal action keeps the
		// outcome it was first given.
		if !store.Terminal(status) {
			b := &pgx.Batch{}
			b.Queue(qUpdateAction, r.ActionID, r.Status, r.Error, at)
			b.Queue(qUpdateExecution, r.ActionID, r.Status, r.Error, at, store.Terminal(r.Status))
			if r.VMState != "" && vmID != nil {
				b.Queue(qVMStateFromAction, tenantID, *vmID, r.VMState, r.Error, at)
			}
			b.Queue(qRollUpPlan, planID, at)
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return translate(err)
			}
		}
		var err error
		if plan, err = scanPlan(tx.QueryRow(ctx, qPlanByID, planID)); err != nil {
			return err
		}
		plans := []store.Plan{plan}
		if err := withActions(ctx, tx, plans); err != nil {
			return err
		}
		plan = plans[0]
		return nil
	})
	if err != nil {
		return store.Plan{}, fmt.Errorf("applying result of action %s: %w", r.ActionID, translate(err))
	}
	return plan, nil
}

// GetExecution returns a tenant's execution.
func (s *Store) GetExecution(ctx context.Context, tenantID, id uuid.UUID) (store.Execution, error) {
	e, err := scanExecution(s.pool.QueryRow(ctx, qGetExecution, tenantID, id))
	if err != nil {
		return e, fmt.Errorf("getting execution %s: %w", id, err)
	}
	return e, nil
}

// ExecutionAgent returns the agent that owns an execution.
func (s *Store) ExecutionAgent(ctx context.Context, id uuid.UUID) (uuid.UUID, error) {
	var agent uuid.UUID
	if err := s.pool.QueryRow(ctx, qExecutionAgent, id).Scan(&agent); err != nil {
		return uuid.Nil, fmt.Errorf("getting agent of execution %s: %w", id, translate(err))
	}
	return agent, nil
}

// AppendLogLines inserts a batch of log lines in one statement, skipping
// lines already stored.
func (s *Store) AppendLogLines(ctx context.Context, lines []store.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	execs := make([]uuid.UUID, len(lines))
	seqs := make([]int64, len(lines))
	ats := make([]time.Time, len(lines))
	streams := make([]string, len(lines))
	msgs := make([]string, len(lines))
	for i, l := range lines {
		execs[i], seqs[i], ats[i], streams[i], msgs[i] = l.ExecutionID, l.Seq, ts(l.At), l.Stream, l.Message
	}
	if _, err := s.pool.Exec(ctx, qAppendLogLines, execs, seqs, ats, streams, msgs); err != nil {
		return fmt.Errorf("appending %d log lines: %w", len(lines), translate(err))
	}
	return nil
}

// ListLogLines returns a tenant's execution log lines after afterSeq, in
// order; an execution of another tenant is store.ErrNotFound. The tenant
// check rides along with the read, so a live tail costs one round trip;
// only an empty answer needs a second look to tell "no lines yet" from
// "not yours".
func (s *Store) ListLogLines(ctx context.Context, tenantID, executionID uuid.UUID, afterSeq int64, limit int) ([]store.LogLine, error) {
	rows, err := s.pool.Query(ctx, qListLogLines, executionID, afterSeq, pageLimit(limit), tenantID)
	if err != nil {
		return nil, fmt.Errorf("listing log lines of execution %s: %w", executionID, translate(err))
	}
	lines, err := collect(rows, scanLogLine)
	if err != nil {
		return nil, fmt.Errorf("listing log lines of execution %s: %w", executionID, err)
	}
	if len(lines) > 0 {
		return lines, nil
	}
	var ok bool
	if err := s.pool.QueryRow(ctx, qExecutionExists, tenantID, executionID).Scan(&ok); err != nil {
		return nil, fmt.Errorf("listing log lines of execution %s: %w", executionID, translate(err))
	}
	if !ok {
		return nil, fmt.Errorf("listing log lines of execution %s: %w", executionID, store.ErrNotFound)
	}
	return nil, nil
}
