package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// errChannelUnavailable answers agent connections on an API built without
// a hub (tests of the JSON API alone).
var errChannelUnavailable = &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "the agent channel is not configured on this server"}

// agentConnect hands GET /v1/agent/connect to the hub. The route sits
// outside the /v1 group: agents authenticate with their client
// certificate, not an API key, and the hub has its own admission control,
// so the per-address limit (made for API clients) must not throttle a
// fleet reconnecting from behind one NAT. The global middleware is safe
// for a hijacked connection: the request has no body to limit, the access
// log line is written when the session ends, and the server sets no read
// or write timeout that would outlive the upgrade.
func (a *API) agentConnect(c *gin.Context) {
	if a.hub == nil {
		a.writeError(c, errChannelUnavailable)
		return
	}
	a.hub.ServeAgent(c.Writer, c.Request)
}

// CloseStreams ends every live log stream (SSE) now. The server calls it
// when it starts shutting down, since http.Server.Shutdown waits for
// handlers that would otherwise run until their clients leave; clients
// resume with Last-Event-ID on another replica or after the restart.
func (a *API) CloseStreams() {
	a.closeStreams.Do(func() { close(a.streamsDone) })
}
