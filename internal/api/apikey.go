package api

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

type createAPIKeyRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

func (a *API) createAPIKey(c *gin.Context) {
	var req createAPIKeyRequest
	if err := decodeJSON(c, &req, false); err != nil {
		a.writeError(c, err)
		return
	}
	if err := checkName("name", req.Name); err != nil {
		a.writeError(c, err)
		return
	}
	if !store.ValidRole(req.Role) {
		a.writeError(c, invalidArgument("role must be one of %s, %s, %s", store.RoleAdmin, store.RoleOperator, store.RoleViewer))
		return
	}
	secret, hash := newSecret(apiKeyPrefix)
	k := store.APIKey{
		ID:        store.NewID(),
		TenantID:  tenantOf(c),
		Name:      req.Name,
		Role:      req.Role,
		Prefix:    secret[:displayPrefixN],
		Hash:      hash,
		CreatedAt: a.now().UTC(),
	}
	setAuditTarget(c, k.ID.String())
	if err := a.store.CreateAPIKey(c.Request.Context(), k); err != nil {
		a.writeError(c, fmt.Errorf("creating api key: %w", err))
		return
	}
	c.Set(ctxKeyRedact, []string{"key"})
	c.JSON(http.StatusCreated, createdAPIKeyView{
		ID: k.ID, Key: secret, Name: k.Name, Role: k.Role, Prefix: k.Prefix, CreatedAt: k.CreatedAt,
	})
}

func (a *API) listAPIKeys(c *gin.Context) {
	page, err := parsePage(c)
	if err != nil {
		a.writeError(c, err)
		return
	}
	rows, more, err := a.store.ListAPIKeys(c.Request.Context(), tenantOf(c), page)
	if err != nil {
		a.writeError(c, fmt.Errorf("listing api keys: %w", err))
		return
	}
	c.JSON(http.StatusOK, newList(rows, more, func(k store.APIKey) uuid.UUID { return k.ID }, viewAPIKey))
}

func (a *API) deleteAPIKey(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		a.writeError(c, err)
		return
	}
	if err := a.store.DeleteAPIKey(c.Request.Context(), tenantOf(c), id); err != nil {
		a.writeError(c, fmt.Errorf("deleting api key %s: %w", id, err))
		return
	}
	a.touches.forget(id)
	c.Status(http.StatusNoContent)
}
