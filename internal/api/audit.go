package api

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// Audit results other than an error code.
const auditOK = "ok"

const ctxKeyAuditTarget = "nkudo.audit_target"

// setAuditTarget names the object a mutating handler acted on (for a
// create, the new id, which is not in the path).
func setAuditTarget(c *gin.Context, id string) { c.Set(ctxKeyAuditTarget, id) }

// audited writes one audit event per authenticated mutating call, after
// the handler ran, with the outcome: "ok" or the error code answered. It
// sits before the role check so refused attempts are recorded too.
func (a *API) audited(action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		p, ok := principalOf(c)
		if !ok {
			return
		}
		result := auditOK
		if status := c.Writer.Status(); status >= http.StatusBadRequest {
			result = errorCode(c)
			if result == "" {
				result = strconv.Itoa(status)
			}
		}
		target := c.GetString(ctxKeyAuditTarget)
		if target == "" && len(c.Params) > 0 {
			// The innermost path parameter is the object acted on.
			target = c.Params[len(c.Params)-1].Value
		}
		tenant := tenantOf(c)
		if tenant == uuid.Nil {
			tenant = p.TenantID
		}
		ev := store.AuditEvent{
			ID:        store.NewID(),
			TenantID:  tenant,
			Actor:     p.actor(),
			Action:    action,
			Target:    target,
			Result:    result,
			RequestID: requestID(c),
			At:        a.now(),
		}
		// The client may be gone already; the record must still be written.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), 5*time.Second)
		defer cancel()
		if err := a.store.AppendAudit(ctx, ev); err != nil {
			a.log.LogAttrs(ctx, slog.LevelError, "writing audit event failed",
				slog.String(logKeyRequestID, ev.RequestID),
				slog.String("action", action),
				slog.String(logKeyError, err.Error()))
		}
	}
}
