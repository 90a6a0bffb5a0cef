package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/vmspec"
)

// actionTypes are the action types a raw plan may hold: those of the
// store that the agent protocol of this build can carry.
var actionTypes = map[string]bool{
	store.ActionMicroVMCreate: true,
	store.ActionMicroVMStart:  true,
	store.ActionMicroVMStop:   true,
	store.ActionMicroVMReboot: true,
	store.ActionMicroVMDelete: true,
	store.ActionMicroVMPause:  true,
	store.ActionMicroVMResume: true,
}

type createPlanRequest struct {
	HostID  string             `json:"host_id"`
	Actions []createPlanAction `json:"actions"`
}

type createPlanAction struct {
	Type   string          `json:"type"`
	VMID   string          `json:"vm_id"`
	Params json.RawMessage `json:"params"`
}

// createPlan stores a raw plan of actions for one host and hands it to the
// agent channel right after the commit, so a connected agent holds it
// within milliseconds; an offline agent gets it after its next hello.
func (a *API) createPlan(c *gin.Context) {
	siteID, err := pathID(c, "site")
	if err != nil {
		a.writeError(c, err)
		return
	}
	var req createPlanRequest
	if err := decodeJSON(c, &req, false); err != nil {
		a.writeError(c, err)
		return
	}
	hostID, err := parseBodyID("host_id", req.HostID)
	if err != nil {
		a.writeError(c, err)
		return
	}
	// Check everything that needs no database first.
	vmIDs, err := req.checkActions()
	if err != nil {
		a.writeError(c, err)
		return
	}

	tenant := tenantOf(c)
	ctx := c.Request.Context()
	if _, err := a.store.GetSite(ctx, tenant, siteID); err != nil {
		a.writeError(c, fmt.Errorf("getting site %s: %w", siteID, err))
		return
	}
	host, err := a.store.GetHost(ctx, tenant, hostID)
	if err != nil || host.SiteID != siteID {
		if err != nil && !isNotFound(err) {
			a.writeError(c, fmt.Errorf("getting host %s: %w", hostID, err))
			return
		}
		a.writeError(c, invalidArgument("host_id %s names no host of this site", hostID))
		return
	}
	agent, err := a.store.GetTenantAgent(ctx, tenant, host.AgentID)
	if err != nil {
		a.writeError(c, fmt.Errorf("getting agent of host %s: %w", hostID, err))
		return
	}
	if agent.Revoked {
		a.writeError(c, &Error{Status: http.StatusConflict, Code: CodeConflict, Message: "the host's agent is revoked; it can run no plan"})
		return
	}

	now := a.now().UTC().Truncate(time.Microsecond)
	plan := store.Plan{
		ID: store.NewID(), TenantID: tenant, SiteID: siteID, HostID: hostID, AgentID: agent.ID,
		Status: store.StatusPending, Actions: make([]store.PlanAction, len(req.Actions)),
		CreatedAt: now, UpdatedAt: now,
	}
	vms := make(map[uuid.UUID]store.VM, len(req.Actions))
	for i, act := range req.Actions {
		vm, ok := vms[vmIDs[i]]
		if !ok {
			vm, err = a.store.GetVM(ctx, tenant, vmIDs[i])
			if err != nil && !isNotFound(err) {
				a.writeError(c, fmt.Errorf("getting vm %s: %w", vmIDs[i], err))
				return
			}
			if err != nil || vm.HostID != hostID {
				a.writeError(c, invalidArgument("actions[%d].vm_id %s names no vm of this host", i, vmIDs[i]))
				return
			}
			if isDeleted(vm) {
				a.writeError(c, vmDeleted(vm.ID))
				return
			}
			vms[vm.ID] = vm
		}
		params := req.Actions[i].Params
		if act.Type == store.ActionMicroVMCreate && isEmptyParams(params) {
			if params, err = createParams(vm, true); err != nil {
				a.writeError(c, fmt.Errorf("building create params of vm %s: %w", vm.ID, err))
				return
			}
		}
		if isEmptyParams(params) {
			params = json.RawMessage(`{}`)
		}
		plan.Actions[i] = store.PlanAction{
			ID: store.NewID(), PlanID: plan.ID, Seq: i, Type: act.Type, VMID: vm.ID, Params: params,
			Status: store.StatusPending, ExecutionID: store.NewID(), UpdatedAt: now,
		}
	}
	setAuditTarget(c, plan.ID.String())
	if err := a.submitPlan(ctx, plan); err != nil {
		a.writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, viewPlan(plan))
}

// checkActions checks the actions of a raw plan without the database and
// returns their VM ids. Explicit MicroVMCreate params are replaced by
// their canonical form (checkCreateParams).
func (req *createPlanRequest) checkActions() ([]uuid.UUID, error) {
	if len(req.Actions) == 0 || len(req.Actions) > agentproto.MaxActionsPerPlan {
		return nil, invalidArgument("actions must hold 1 to %d actions", agentproto.MaxActionsPerPlan)
	}
	vmIDs := make([]uuid.UUID, len(req.Actions))
	for i, act := range req.Actions {
		if !actionTypes[act.Type] {
			return nil, invalidArgument("actions[%d].type %q is not an action type", i, act.Type)
		}
		var err error
		if vmIDs[i], err = parseBodyID(fmt.Sprintf("actions[%d].vm_id", i), act.VMID); err != nil {
			return nil, err
		}
		if err := checkParams(i, act.Params); err != nil {
			return nil, err
		}
		if act.Type == store.ActionMicroVMCreate && !isEmptyParams(act.Params) {
			if req.Actions[i].Params, err = checkCreateParams(i, vmIDs[i], act.Params); err != nil {
				return nil, err
			}
		}
	}
	return vmIDs, nil
}

