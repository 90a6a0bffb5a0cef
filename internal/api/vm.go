package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/vmspec"
)

// Error codes of the VM lifecycle routes.
const (
	// CodeHostOffline: the VM's host (or the host asked for) is offline,
	// so nothing can be done to it now.
	CodeHostOffline = "host_offline"
	// CodeNoHostAvailable: no host of the site is online to place a VM on.
	CodeNoHostAvailable = "no_host_available"
	// CodeVMDeleted: the VM was deleted; it accepts no further action.
	CodeVMDeleted = "vm_deleted"
	// CodeVMNotRunning: the action needs a VM meant to be running.
	CodeVMNotRunning = "vm_not_running"
	// CodeNameTaken: another VM of the tenant has that name.
	CodeNameTaken = "name_taken"
)

type cloudInitBody struct {
	UserData string `json:"user_data"`
}

type createVMRequest struct {
	Name      string         `json:"name"`
	SiteID    string         `json:"site_id"`
	HostID    string         `json:"host_id"`
	VCPUs     int            `json:"vcpus"`
	MemoryMiB int            `json:"memory_mib"`
	Kernel    string         `json:"kernel"`
	Cmdline   string         `json:"cmdline"`
	DiskImage string         `json:"disk_image"`
	CloudInit *cloudInitBody `json:"cloud_init"`
	Start     *bool          `json:"start"`
}

// vmSpec is what VM.Spec holds: the create request beyond name and size,
// plus the NIC's MAC address, chosen once so the guest keeps it across
// re-creations and agent restarts.
type vmSpec struct {
	Kernel    string         `json:"kernel,omitempty"`
	Cmdline   string         `json:"cmdline,omitempty"`
	DiskImage string         `json:"disk_image"`
	CloudInit *cloudInitBody `json:"cloud_init,omitempty"`
	MAC       string         `json:"mac"`
}

// createdVMView answers POST /v1/vms: the VM and the plan that creates it.
type createdVMView struct {
	VM   vmView   `json:"vm"`
	Plan planView `json:"plan"`
}

// spec is the request's VM spec, as internal/vmspec checks it.
func (r createVMRequest) spec() vmspec.Spec {
	s := vmspec.Spec{
		Name: r.Name, VCPUs: r.VCPUs, MemoryMiB: r.MemoryMiB, Kernel: r.Kernel, Cmdline: r.Cmdline, DiskImage: r.DiskImage,
	}
	if r.CloudInit != nil {
		s.UserData = r.CloudInit.UserData
	}
	return s
}

// checkVMSpec is the one check of a VM spec entering the API, on
// POST /v1/vms and on the MicroVMCreate params of raw plans alike: every
// problem vmspec finds, each named by its field (prefix + field), in one
// 400 answer.
func checkVMSpec(prefix string, s vmspec.Spec) error {
	problems := vmspec.Problems(s.Validate())
	if len(problems) == 0 {
		return nil
	}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = prefix + p.Error()
	}
	return invalidArgument("%s", strings.Join(msgs, "; "))
}

// macFor derives the VM's NIC address from its id: locally administered
// (0x02), unicast, and stable for the VM's life. The id is a UUIDv7 whose
// last bytes are random, so addresses of a site's VMs do not collide in
// practice.
func macFor(id uuid.UUID) string {
	return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", id[11], id[12], id[13], id[14], id[15])
}

