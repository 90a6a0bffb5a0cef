package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// CreatePlan stores a plan, its actions (in slice order, Seq rewritten to
// the index) and one execution per action in one transaction. An empty
// plan or action status means pending. The site, host, agent and VMs must
// belong to the plan's tenant, else store.ErrNotFound.
func (s *Store) CreatePlan(ctx context.Context, p store.Plan) error {
	params, err := planParams(p)
	if err != nil {
		return fmt.Errorf("creating plan %s: %w", p.ID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		return insertPlan(ctx, tx, p, params)
	})
	if err != nil {
		return fmt.Errorf("creating plan %s: %w", p.ID, err)
	}
	return nil
}

// planParams encodes the params of p's actions, before any transaction
// starts, so malformed JSON costs no write lock.
func planParams(p store.Plan) ([]string, error) {
	params := make([]string, len(p.Actions))
	for i, a := range p.Actions {
		enc, err := jsonObject(a.Params)
		if err != nil {
			return nil, fmt.Errorf("action %s params: %w", a.ID, err)
		}
		params[i] = enc
	}
	return params, nil
}

// insertPlan writes p, its actions and their executions inside tx;
// params are the actions' encoded params (planParams).
func insertPlan(ctx context.Context, tx *sql.Tx, p store.Plan, params []string) error {
	status := p.Status
	if status == "" {
		status = store.StatusPending
	}
	if _, err := tx.ExecContext(ctx, qInsertPlan, p.ID, p.TenantID, p.SiteID, p.HostID, p.AgentID, status,
		micros(p.CreatedAt), micros(p.UpdatedAt)); err != nil {
		return translate(err)
	}
	if len(p.Actions) == 0 {
		return nil
	}
	actStmt, err := tx.PrepareContext(ctx, qInsertAction)
	if err != nil {
		return translate(err)
	}
	defer func() { _ = actStmt.Close() }()
	execStmt, err := tx.PrepareContext(ctx, qInsertExecution)
	if err != nil {
		return translate(err)
	}
	defer func() { _ = execStmt.Close() }()
	for i, a := range p.Actions {
		st := a.Status
		if st == "" {
			st = store.StatusPending
		}
		updated := a.UpdatedAt
		if updated.IsZero() {
			updated = p.CreatedAt
		}
		if _, err := actStmt.ExecContext(ctx, a.ID, p.TenantID, p.ID, i, a.Type, nullID(a.VMID), params[i], st,
			a.ExecutionID, a.Error, micros(updated)); err != nil {
			return translate(err)
		}
		if _, err := execStmt.ExecContext(ctx, a.ExecutionID, p.TenantID, p.ID, a.ID, st, a.Error,
			nil, nil, micros(p.CreatedAt)); err != nil {
			return translate(err)
		}
	}
	return nil
}

// GetPlan returns a tenant's plan with its actions.
func (s *Store) GetPlan(ctx context.Context, tenantID, id uuid.UUID) (store.Plan, error) {
	var p store.Plan
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		p, err = scanPlan(tx.QueryRowContext(ctx, qGetPlan, tenantID, id))
		if err != nil {
			return err
		}
		return loadActions(ctx, tx, []*store.Plan{&p})
	})
	if err != nil {
		return store.Plan{}, fmt.Errorf("getting plan %s: %w", id, err)
	}
	return p, nil
}

// ListPlans lists a tenant's plans matching f in id order, with actions.
func (s *Store) ListPlans(ctx context.Context, tenantID uuid.UUID, f store.PlanFilter, p store.Page) ([]store.Plan, bool, error) {
	limit := pageLimit(p.Limit)
	var (
		plans []store.Plan
		more  bool
	)
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, qListPlans, tenantID, filterID(f.SiteID), f.Status, afterKey(p.After), limit+1)
		if err != nil {
			return translate(err)
		}
		plans, err = collect(rows, scanPlan)
		if err != nil {
			return err
		}
		plans, more = trimPage(plans, limit)
		return loadActions(ctx, tx, planPtrs(plans))
	})
	if err != nil {
		return nil, false, fmt.Errorf("listing plans of tenant %s: %w", tenantID, err)
	}
	return plans, more, nil
}

// PendingPlans returns the agent's non-terminal plans, oldest first.
func (s *Store) PendingPlans(ctx context.Context, agentID uuid.UUID) ([]store.Plan, error) {
	byAgent, err := s.PendingPlansOf(ctx, []uuid.UUID{agentID})
	return byAgent[agentID], err
}

