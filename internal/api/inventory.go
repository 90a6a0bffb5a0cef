package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// listHosts lists the tenant's hosts, optionally of one site (?site_id=).
func (a *API) listHosts(c *gin.Context) {
	page, err := parsePage(c)
	if err != nil {
		a.writeError(c, err)
		return
	}
	siteID, err := uuidQuery(c, "site_id")
	if err != nil {
		a.writeError(c, err)
		return
	}
	rows, more, err := a.store.ListHosts(c.Request.Context(), tenantOf(c), siteID, page)
	if err != nil {
		a.writeError(c, fmt.Errorf("listing hosts: %w", err))
		return
	}
	c.JSON(http.StatusOK, newList(rows, more, func(h store.Host) uuid.UUID { return h.ID }, a.hostView))
}

func (a *API) getHost(c *gin.Context) {
	id, err := pathID(c, "host")
	if err != nil {
		a.writeError(c, err)
		return
	}
	h, err := a.store.GetHost(c.Request.Context(), tenantOf(c), id)
	if err != nil {
		a.writeError(c, fmt.Errorf("getting host %s: %w", id, err))
		return
	}
	c.JSON(http.StatusOK, a.hostView(h))
}

func (a *API) listAgents(c *gin.Context) {
	page, err := parsePage(c)
	if err != nil {
		a.writeError(c, err)
		return
	}
	rows, more, err := a.store.ListAgents(c.Request.Context(), tenantOf(c), page)
	if err != nil {
		a.writeError(c, fmt.Errorf("listing agents: %w", err))
		return
	}
	c.JSON(http.StatusOK, newList(rows, more, func(g store.Agent) uuid.UUID { return g.ID }, viewAgent))
}

// revokeAgent marks the agent revoked in the store (so its next handshake
// is refused on every replica) and tells the agent channel to close its
// live session now.
func (a *API) revokeAgent(c *gin.Context) {
	id, err := pathID(c, "agent")
	if err != nil {
		a.writeError(c, err)
		return
	}
	// The body is optional, but when there is one it is held to the same
	// rules as every other: a malformed one revokes nothing.
	var body revokeRequest
	if err := decodeJSON(c, &body, true); err != nil {
		a.writeError(c, err)
		return
	}
	if err := checkReason(body.Reason); err != nil {
		a.writeError(c, err)
		return
	}
	g, err := a.store.RevokeAgent(c.Request.Context(), tenantOf(c), id, a.now().UTC())
	if err != nil {
		a.writeError(c, fmt.Errorf("revoking agent %s: %w", id, err))
		return
	}
	if a.revoked != nil {
		a.revoked(g)
	}
	peer := a.removePeer(c, g)
	a.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "agent revoked",
		slog.String(logKeyRequestID, requestID(c)), slog.String("agent_id", id.String()),
		slog.String("reason", body.Reason))
	c.JSON(http.StatusOK, revokedAgentView{agentView: viewAgent(g), NetBird: peer})
}

// revokeRequest is the optional body of POST /v1/agents/{agent}/revoke.
type revokeRequest struct {
	Reason string `json:"reason"`
}

// maxReasonLen bounds a revocation reason (in characters).
const maxReasonLen = 1000

// checkReason accepts printable UTF-8 up to maxReasonLen characters: the
// reason goes to the server log, where a control character could forge
// lines.
func checkReason(s string) error {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxReasonLen {
		return invalidArgument("reason must be at most %d characters of valid UTF-8", maxReasonLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return invalidArgument("reason must not contain control characters")
		}
	}
	return nil
}

// listVMs lists the tenant's VMs; ?site_id=, ?host_id= narrow it and
// ?include_deleted=true adds deleted ones.
func (a *API) listVMs(c *gin.Context) {
	page, err := parsePage(c)
	if err != nil {
		a.writeError(c, err)
		return
	}
	var f store.VMFilter
	if f.SiteID, err = uuidQuery(c, "site_id"); err != nil {
		a.writeError(c, err)
		return
	}
	if f.HostID, err = uuidQuery(c, "host_id"); err != nil {
		a.writeError(c, err)
		return
	}
	switch c.Query("include_deleted") {
	case "", "false":
	case "true":
		f.IncludeDeleted = true
	default:
		a.writeError(c, invalidArgument("include_deleted must be true or false"))
		return
	}
	rows, more, err := a.store.ListVMs(c.Request.Context(), tenantOf(c), f, page)
	if err != nil {
		a.writeError(c, fmt.Errorf("listing vms: %w", err))
		return
	}
	c.JSON(http.StatusOK, newList(rows, more, func(v store.VM) uuid.UUID { return v.ID }, viewVM))
}

func (a *API) getVM(c *gin.Context) {
	id, err := pathID(c, "vm")
	if err != nil {
		a.writeError(c, err)
		return
	}
	v, err := a.store.GetVM(c.Request.Context(), tenantOf(c), id)
	if err != nil {
		a.writeError(c, fmt.Errorf("getting vm %s: %w", id, err))
		return
	}
	c.JSON(http.StatusOK, viewVM(v))
}

var planStatuses = map[string]bool{
	store.StatusPending: true, store.StatusDispatched: true, store.StatusRunning: true,
	store.StatusSucceeded: true, store.StatusFailed: true, store.StatusCancelled: true,
}

// listPlans lists the tenant's plans; ?site_id= and ?status= narrow it.
func (a *API) listPlans(c *gin.Context) {
	page, err := parsePage(c)
	if err != nil {
		a.writeError(c, err)
		return
	}
	var f store.PlanFilter
	if f.SiteID, err = uuidQuery(c, "site_id"); err != nil {
		a.writeError(c, err)
		return
	}
	if f.Status = c.Query("status"); f.Status != "" && !planStatuses[f.Status] {
		a.writeError(c, invalidArgument("status %q is not a plan status", f.Status))
		return
	}
	rows, more, err := a.store.ListPlans(c.Request.Context(), tenantOf(c), f, page)
	if err != nil {
		a.writeError(c, fmt.Errorf("listing plans: %w", err))
		return
	}
	c.JSON(http.StatusOK, newList(rows, more, func(p store.Plan) uuid.UUID { return p.ID }, viewPlan))
}

func (a *API) getPlan(c *gin.Context) {
	id, err := pathID(c, "plan")
	if err != nil {
		a.writeError(c, err)
		return
	}
	p, err := a.store.GetPlan(c.Request.Context(), tenantOf(c), id)
	if err != nil {
		a.writeError(c, fmt.Errorf("getting plan %s: %w", id, err))
		return
	}
	c.JSON(http.StatusOK, viewPlan(p))
}

func (a *API) getExecution(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		a.writeError(c, err)
		return
	}
	e, err := a.store.GetExecution(c.Request.Context(), tenantOf(c), id)
	if err != nil {
		a.writeError(c, fmt.Errorf("getting execution %s: %w", id, err))
		return
	}
	c.JSON(http.StatusOK, viewExecution(e))
}

func (a *API) listAuditEvents(c *gin.Context) {
	page, err := parsePage(c)
	if err != nil {
		a.writeError(c, err)
		return
	}
	rows, more, err := a.store.ListAudit(c.Request.Context(), tenantOf(c), page)
	if err != nil {
		a.writeError(c, fmt.Errorf("listing audit events: %w", err))
		return
	}
	c.JSON(http.StatusOK, newList(rows, more, func(e store.AuditEvent) uuid.UUID { return e.ID }, viewAuditEvent))
}
