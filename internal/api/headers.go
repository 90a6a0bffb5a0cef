package api

import (
	"strings"

	"github.com/gin-gonic/gin"
)

// hstsMaxAge is the Strict-Transport-Security max-age: one year, the
// value browsers' preload lists expect.
const hstsMaxAge = "max-age=31536000"

// securityHeaders sets the headers every answer needs before any handler
// writes: no /v1 answer may be cached anywhere (some carry a secret shown
// once: a new API key, an enrollment token, an agent certificate), and an
// answer over HTTPS tells clients to never fall back to plain HTTP.
// Handlers may add to them but must not weaken them.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	if p := c.Request.URL.Path; p == "/v1" || strings.HasPrefix(p, "/v1/") {
		h.Set("Cache-Control", "no-store")
	}
	if c.Request.TLS != nil {
		h.Set("Strict-Transport-Security", hstsMaxAge)
	}
	c.Next()
}