// PendingPlansOf implements store.Store.
func (s *Store) PendingPlansOf(ctx context.Context, agentIDs []uuid.UUID) (map[uuid.UUID][]store.Plan, error) {
	if len(agentIDs) == 0 {
		return map[uuid.UUID][]store.Plan{}, nil
	}
	ids := make([]string, len(agentIDs))
	for i, id := range agentIDs {
		ids[i] = id.String()
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("listing pending plans of %d agents: encoding ids: %w", len(agentIDs), err)
	}
	var plans []store.Plan
	err = s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, qPendingPlansOf, string(idsJSON))
		if err != nil {
			return translate(err)
		}
		plans, err = collect(rows, scanPlan)
		if err != nil {
			return err
		}
		return loadActions(ctx, tx, planPtrs(plans))
	})
	if err != nil {
		return nil, fmt.Errorf("listing pending plans of %d agents: %w", len(agentIDs), err)
	}
	out := make(map[uuid.UUID][]store.Plan)
	for _, p := range plans {
		out[p.AgentID] = append(out[p.AgentID], p)
	}
	return out, nil
}

func planPtrs(plans []store.Plan) []*store.Plan {
	out := make([]*store.Plan, len(plans))
	for i := range plans {
		out[i] = &plans[i]
	}
	return out
}

// loadActions fills the actions of plans with one query.
func loadActions(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, plans []*store.Plan) error {
	if len(plans) == 0 {
		return nil
	}
	byID := make(map[uuid.UUID]*store.Plan, len(plans))
	ids := make([]string, len(plans))
	for i, p := range plans {
		byID[p.ID] = p
		ids[i] = p.ID.String()
		p.Actions = []store.PlanAction{}
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("encoding plan ids: %w", err)
	}
	rows, err := q.QueryContext(ctx, qActionsOfPlans, string(idsJSON))
	if err != nil {
		return translate(err)
	}
	actions, err := collect(rows, scanAction)
	if err != nil {
		return err
	}
	for _, a := range actions {
		if p := byID[a.PlanID]; p != nil {
			p.Actions = append(p.Actions, a)
		}
	}
	return nil
}

// MarkPlanDispatched moves a pending plan of agentID and its pending
// actions and executions to dispatched, and returns the plan as stored
// after the change. A plan already past pending is left alone and returned
// as it is; another agent's plan or an unknown one is store.ErrNotFound.
func (s *Store) MarkPlanDispatched(ctx context.Context, agentID, planID uuid.UUID, at time.Time) (store.Plan, error) {
	var p store.Plan
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, qDispatchPlan, planID, agentID, micros(at))
		if err != nil {
			return translate(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return translate(err)
		}
		// Only a plan that just left pending has children to move; for
		// one already past pending (a repeated ack) nothing is rewritten.
		if n > 0 {
			if _, err := tx.ExecContext(ctx, qDispatchActions, planID, micros(at)); err != nil {
				return translate(err)
			}
			if _, err := tx.ExecContext(ctx, qDispatchExecutions, planID); err != nil {
				return translate(err)
			}
		}
		p, err = scanPlan(tx.QueryRowContext(ctx, qGetAgentPlan, planID, agentID))
		if err != nil {
			return err
		}
		return loadActions(ctx, tx, []*store.Plan{&p})
	})
	if err != nil {
		return store.Plan{}, fmt.Errorf("marking plan %s dispatched: %w", planID, err)
	}
	return p, nil
}

// ApplyActionResult records an action result from agentID and derives the
// plan's status: failed as soon as one action failed, succeeded when all
// succeeded, running once any action has started or finished.
func (s *Store) ApplyActionResult(ctx context.Context, agentID uuid.UUID, r store.ActionResult) (store.Plan, error) {
	switch r.Status {
	case store.StatusRunning, store.StatusSucceeded, store.StatusFailed:
	default:
		return store.Plan{}, fmt.Errorf("applying result of action %s: %w: status %q", r.ActionID, ErrInvalidArgument, r.Status)
	}
	at := micros(r.At)
	var p store.Plan
	err := s.write(ctx, func(tx *sql.Tx) error {
		var (
			planID, tenantID uuid.UUID
			current          string
			vmID             uuid.UUID
		)
		if err := tx.QueryRowContext(ctx, qActionForAgent, r.ActionID, agentID).Scan(&planID, &current, &vmID, &tenantID); err != nil {
			return translate(err)
		}
		if !store.Terminal(current) {
			if err := applyResult(ctx, tx, planID, tenantID, vmID, r, at); err != nil {
				return err
			}
		}
		var err error
		p, err = scanPlan(tx.QueryRowContext(ctx, qGetPlanByID, planID))
		if err != nil {
			return err
		}
		return loadActions(ctx, tx, []*store.Plan{&p})
	})
	if err != nil {
		return store.Plan{}, fmt.Errorf("applying result of action %s: %w", r.ActionID, err)
	}
	return p, nil
}

