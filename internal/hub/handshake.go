package hub

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/coder/websocket"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store"
)

// refusal is a handshake refused before the WebSocket upgrade.
type refusal struct {
	status  int
	reason  string // metric label
	code    string // JSON error code
	message string
}

func (r *refusal) Error() string { return r.message }

// errorBody is the API's error shape: {"error":{"code","message"}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusUpgradeRequired {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: errorDetail{Code: code, Message: message}})
}

// ServeAgent is the GET /v1/agent/connect handler: it authenticates the
// agent by its verified client certificate, upgrades to a WebSocket and
// starts the session on a goroutine of its own, returning at once. Refusals
// before the upgrade answer with a JSON error (503 with Retry-After when
// admission control is saturated); later ones close the WebSocket with a
// protocol close status.
func (h *Hub) ServeAgent(w http.ResponseWriter, r *http.Request) {
	if !h.beginSession() {
		h.metrics.refused(refuseShutdown)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down; reconnect later")
		return
	}
	// The session's goroutine takes over the sessWG place (and the
	// admission slot) once the connection is upgraded.
	handedOff := false
	defer func() {
		if !handedOff {
			h.sessWG.Done()
		}
	}()
	// Admission comes before the store lookup and the upgrade: a refused
	// request costs the server one short JSON answer.
	adm, ok := h.admitHandshake(w, r)
	if !ok {
		return
	}
	defer func() {
		if !handedOff {
			h.release(adm)
		}
	}()

	agent, id, err := h.authenticate(r)
	if err != nil {
		var ref *refusal
		if !errors.As(err, &ref) {
			ref = &refusal{status: http.StatusInternalServerError, reason: refuseStore, code: "internal", message: "internal error"}
		}
		h.metrics.refused(ref.reason)
		h.log.Info("refusing agent connection", logKeyRemote, r.RemoteAddr, logKeyReason, ref.reason, logKeyErr, err)
		writeError(w, ref.status, ref.code, ref.message)
		return
	}

	// Taken before Accept answers, so a client that dials again after its
	// dial returned always gets a higher number.
	connSeq := h.acceptSeq.Add(1)
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:    []string{agentproto.Subprotocol},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		// Accept has already answered the client.
		h.metrics.refused(refuseNotWebSocket)
		h.log.Info("refusing agent connection", logKeyRemote, r.RemoteAddr, logKeyAgent, id.AgentID, logKeyErr, err)
		return
	}
	if conn.Subprotocol() != agentproto.Subprotocol {
		h.metrics.refused(refuseSubprotocol)
		_ = conn.Close(agentproto.CloseProtocolError, "subprotocol "+agentproto.Subprotocol+" required")
		return
	}
	conn.SetReadLimit(agentproto.MaxFrameBytes)
	s := newSession(h, conn, id, agent, connSeq)
	s.holdsSlot, s.admission = true, adm
	handedOff = true
	go s.serve(r.RemoteAddr)
}

// authenticate applies channel.md step 1 to the request.
func (h *Hub) authenticate(r *http.Request) (store.Agent, pki.AgentIdentity, error) {
	var id pki.AgentIdentity
	if r.TLS == nil {
		return store.Agent{}, id, &refusal{http.StatusBadRequest, refuseNoTLS, "tls_required",
			"the agent channel requires HTTPS with a client certificate"}
	}
	if r.TLS.Version != tls.VersionTLS13 {
		return store.Agent{}, id, &refusal{http.StatusBadRequest, refuseTLSVersion, "tls13_required",
			"the agent channel requires TLS 1.3"}
	}
	if len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return store.Agent{}, id, &refusal{http.StatusUnauthorized, refuseNoClientCert, "client_certificate_required",
			"the agent channel requires a client certificate issued by this server's CA"}
	}
	if r.Method != http.MethodGet || !headerHasToken(r.Header, "Connection", "upgrade") ||
		!headerHasToken(r.Header, "Upgrade", "websocket") {
		return store.Agent{}, id, &refusal{http.StatusUpgradeRequired, refuseNotWebSocket, "websocket_required",
			"GET /v1/agent/connect must be a WebSocket upgrade"}
	}
	if !headerHasToken(r.Header, "Sec-WebSocket-Protocol", agentproto.Subprotocol) {
		return store.Agent{}, id, &refusal{http.StatusBadRequest, refuseSubprotocol, "subprotocol_required",
			"the client must offer the WebSocket subprotocol " + agentproto.Subprotocol}
	}
	leaf := r.TLS.VerifiedChains[0][0]
	id, err := pki.IdentityFromCert(leaf)
	if err != nil {
		return store.Agent{}, id, &refusal{http.StatusForbidden, refuseIdentity, "not_agent_certificate",
			"the client certificate does not name an agent"}
	}
	agent, err := h.store.GetAgent(r.Context(), id.AgentID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Agent{}, id, &refusal{http.StatusForbidden, refuseUnknownAgent, "unknown_agent",
			"the agent is not enrolled"}
	case err != nil:
		if errors.Is(err, context.Canceled) {
			return store.Agent{}, id, fmt.Errorf("looking up agent %s: %w", id.AgentID, err)
		}
		return store.Agent{}, id, &refusal{http.StatusServiceUnavailable, refuseStore, "unavailable",
			"the server cannot check the agent right now; retry later"}
	case agent.Revoked:
		return store.Agent{}, id, &refusal{http.StatusForbidden, refuseRevoked, "agent_revoked",
			"the agent has been revoked"}
	case agent.TenantID != id.TenantID || agent.SiteID != id.SiteID:
		return store.Agent{}, id, &refusal{http.StatusForbidden, refuseMismatch, "identity_mismatch",
			"the client certificate does not match the agent's tenant and site"}
	case !strings.EqualFold(agent.CertSerial, fmt.Sprintf("%x", leaf.SerialNumber)):
		return store.Agent{}, id, &refusal{http.StatusUnauthorized, refuseSerial, "certificate_superseded",
			"the client certificate has been replaced by a renewed one"}
	}
	return agent, id, nil
}

// headerHasToken reports whether a comma-separated header holds token
// (case-insensitively), across all its values.
func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
