package api

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// HeaderTenant names the tenant an admin-key request acts on.
const HeaderTenant = "X-Nkudo-Tenant"

const ctxKeyTenant = "nkudo.tenant"

var roleRank = map[string]int{
	store.RoleViewer:   1,
	store.RoleOperator: 2,
	store.RoleAdmin:    3,
}

// tenantScope fixes the tenant every store call of the request is filtered
// by: the key's own tenant, or for the admin key the tenant it names.
// A tenant key cannot reach another tenant whatever it sends.
func (a *API) tenantScope(c *gin.Context) {
	p, ok := principalOf(c)
	if !ok {
		a.writeError(c, errUnauthenticated)
		return
	}
	if !p.Admin {
		c.Set(ctxKeyTenant, p.TenantID)
		c.Next()
		return
	}
	raw := c.GetHeader(HeaderTenant)
	if raw == "" {
		raw = c.Query("tenant")
	}
	if raw == "" {
		a.writeError(c, invalidArgument("the admin key must name a tenant: send the %s header or the tenant query parameter", HeaderTenant))
		return
	}
	id, err := uuid.Parse(raw)
	if err != nil {
		a.writeError(c, invalidArgument("tenant %q is not a valid id", raw))
		return
	}
	if _, err := a.store.GetTenant(c.Request.Context(), id); err != nil {
		a.writeError(c, fmt.Errorf("getting tenant %s: %w", id, err))
		return
	}
	c.Set(ctxKeyTenant, id)
	c.Next()
}

// tenantOf returns the tenant fixed by tenantScope or tenantAdminFromPath;
// uuid.Nil outside a tenant (admin-only routes).
func tenantOf(c *gin.Context) uuid.UUID {
	if v, ok := c.Get(ctxKeyTenant); ok {
		if id, ok := v.(uuid.UUID); ok {
			return id
		}
	}
	return uuid.Nil
}

// requireRole refuses keys below min with 403. The admin key passes.
func (a *API) requireRole(min string) gin.HandlerFunc {
	need := roleRank[min]
	return func(c *gin.Context) {
		p, ok := principalOf(c)
		if !ok {
			a.writeError(c, errUnauthenticated)
			return
		}
		if !p.Admin && roleRank[p.Role] < need {
			a.writeError(c, errForbidden)
			return
		}
		c.Next()
	}
}

// requireAdminKey lets only the admin key through.
func (a *API) requireAdminKey(c *gin.Context) {
	p, ok := principalOf(c)
	if !ok {
		a.writeError(c, errUnauthenticated)
		return
	}
	if !p.Admin {
		a.writeError(c, &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: "only the admin key may do this"})
		return
	}
	c.Next()
}

// tenantAdminFromPath scopes /v1/tenants/{tenant}/… routes: the admin key
// for any existing tenant, or an admin key of that very tenant. A key of
// another tenant gets 404, as if the tenant did not exist.
func (a *API) tenantAdminFromPath(c *gin.Context) {
	p, ok := principalOf(c)
	if !ok {
		a.writeError(c, errUnauthenticated)
		return
	}
	id, err := pathID(c, "tenant")
	if err != nil {
		a.writeError(c, err)
		return
	}
	switch {
	case p.Admin:
		if _, err := a.store.GetTenant(c.Request.Context(), id); err != nil {
			a.writeError(c, fmt.Errorf("getting tenant %s: %w", id, err))
			return
		}
	case p.TenantID != id:
		a.writeError(c, store.ErrNotFound)
		return
	case p.Role != store.RoleAdmin:
		a.writeError(c, errForbidden)
		return
	}
	c.Set(ctxKeyTenant, id)
	c.Next()
}

// pathID parses a UUID path parameter; a malformed one is a 400.
func pathID(c *gin.Context, name string) (uuid.UUID, error) {
	raw := c.Param(name)
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		return uuid.Nil, invalidArgument("%s %q is not a valid id", name, raw)
	}
	return id, nil
}