// submitPlan is the one way a plan enters the system, for raw plans and
// the VM lifecycle routes alike: checked against the agent protocol,
// stored, then handed to the agent channel right after the commit.
func (a *API) submitPlan(ctx context.Context, plan store.Plan) error {
	return a.submitPlanWith(plan, func() error {
		if err := a.store.CreatePlan(ctx, plan); err != nil {
			return fmt.Errorf("creating plan for host %s: %w", plan.HostID, err)
		}
		return nil
	})
}

// submitPlanWith is submitPlan with the store write given by the caller,
// for a plan that must be stored in one transaction with what it acts on
// (a new VM and the plan creating it). write must have committed the plan
// when it returns nil: only then is the plan dispatched.
func (a *API) submitPlanWith(plan store.Plan, write func() error) error {
	// The store must never hold a plan the agent channel would refuse to
	// encode; the protocol's own check is the authority on that.
	if err := wirePlan(plan).Validate(); err != nil {
		return invalidArgument("plan is not valid for the agent channel: %v", err)
	}
	if err := write(); err != nil {
		return err
	}
	if a.hub != nil {
		a.hub.DispatchPlan(plan)
	}
	return nil
}

// parseBodyID parses a required UUID field of a request body.
func parseBodyID(field, raw string) (uuid.UUID, error) {
	if raw == "" {
		return uuid.Nil, invalidArgument("%s is required", field)
	}
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 || id == uuid.Nil {
		return uuid.Nil, invalidArgument("%s %q is not a valid id", field, raw)
	}
	return id, nil
}

// checkParams accepts an absent/null params or a JSON object within the
// protocol's size bound.
func checkParams(i int, raw json.RawMessage) error {
	if isEmptyParams(raw) {
		return nil
	}
	if len(raw) > agentproto.MaxActionParamsBytes {
		return invalidArgument("actions[%d].params is larger than %d bytes", i, agentproto.MaxActionParamsBytes)
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return invalidArgument("actions[%d].params must be a JSON object", i)
	}
	return nil
}

// checkCreateParams checks the explicit MicroVMCreate params of a raw
// plan's action i exactly as POST /v1/vms checks its body (checkVMSpec),
// and returns them re-encoded in canonical form (MAC in lower case), so
// the agent never gets a spec the VM route would have refused.
func checkCreateParams(i int, vmID uuid.UUID, raw json.RawMessage) (json.RawMessage, error) {
	p, err := vmspec.DecodeCreateParams(raw)
	if err != nil {
		return nil, invalidArgument("actions[%d].params: %v", i, err)
	}
	if p.ID != uuid.Nil && p.ID != vmID {
		return nil, invalidArgument("actions[%d].params.id %s is not the action's vm_id %s", i, p.ID, vmID)
	}
	if err := checkVMSpec(fmt.Sprintf("actions[%d].params.", i), p.Spec()); err != nil {
		return nil, err
	}
	if p.MAC != "" {
		// Validated above, so it parses.
		p.MAC, _ = vmspec.CanonicalMAC(p.MAC)
	}
	p.ID = vmID
	out, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding params of action %d: %w", i, err)
	}
	return out, nil
}

func isEmptyParams(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// createParams builds the MicroVMCreate params of a VM from its record:
// the stored spec (disk image, kernel, cmdline, cloud-init, MAC) plus the
// name and size, which the agent needs to define the VM, and whether to
// boot it (written only when false: the agent boots when it is absent).
func createParams(vm store.VM, start bool) (json.RawMessage, error) {
	var sp vmSpec
	if len(vm.Spec) > 0 {
		if err := json.Unmarshal(vm.Spec, &sp); err != nil {
			return nil, fmt.Errorf("decoding spec: %w", err)
		}
	}
	p := vmspec.CreateParams{
		ID: vm.ID, Name: vm.Name, VCPUs: vm.VCPUs, MemoryMiB: vm.MemoryMiB,
		Kernel: sp.Kernel, Cmdline: sp.Cmdline, DiskImage: sp.DiskImage, MAC: sp.MAC,
	}
	if sp.CloudInit != nil {
		p.CloudInit = &vmspec.CloudInit{UserData: sp.CloudInit.UserData}
	}
	if !start {
		p.Start = &start
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding params: %w", err)
	}
	return raw, nil
}

// wirePlan is the plan as the agent channel carries it.
func wirePlan(p store.Plan) agentproto.Plan {
	out := agentproto.Plan{PlanID: p.ID, Actions: make([]agentproto.Action, 0, len(p.Actions))}
	for _, act := range p.Actions {
		out.Actions = append(out.Actions, agentproto.Action{
			ActionID: act.ID, ExecutionID: act.ExecutionID, Type: act.Type, VMID: act.VMID, Params: act.Params,
		})
	}
	return out
}
