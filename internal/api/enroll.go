package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store"
)

// CodeTokenInvalid answers an enrollment whose token is unknown, expired
// or used up. One code for all three, so a caller learns nothing about
// which tokens exist.
const CodeTokenInvalid = "token_invalid"

// Enrollment bounds.
const (
	// maxEnrollBody covers the largest CSR pki accepts plus the token and
	// the host name; anything bigger is not an enrollment.
	maxEnrollBody = pki.MaxCSRSize + 4<<10
	maxHostname   = 253
	maxLabel      = 63
	maxTokenLen   = 256
)

var (
	errTokenInvalid      = &Error{Status: http.StatusUnauthorized, Code: CodeTokenInvalid, Message: "the enrollment token is unknown, expired or used up"}
	errEnrollUnavailable = &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "enrollment is not configured on this server"}
)

type enrollRequest struct {
	Token    string `json:"token"`
	CSR      string `json:"csr"`
	Hostname string `json:"hostname"`
}

type enrollView struct {
	AgentID     uuid.UUID `json:"agent_id"`
	HostID      uuid.UUID `json:"host_id"`
	SiteID      uuid.UUID `json:"site_id"`
	TenantID    uuid.UUID `json:"tenant_id"`
	Certificate string    `json:"certificate"`
	CA          string    `json:"ca"`
	ExpiresAt   time.Time `json:"expires_at"`
	// NetBird carries the site's setup key when one was minted for the
	// token; this answer is the only place it is ever sent.
	NetBird *enrollNetBirdView `json:"netbird,omitempty"`
}

// enroll turns an enrollment token and a CSR into an agent identity. The
// order matters: everything that can be checked without the token (body,
// CSR, host name) is checked first, so a malformed request never burns a
// one-time token. The handler does one read, one signature and one write
// transaction: the single-writer SQLite and the PostgreSQL round trips are
// what bounds enrollments per second.
func (a *API) enroll(c *gin.Context) {
	if a.authority == nil {
		a.writeError(c, errEnrollUnavailable)
		return
	}
	ip := c.ClientIP()
	now := a.now()
	// A source that keeps presenting bad tokens is guessing: it shares the
	// failed-authentication budget of API keys.
	if blocked, retry := a.failLim.exhausted(ip, now); blocked {
		a.rateLimited(c, retry)
		return
	}
	if c.Request.ContentLength > maxEnrollBody {
		a.writeError(c, errBodyTooLarge)
		return
	}
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxEnrollBody)
	}
	var req enrollRequest
	if err := decodeJSON(c, &req, false); err != nil {
		a.writeError(c, err)
		return
	}
	if req.Token == "" || len(req.Token) > maxTokenLen {
		a.writeError(c, invalidArgument("token is required (at most %d characters)", maxTokenLen))
		return
	}
	csr, err := pki.ValidateCSR([]byte(req.CSR))
	if err != nil {
		// The pki message names what is wrong with the CSR (size, PEM,
		// signature, key type) and never echoes its content.
		a.writeError(c, invalidArgument("csr is invalid: %s", strings.TrimPrefix(err.Error(), pki.ErrBadCSR.Error()+": ")))
		return
	}
	if err := checkHostname(req.Hostname); err != nil {
		a.writeError(c, err)
		return
	}

	ctx := c.Request.Context()
	sum := sha256.Sum256([]byte(req.Token))
	// The token is read first (no write) because the certificate names its
	// tenant and site; the signature is then made outside any transaction
	// and everything is recorded in one write: token use, agent with its
	// certificate, host and audit event. A token used up in between fails
	// that write and the certificate, never recorded, is worthless.
	tok, err := a.store.EnrollmentTokenByHash(ctx, sum[:], now.UTC())
	if errors.Is(err, store.ErrTokenInvalid) {
		a.failLim.allow(ip, now)
		a.writeError(c, errTokenInvalid)
		return
	}
	if err != nil {
		a.writeError(c, fmt.Errorf("reading enrollment token: %w", err))
		return
	}

	agentID := store.NewID()
	id := pki.AgentIdentity{TenantID: tok.TenantID, SiteID: tok.SiteID, AgentID: agentID}
	certPEM, serial, notAfter, err := a.authority.SignAgent(csr, id, a.agentCertTTL)
	if err != nil {
		// Nothing was written and the token use is not spent; the failed
		// event tells an operator why an agent could not enroll.
		a.auditEnroll(ctx, c, tok, agentID, CodeInternal)
		a.writeError(c, fmt.Errorf("signing certificate for agent %s: %w", agentID, err))
		return
	}
	ev := a.enrollAudit(c, tok, agentID, auditOK)
	agent, host, tok, err := a.store.ConsumeEnrollment(ctx, store.Enrollment{
		TokenHash:     sum[:],
		AgentID:       agentID,
		HostID:        store.NewID(),
		Hostname:      req.Hostname,
		CertSerial:    serial,
		CertExpiresAt: notAfter,
		Now:           now.UTC(),
		Audit:         &ev,
	})
	if errors.Is(err, store.ErrTokenInvalid) {
		// Used up or expired since it was read: a race between holders of
		// a real token, not a guess, so it costs no failure budget.
		a.writeError(c, errTokenInvalid)
		return
	}
	if err != nil {
		a.writeError(c, fmt.Errorf("enrolling agent %s: %w", agentID, err))
		return
	}
	c.JSON(http.StatusCreated, enrollView{
		AgentID: agent.ID, HostID: host.ID, SiteID: tok.SiteID, TenantID: tok.TenantID,
		Certificate: string(certPEM), CA: string(a.authority.CACertPEM()), ExpiresAt: notAfter.UTC(),
		NetBird: a.enrollNetBird(ctx, tok, req.Token),
	})
}

// enrollAudit is the audit event of an enrollment. The caller has no API
// key, so the actor is the token that vouched for it.
func (a *API) enrollAudit(c *gin.Context, tok store.EnrollmentToken, agentID uuid.UUID, result string) store.AuditEvent {
	return store.AuditEvent{
		ID:        store.NewID(),
		TenantID:  tok.TenantID,
		Actor:     "token:" + tok.ID.String(),
		Action:    "agent.enroll",
		Target:    agentID.String(),
		Result:    result,
		RequestID: requestID(c),
		At:        a.now(),
	}
}

// auditEnroll records a failed enrollment on its own: a successful one
// records its event in the enrollment's own transaction.
func (a *API) auditEnroll(ctx context.Context, c *gin.Context, tok store.EnrollmentToken, agentID uuid.UUID, result string) {
	ev := a.enrollAudit(c, tok, agentID, result)
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.store.AppendAudit(actx, ev); err != nil {
		a.log.LogAttrs(actx, slog.LevelError, "writing audit event failed",
			slog.String(logKeyRequestID, ev.RequestID),
			slog.String("action", ev.Action),
			slog.String(logKeyError, err.Error()))
	}
}

// checkHostname accepts an RFC 1123 host name: dot-separated labels of
// letters, digits and inner hyphens, each 1..63 long, 253 in all.
func checkHostname(h string) error {
	if h == "" {
		return invalidArgument("hostname is required")
	}
	if len(h) > maxHostname {
		return invalidArgument("hostname must be at most %d characters", maxHostname)
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > maxLabel {
			return invalidArgument("hostname must be dot-separated labels of 1 to %d characters", maxLabel)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return invalidArgument("hostname labels must not start or end with a hyphen")
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			switch {
			case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', ch == '-':
			default:
				return invalidArgument("hostname may only hold letters, digits, hyphens and dots")
			}
		}
	}
	return nil
}
