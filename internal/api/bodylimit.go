package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// limitBody caps every request body at MaxBodyBytes. A declared length
// over the cap is refused before reading; otherwise the reader fails once
// the cap is crossed and decoding answers 413.
func (a *API) limitBody(c *gin.Context) {
	if c.Request.ContentLength > a.maxBody {
		a.writeError(c, errBodyTooLarge)
		return
	}
	if c.Request.Body != nil && c.Request.Body != http.NoBody {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, a.maxBody)
	}
	c.Next()
}