// createVM places a VM on a host, records it and dispatches the plan that
// creates (and, unless start is false, boots) it.
func (a *API) createVM(c *gin.Context) {
	var req createVMRequest
	if err := decodeJSON(c, &req, false); err != nil {
		a.writeError(c, err)
		return
	}
	siteID, err := parseBodyID("site_id", req.SiteID)
	if err != nil {
		a.writeError(c, err)
		return
	}
	var hostID uuid.UUID
	if req.HostID != "" {
		if hostID, err = parseBodyID("host_id", req.HostID); err != nil {
			a.writeError(c, err)
			return
		}
	}
	if err := checkVMSpec("", req.spec()); err != nil {
		a.writeError(c, err)
		return
	}

	tenant := tenantOf(c)
	ctx := c.Request.Context()
	if _, err := a.store.GetSite(ctx, tenant, siteID); err != nil {
		a.writeError(c, fmt.Errorf("getting site %s: %w", siteID, err))
		return
	}
	host, err := a.placeVM(ctx, tenant, siteID, hostID)
	if err != nil {
		a.writeError(c, err)
		return
	}

	now := a.now().UTC().Truncate(time.Microsecond)
	id := store.NewID()
	spec, err := json.Marshal(vmSpec{
		Kernel: req.Kernel, Cmdline: req.Cmdline, DiskImage: req.DiskImage, CloudInit: req.CloudInit, MAC: macFor(id),
	})
	if err != nil {
		a.writeError(c, fmt.Errorf("encoding spec of vm %s: %w", id, err))
		return
	}
	start := req.Start == nil || *req.Start
	desired := store.VMRunning
	if !start {
		desired = store.VMStopped
	}
	vm := store.VM{
		ID: id, TenantID: tenant, SiteID: siteID, HostID: host.ID, Name: req.Name,
		DesiredState: desired, ActualState: store.VMCreating, VCPUs: req.VCPUs, MemoryMiB: req.MemoryMiB,
		Spec: spec, CreatedAt: now, UpdatedAt: now,
	}
	params, err := createParams(vm, start)
	if err != nil {
		a.writeError(c, fmt.Errorf("building create params of vm %s: %w", id, err))
		return
	}
	plan := newVMPlan(host, vm, store.ActionMicroVMCreate, params, now)

	setAuditTarget(c, id.String())
	// The VM and the plan creating it are one transaction, so no VM is
	// ever left in "creating" without a plan. The plan is checked against
	// the agent protocol first (a spec near the user_data bound can make
	// params too large for it), so a refused spec stores nothing either.
	err = a.submitPlanWith(plan, func() error { return a.store.CreateVMWithPlan(ctx, vm, plan) })
	if err != nil {
		// The plan's ids are all new, so a conflict can only be the name.
		if isConflict(err) {
			a.writeError(c, &Error{Status: http.StatusConflict, Code: CodeNameTaken, Message: fmt.Sprintf("a vm named %q already exists in this tenant", req.Name)})
			return
		}
		a.writeError(c, fmt.Errorf("creating vm %s: %w", id, err))
		return
	}
	c.JSON(http.StatusCreated, createdVMView{VM: viewVM(vm), Plan: viewPlan(plan)})
}

// placeVM picks the host of a new VM: the one asked for, which must be a
// host of the site and online, or else the online host of the site with
// the fewest VMs (ties go to the oldest host, so placement is
// deterministic).
func (a *API) placeVM(ctx context.Context, tenant, siteID, hostID uuid.UUID) (store.Host, error) {
	if hostID != uuid.Nil {
		h, err := a.store.GetHost(ctx, tenant, hostID)
		if err != nil && !isNotFound(err) {
			return store.Host{}, fmt.Errorf("getting host %s: %w", hostID, err)
		}
		if err != nil || h.SiteID != siteID {
			return store.Host{}, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf("host %s is not a host of site %s", hostID, siteID)}
		}
		if !h.Online {
			return store.Host{}, hostOffline(h)
		}
		return h, nil
	}
	var online []store.Host
	page := store.Page{Limit: MaxPageLimit}
	for {
		hosts, more, err := a.store.ListHosts(ctx, tenant, siteID, page)
		if err != nil {
			return store.Host{}, fmt.Errorf("listing hosts of site %s: %w", siteID, err)
		}
		for _, h := range hosts {
			if h.Online {
				online = append(online, h)
			}
		}
		if !more || len(hosts) == 0 {
			break
		}
		page.After = hosts[len(hosts)-1].ID
	}
	if len(online) == 0 {
		return store.Host{}, &Error{Status: http.StatusConflict, Code: CodeNoHostAvailable,
			Message: fmt.Sprintf("no host of site %s is online to place the vm on", siteID)}
	}
	counts, err := a.store.CountVMsByHost(ctx, tenant, siteID)
	if err != nil {
		return store.Host{}, fmt.Errorf("counting vms of site %s: %w", siteID, err)
	}
	return slices.MinFunc(online, func(x, y store.Host) int {
		if d := counts[x.ID] - counts[y.ID]; d != 0 {
			return d
		}
		return bytes.Compare(x.ID[:], y.ID[:])
	}), nil
}

