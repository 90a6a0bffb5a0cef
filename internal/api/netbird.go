package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/mesh"
	"github.com/kubedoio/n-kudo/internal/netbirdapi"
	"github.com/kubedoio/n-kudo/internal/store"
)

// CodeNetBirdUnavailable answers a token creation for a NetBird-enabled
// site when NetBird's Management API could not mint the setup key: the
// token would be useless for joining the mesh, so none is created.
const CodeNetBirdUnavailable = "netbird_unavailable"

// Audit actions and results of the NetBird side effects, recorded beside
// the audit event of the call that caused them.
const (
	auditNetBirdMint       = "netbird.setup_key.mint"
	auditNetBirdPeerDelete = "netbird.peer.delete"
	auditNetBirdNoPeer     = "no_peer"
	// auditNetBirdPeerInUse: NetBird keeps the peer because a network
	// router, an ingress port or a proxy uses it (412).
	auditNetBirdPeerInUse = "peer_in_use"
	// auditNetBirdTokenRejected: NetBird refuses the server's API token.
	auditNetBirdTokenRejected = "token_rejected"
)

// netbirdGroupAll is the group NetBird puts every peer in; it refuses it
// in a setup key's auto_groups (422), so a site may not list it.
const netbirdGroupAll = "All"

// siteNetBirdHosts bounds the hosts a site view reads to judge whether
// NetBird lists the site's peers.
const siteNetBirdHosts = 200

// netbirdTimeout bounds the NetBird calls made on a request's behalf.
const netbirdTimeout = 20 * time.Second

var errNetBirdUnavailable = &Error{
	Status: http.StatusBadGateway, Code: CodeNetBirdUnavailable,
	Message: "the site has NetBird enabled but NetBird could not mint a setup key; no token was created, try again later",
}

var errNetBirdTokenRejected = &Error{
	Status: http.StatusBadGateway, Code: CodeNetBirdUnavailable,
	Message: "the site has NetBird enabled but NetBird refuses the server's API token; no token was created until an operator replaces NKUDO_NETBIRD_API_TOKEN",
}

// enrollNetBirdView is the NetBird part of an enrollment answer: the only
// place the plaintext setup key ever leaves the server.
type enrollNetBirdView struct {
	SetupKey      string `json:"setup_key"`
	ManagementURL string `json:"management_url,omitempty"`
}

// mintSetupKey mints and seals the setup key of a new token when the site
// has NetBird enabled and the adapter is configured; the key allows as
// many joins as the token allows enrollments and expires with the token
// (plus the join grace). Failing is final for the token: the caller
// answers the returned *Error.
func (a *API) mintSetupKey(c *gin.Context, site store.Site, tokenID uuid.UUID, uses int, expires time.Time, secret string) (keyID string, sealed []byte, err error) {
	if a.netbird == nil || !site.NetBirdEnabled {
		return "", nil, nil
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), netbirdTimeout)
	defer cancel()
	keyID, sealed, err = a.netbird.MintForToken(ctx, site, tokenID, uses, expires, secret)
	result := auditOK
	if err != nil {
		result = CodeNetBirdUnavailable
		a.log.LogAttrs(ctx, slog.LevelError, "minting netbird setup key failed",
			slog.String(logKeyRequestID, requestID(c)), slog.String("site_id", site.ID.String()),
			slog.String(logKeyError, err.Error()))
	}
	a.auditSideEffect(c, site.TenantID, auditNetBirdMint, tokenID.String(), result)
	switch {
	case errors.Is(err, mesh.ErrTokenRejected):
		return "", nil, errNetBirdTokenRejected
	case err != nil:
		return "", nil, errNetBirdUnavailable
	}
	return keyID, sealed, nil
}

// dropSetupKey deletes a minted key whose token could not be stored, so no
// key is left behind that the expiry sweep cannot find.
func (a *API) dropSetupKey(ctx context.Context, keyID string) {
	if keyID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), netbirdTimeout)
	defer cancel()
	if err := a.netbird.DropKey(ctx, keyID); err != nil {
		a.log.LogAttrs(ctx, slog.LevelError, "deleting setup key of a token that was not created failed",
			slog.String("setup_key_id", keyID), slog.String(logKeyError, err.Error()))
	}
}

// enrollNetBird opens the setup key sealed with the presented token. The
// enrollment has happened by then; a key that does not open is logged
// (never the key) and left out rather than failing it.
func (a *API) enrollNetBird(ctx context.Context, tok store.EnrollmentToken, secret string) *enrollNetBirdView {
	if len(tok.NetBirdSetupKeySealed) == 0 {
		return nil
	}
	key, err := mesh.Open(secret, tok.ID, tok.NetBirdSetupKeySealed)
	if err != nil {
		a.log.LogAttrs(ctx, slog.LevelError, "opening sealed netbird setup key failed",
			slog.String("token_id", tok.ID.String()), slog.String(logKeyError, err.Error()))
		return nil
	}
	v := &enrollNetBirdView{SetupKey: key}
	if a.netbird != nil {
		v.ManagementURL = a.netbird.ManagementURL()
	}
	return v
}

// peerRemovalView is what became of the NetBird peer of a revoked agent,
// in the revoke answer.
type peerRemovalView struct {
	// Result is ok, no_peer, peer_in_use, token_rejected,
	// netbird_unavailable or internal, as in the audit log.
	Result string `json:"result"`
	PeerID string `json:"peer_id,omitempty"`
	// Message says what to do when the peer was not removed.
	Message string `json:"message,omitempty"`
}

