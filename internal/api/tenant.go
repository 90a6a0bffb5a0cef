package api

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

type createTenantRequest struct {
	Name string `json:"name"`
}

func (a *API) createTenant(c *gin.Context) {
	var req createTenantRequest
	if err := decodeJSON(c, &req, false); err != nil {
		a.writeError(c, err)
		return
	}
	if err := checkName("name", req.Name); err != nil {
		a.writeError(c, err)
		return
	}
	t := store.Tenant{ID: store.NewID(), Name: req.Name, CreatedAt: a.now().UTC()}
	setAuditTarget(c, t.ID.String())
	if err := a.store.CreateTenant(c.Request.Context(), t); err != nil {
		a.writeError(c, fmt.Errorf("creating tenant: %w", err))
		return
	}
	c.JSON(http.StatusCreated, viewTenant(t))
}

func (a *API) listTenants(c *gin.Context) {
	page, err := parsePage(c)
	if err != nil {
		a.writeError(c, err)
		return
	}
	rows, more, err := a.store.ListTenants(c.Request.Context(), page)
	if err != nil {
		a.writeError(c, fmt.Errorf("listing tenants: %w", err))
		return
	}
	c.JSON(http.StatusOK, newList(rows, more, func(t store.Tenant) uuid.UUID { return t.ID }, viewTenant))
}
