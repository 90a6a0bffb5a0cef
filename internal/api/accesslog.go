package api

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// Log attribute keys, shared by every log line of the package.
const (
	logKeyRequestID = "request_id"
	logKeyMethod    = "method"
	logKeyPath      = "path"
	logKeyRoute     = "route"
	logKeyStatus    = "status"
	logKeyDuration  = "duration"
	logKeyClientIP  = "client_ip"
	logKeyBytes     = "bytes"
	logKeyActor     = "actor"
	logKeyCode      = "error_code"
	logKeyError     = "error"
	logKeyPanic     = "panic"
	logKeyStack     = "stack"
)

// routeUnmatched labels requests that matched no route, so metrics stay
// bounded whatever paths clients try.
const routeUnmatched = "unmatched"

// observe writes the access log line and the HTTP metrics of every
// request. It logs the path without the query string and never any
// header, so neither the Authorization header nor secrets in a query can
// reach the logs.
func (a *API) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	elapsed := time.Since(start)

	route := c.FullPath()
	if route == "" {
		route = routeUnmatched
	}
	status := c.Writer.Status()
	a.metrics.observe(route, c.Request.Method, status, elapsed)

	level := slog.LevelInfo
	switch {
	case status >= http.StatusInternalServerError:
		level = slog.LevelWarn
	case route == "/healthz" || route == "/readyz":
		// Probes hit these every few seconds; keep them out of the
		// default log level.
		level = slog.LevelDebug
	}
	if !a.log.Enabled(c.Request.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String(logKeyRequestID, requestID(c)),
		slog.String(logKeyMethod, c.Request.Method),
		slog.String(logKeyPath, c.Request.URL.Path),
		slog.String(logKeyRoute, route),
		slog.Int(logKeyStatus, status),
		slog.Duration(logKeyDuration, elapsed),
		slog.String(logKeyClientIP, c.ClientIP()),
		slog.Int(logKeyBytes, c.Writer.Size()),
	}
	if p, ok := principalOf(c); ok {
		attrs = append(attrs, slog.String(logKeyActor, p.actor()))
	}
	if code := errorCode(c); code != "" {
		attrs = append(attrs, slog.String(logKeyCode, code))
	}
	a.log.LogAttrs(c.Request.Context(), level, "http request", attrs...)
}