// revokedAgentView is the revoke answer: the agent, and its NetBird peer
// when the integration is on.
type revokedAgentView struct {
	agentView
	NetBird *peerRemovalView `json:"netbird,omitempty"`
}

// removePeer deletes the NetBird peer of a revoked agent's host, best
// effort: the revocation stands whatever NetBird says; the outcome is in
// the audit log and the answer.
func (a *API) removePeer(c *gin.Context, g store.Agent) *peerRemovalView {
	if a.netbird == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), netbirdTimeout)
	defer cancel()
	v := &peerRemovalView{Result: auditOK}
	h, err := a.store.GetHost(ctx, g.TenantID, g.HostID)
	if err == nil {
		v.PeerID, err = a.netbird.RemovePeer(ctx, h)
	}
	switch {
	case err == nil:
	case errors.Is(err, mesh.ErrNoPeer):
		v.Result, v.Message = auditNetBirdNoPeer, "NetBird lists no peer for the host"
	case errors.Is(err, mesh.ErrPeerInUse):
		v.Result = auditNetBirdPeerInUse
		v.Message = "the peer was not deleted: NetBird reports it in use by a network router, an ingress port or a proxy (" +
			netbirdMessage(err) + "); free it there, then delete the peer in NetBird"
	case errors.Is(err, mesh.ErrTokenRejected):
		v.Result, v.Message = auditNetBirdTokenRejected, "the peer was not deleted: NetBird refuses the server's API token"
	case errors.Is(err, mesh.ErrUnavailable):
		v.Result, v.Message = CodeNetBirdUnavailable, "the peer was not deleted: NetBird could not be reached"
	default:
		v.Result, v.Message = CodeInternal, "the peer was not deleted"
	}
	if err != nil {
		a.log.LogAttrs(ctx, slog.LevelWarn, "removing netbird peer of revoked agent failed",
			slog.String("agent_id", g.ID.String()), slog.String(logKeyError, err.Error()))
	}
	a.auditSideEffect(c, g.TenantID, auditNetBirdPeerDelete, g.ID.String(), v.Result)
	return v
}

// netbirdMessage is NetBird's own words in err, or what its status means
// when it said nothing more (newer servers send "precondition failed").
func netbirdMessage(err error) string {
	var apiErr *netbirdapi.APIError
	if errors.As(err, &apiErr) && apiErr.Message != "" {
		return "NetBird: " + apiErr.Message
	}
	return "NetBird: " + http.StatusText(http.StatusPreconditionFailed)
}

// siteNetBirdView is a site's NetBird settings and, in a single-site view
// with the integration on, the state of NetBird for the site.
type siteNetBirdView struct {
	netbirdSettings
	// State is unknown, ok, token_rejected or peers_hidden; empty when
	// not judged.
	State  string `json:"state,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// siteNetBirdState fills in the NetBird state of a NetBird-enabled site
// from the integration's cached view and a page of the site's hosts.
func (a *API) siteNetBirdState(ctx context.Context, s store.Site, v *siteNetBirdView) {
	if a.netbird == nil || !s.NetBirdEnabled {
		return
	}
	hosts, _, err := a.store.ListHosts(ctx, s.TenantID, s.ID, store.Page{Limit: siteNetBirdHosts})
	if err != nil {
		a.log.LogAttrs(ctx, slog.LevelWarn, "listing hosts for the site's netbird state failed",
			slog.String("site_id", s.ID.String()), slog.String(logKeyError, err.Error()))
	}
	st := a.netbird.SiteState(hosts)
	v.State, v.Detail = st.State, st.Detail
}

// readyNetBird is the NetBird part of /readyz: the state of the API
// token. A refused token leaves the server ready (everything but NetBird
// works), but says so.
type readyNetBird struct {
	State  string     `json:"state"`
	Detail string     `json:"detail,omitempty"`
	Since  *time.Time `json:"since,omitempty"`
}

func (a *API) readyNetBird() *readyNetBird {
	if a.netbird == nil {
		return nil
	}
	cred := a.netbird.Credential()
	r := &readyNetBird{State: cred.State, Detail: cred.Detail}
	if !cred.Since.IsZero() {
		r.Since = &cred.Since
	}
	return r
}

// hostView is viewHost plus, when NetBird is on and the cached peer list
// knows the host, the management side under netbird.management.
func (a *API) hostView(h store.Host) hostView {
	v := viewHost(h)
	if a.netbird == nil {
		return v
	}
	peer, ok := a.netbird.Peer(h)
	if !ok {
		return v
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v.NetBird, &obj); err != nil || obj == nil {
		obj = map[string]json.RawMessage{}
	}
	mgmt, err := json.Marshal(peer)
	if err != nil {
		return v
	}
	obj["management"] = mgmt
	if merged, err := json.Marshal(obj); err == nil {
		v.NetBird = merged
	}
	return v
}

// auditSideEffect records an audit event for something a call did beyond
// its own object, attributed to the call's principal.
func (a *API) auditSideEffect(c *gin.Context, tenant uuid.UUID, action, target, result string) {
	actor := "system"
	if p, ok := principalOf(c); ok {
		actor = p.actor()
	}
	ev := store.AuditEvent{
		ID: store.NewID(), TenantID: tenant, Actor: actor, Action: action, Target: target,
		Result: result, RequestID: requestID(c), At: a.now(),
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), 5*time.Second)
	defer cancel()
	if err := a.store.AppendAudit(ctx, ev); err != nil {
		a.log.LogAttrs(ctx, slog.LevelError, "writing audit event failed",
			slog.String(logKeyRequestID, ev.RequestID), slog.String("action", action),
			slog.String(logKeyError, err.Error()))
	}
}