func applyResult(ctx context.Context, tx *sql.Tx, planID, tenantID, vmID uuid.UUID, r store.ActionResult, at int64) error {
	if _, err := tx.ExecContext(ctx, qUpdateAction, r.ActionID, r.Status, r.Error, at); err != nil {
		return translate(err)
	}
	if _, err := tx.ExecContext(ctx, qUpdateExecution, r.ActionID, r.Status, r.Error, at,
		boolInt(store.Terminal(r.Status))); err != nil {
		return translate(err)
	}
	if r.VMState != "" && vmID != uuid.Nil {
		if _, err := tx.ExecContext(ctx, qVMStateFromAction, tenantID, vmID, r.VMState, r.Error, at); err != nil {
			return translate(err)
		}
	}
	var total, succeeded, failed, progressed int
	if err := tx.QueryRowContext(ctx, qActionStatusCounts, planID).Scan(&total, &succeeded, &failed, &progressed); err != nil {
		return translate(err)
	}
	var status string
	switch {
	case failed > 0:
		status = store.StatusFailed
	case succeeded == total:
		status = store.StatusSucceeded
	case progressed > 0:
		status = store.StatusRunning
	default:
		return nil
	}
	if _, err := tx.ExecContext(ctx, qSetPlanStatus, planID, status, at); err != nil {
		return translate(err)
	}
	return nil
}

// GetExecution returns a tenant's execution.
func (s *Store) GetExecution(ctx context.Context, tenantID, id uuid.UUID) (store.Execution, error) {
	e, err := scanExecution(s.r.QueryRowContext(ctx, qGetExecution, tenantID, id))
	if err != nil {
		return e, fmt.Errorf("getting execution %s: %w", id, err)
	}
	return e, nil
}

// ExecutionAgent returns the agent that runs an execution.
func (s *Store) ExecutionAgent(ctx context.Context, id uuid.UUID) (uuid.UUID, error) {
	var agent uuid.UUID
	if err := s.r.QueryRowContext(ctx, qExecutionAgent, id).Scan(&agent); err != nil {
		return uuid.Nil, fmt.Errorf("getting agent of execution %s: %w", id, translate(err))
	}
	return agent, nil
}

// AppendLogLines inserts a batch of log lines in one transaction; lines
// already stored are skipped. A line of an unknown execution is
// store.ErrNotFound and nothing of the batch is written.
func (s *Store) AppendLogLines(ctx context.Context, lines []store.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		// One multi-row statement per chunk: a statement execution is the
		// unit of cost here (the driver binds, steps and watches the
		// context once per call), not the row. Full chunks share one
		// prepared statement; the remainder gets its own.
		var full *sql.Stmt
		defer func() {
			if full != nil {
				_ = full.Close()
			}
		}()
		args := make([]any, 0, logChunkRows*logLineCols)
		for rest := lines; len(rest) > 0; {
			n := min(len(rest), logChunkRows)
			chunk := rest[:n]
			rest = rest[n:]
			args = args[:0]
			for _, l := range chunk {
				args = append(args, l.ExecutionID, l.Seq, micros(l.At), l.Stream, l.Message)
			}
			if n < logChunkRows {
				if _, err := tx.ExecContext(ctx, insertLogLinesQuery(n), args...); err != nil {
					return translate(err)
				}
				continue
			}
			if full == nil {
				var err error
				if full, err = tx.PrepareContext(ctx, qInsertLogLinesChunk); err != nil {
					return translate(err)
				}
			}
			if _, err := full.ExecContext(ctx, args...); err != nil {
				return translate(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("appending %d log lines: %w", len(lines), err)
	}
	return nil
}

// ListLogLines returns up to limit lines of a tenant's execution after
// afterSeq, in order. Another tenant's execution is store.ErrNotFound.
func (s *Store) ListLogLines(ctx context.Context, tenantID, executionID uuid.UUID, afterSeq int64, limit int) ([]store.LogLine, error) {
	var lines []store.LogLine
	err := s.read(ctx, func(tx *sql.Tx) error {
		var exists bool
		if err := tx.QueryRowContext(ctx, qExecutionExists, tenantID, executionID).Scan(&exists); err != nil {
			return translate(err)
		}
		if !exists {
			return store.ErrNotFound
		}
		rows, err := tx.QueryContext(ctx, qListLogLines, executionID, afterSeq, pageLimit(limit))
		if err != nil {
			return translate(err)
		}
		lines, err = collect(rows, scanLogLine)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing log lines of execution %s: %w", executionID, err)
	}
	return lines, nil
}
