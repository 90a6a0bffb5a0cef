package api

import (
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// The accessors below let routes added through Engine (enrollment, the
// agent channel, VM actions) reuse the package's middleware and error
// mapping, so every route behaves the same way.

// LimitIP returns the per-client-address rate limit of /v1 routes.
func (a *API) LimitIP() gin.HandlerFunc { return a.limitIP }

// LimitEnroll returns the per-client-address enrollment rate limit.
func (a *API) LimitEnroll() gin.HandlerFunc { return a.limitEnroll }

// Authenticate returns the bearer-key authentication followed by the
// per-key rate limit.
func (a *API) Authenticate() []gin.HandlerFunc {
	return []gin.HandlerFunc{a.authenticate, a.limitKey}
}

// TenantScope fixes the request's tenant (see the package doc for the
// admin key); read it with TenantID.
func (a *API) TenantScope() gin.HandlerFunc { return a.tenantScope }

// RequireRole refuses tenant keys below role with 403.
func (a *API) RequireRole(role string) gin.HandlerFunc { return a.requireRole(role) }

// Audited records an audit event with action for the request.
func (a *API) Audited(action string) gin.HandlerFunc { return a.audited(action) }

// Idempotent honours the Idempotency-Key header of a creating POST.
func (a *API) Idempotent() gin.HandlerFunc { return a.idempotent }

// WriteError answers err in the API's error shape and aborts the chain.
func (a *API) WriteError(c *gin.Context, err error) { a.writeError(c, err) }

// TenantID returns the tenant fixed by TenantScope, uuid.Nil if none.
func TenantID(c *gin.Context) uuid.UUID { return tenantOf(c) }

// RequestID returns the request's id.
func RequestID(c *gin.Context) string { return requestID(c) }

// SetAuditTarget names the object a mutating handler acted on.
func SetAuditTarget(c *gin.Context, id string) { setAuditTarget(c, id) }

// RedactFromReplay names top-level response fields holding a secret shown
// once; they are left out of the stored idempotency record.
func RedactFromReplay(c *gin.Context, fields ...string) { c.Set(ctxKeyRedact, fields) }

// DecodeJSON strictly decodes the request body into dst.
func DecodeJSON(c *gin.Context, dst any, allowEmpty bool) error {
	return decodeJSON(c, dst, allowEmpty)
}

// PathID parses a UUID path parameter (400 invalid_argument if malformed).
func PathID(c *gin.Context, name string) (uuid.UUID, error) { return pathID(c, name) }

// ParsePage reads ?limit= and ?cursor=.
func ParsePage(c *gin.Context) (store.Page, error) { return parsePage(c) }

// NextCursor encodes the cursor that follows id in a list.
func NextCursor(id uuid.UUID) string { return encodeCursor(id) }
