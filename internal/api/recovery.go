package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/gin-gonic/gin"
)

// recoverPanic turns a handler panic into a 500 internal error instead of
// a dropped connection, and logs the stack with the request id.
func (a *API) recoverPanic(c *gin.Context) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if r == http.ErrAbortHandler {
			// The handler asked net/http to abort the response on purpose.
			panic(r)
		}
		a.log.LogAttrs(c.Request.Context(), slog.LevelError, "handler panicked",
			slog.String(logKeyRequestID, requestID(c)),
			slog.String(logKeyPanic, fmt.Sprint(r)),
			slog.String(logKeyStack, string(debug.Stack())))
		a.writeError(c, fmt.Errorf("recovering from panic: %v", r))
	}()
	c.Next()
}