// isDeleted: the VM was deleted (or is being deleted); it accepts no
// further action, from the VM routes or from a raw plan.
func isDeleted(vm store.VM) bool {
	return vm.DesiredState == store.VMDeleted || vm.ActualState == store.VMDeleted
}

func vmDeleted(id uuid.UUID) *Error {
	return &Error{Status: http.StatusConflict, Code: CodeVMDeleted, Message: fmt.Sprintf("vm %s was deleted; it accepts no further action", id)}
}

func isConflict(err error) bool { return errors.Is(err, store.ErrConflict) }

func hostOffline(h store.Host) *Error {
	return &Error{Status: http.StatusConflict, Code: CodeHostOffline,
		Message: fmt.Sprintf("host %s (%s) is offline; try again when its agent is connected", h.ID, h.Hostname)}
}

// newVMPlan is a one-action plan for a VM on its host.
func newVMPlan(host store.Host, vm store.VM, typ string, params json.RawMessage, now time.Time) store.Plan {
	if isEmptyParams(params) {
		params = json.RawMessage(`{}`)
	}
	p := store.Plan{
		ID: store.NewID(), TenantID: vm.TenantID, SiteID: vm.SiteID, HostID: host.ID, AgentID: host.AgentID,
		Status: store.StatusPending, CreatedAt: now, UpdatedAt: now,
	}
	p.Actions = []store.PlanAction{{
		ID: store.NewID(), PlanID: p.ID, Seq: 0, Type: typ, VMID: vm.ID, Params: params,
		Status: store.StatusPending, ExecutionID: store.NewID(), UpdatedAt: now,
	}}
	return p
}

// vmAction is one lifecycle route: the action it plans and the desired
// state it records ("" keeps the current one).
type vmAction struct {
	typ     string
	desired string
}

var (
	vmStart  = vmAction{typ: store.ActionMicroVMStart, desired: store.VMRunning}
	vmStop   = vmAction{typ: store.ActionMicroVMStop, desired: store.VMStopped}
	vmReboot = vmAction{typ: store.ActionMicroVMReboot}
	vmDelete = vmAction{typ: store.ActionMicroVMDelete, desired: store.VMDeleted}
)

// vmActionHandler answers POST /v1/vms/{vm}/start|stop|reboot and
// DELETE /v1/vms/{vm}: record the desired state, plan the action, 202 with
// the plan.
func (a *API) vmActionHandler(act vmAction) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, err := pathID(c, "vm")
		if err != nil {
			a.writeError(c, err)
			return
		}
		if err := decodeJSON(c, &struct{}{}, true); err != nil {
			a.writeError(c, err)
			return
		}
		tenant := tenantOf(c)
		ctx := c.Request.Context()
		vm, err := a.store.GetVM(ctx, tenant, id)
		if err != nil {
			a.writeError(c, fmt.Errorf("getting vm %s: %w", id, err))
			return
		}
		setAuditTarget(c, id.String())
		if isDeleted(vm) {
			a.writeError(c, vmDeleted(id))
			return
		}
		if act.typ == store.ActionMicroVMReboot && vm.DesiredState != store.VMRunning {
			a.writeError(c, &Error{Status: http.StatusConflict, Code: CodeVMNotRunning, Message: fmt.Sprintf("vm %s is meant to be %s; start it instead of rebooting it", id, vm.DesiredState)})
			return
		}
		host, err := a.store.GetHost(ctx, tenant, vm.HostID)
		if err != nil {
			a.writeError(c, fmt.Errorf("getting host %s of vm %s: %w", vm.HostID, id, err))
			return
		}
		if !host.Online {
			a.writeError(c, hostOffline(host))
			return
		}
		now := a.now().UTC().Truncate(time.Microsecond)
		plan := newVMPlan(host, vm, act.typ, nil, now)
		if act.desired != "" && act.desired != vm.DesiredState {
			if err := a.store.SetVMDesiredState(ctx, tenant, id, act.desired, now); err != nil {
				a.writeError(c, fmt.Errorf("setting desired state of vm %s: %w", id, err))
				return
			}
		}
		if err := a.submitPlan(ctx, plan); err != nil {
			a.writeError(c, fmt.Errorf("planning %s of vm %s: %w", act.typ, id, err))
			return
		}
		c.JSON(http.StatusAccepted, viewPlan(plan))
	}
}
