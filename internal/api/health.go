package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// readyTimeout keeps /readyz answering quickly when the database hangs.
const readyTimeout = 2 * time.Second

func (a *API) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz answers 200 while the database answers. With the NetBird
// integration on it adds the state of the NetBird API token, so a refused
// token shows where operators look first.
func (a *API) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		// The cause may name files or hosts; it goes to the log only.
		a.log.LogAttrs(ctx, slog.LevelWarn, "readiness check failed",
			slog.String(logKeyRequestID, requestID(c)), slog.String(logKeyError, err.Error()))
		a.writeError(c, &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "the database is unreachable"})
		return
	}
	if nb := a.readyNetBird(); nb != nil {
		c.JSON(http.StatusOK, gin.H{"status": "ok", "netbird": nb})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}
