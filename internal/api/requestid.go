package api

import (
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
)

// HeaderRequestID carries the request id in both directions.
const HeaderRequestID = "X-Request-ID"

const ctxKeyRequestID = "nkudo.request_id"

// maxRequestIDLen bounds an accepted incoming id: it ends up in every log
// line and audit event, so it must stay short and printable.
const maxRequestIDLen = 128

// requestIDMiddleware accepts a sane incoming X-Request-ID (so a proxy's
// or client's id follows the request through the logs), otherwise
// generates one, and echoes it on the response.
func (a *API) requestIDMiddleware(c *gin.Context) {
	id := c.GetHeader(HeaderRequestID)
	if !saneRequestID(id) {
		id = uuid.NewString()
	}
	c.Set(ctxKeyRequestID, id)
	c.Header(HeaderRequestID, id)
	c.Next()
}

// saneRequestID allows letters, digits and a few separators only, so an
// id can never inject into logs or headers.
func saneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case ch == '-', ch == '_', ch == '.', ch == ':':
		default:
			return false
		}
	}
	return true
}

// requestID returns the id of the request being served.
func requestID(c *gin.Context) string {
	return c.GetString(ctxKeyRequestID)
}
