package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kubedoio/n-kudo/internal/store"
)

// Enrollment token bounds.
const (
	minTokenTTL   = time.Minute
	maxTokenTTL   = 24 * time.Hour
	maxTokenUses  = 1000
	defaultTokenN = 1
)

type createEnrollmentTokenRequest struct {
	TTL     string `json:"ttl"`
	MaxUses *int   `json:"max_uses"`
}

// createEnrollmentToken issues a per-site token. The body is optional:
// without it the token lasts EnrollmentTTL and allows one enrollment.
func (a *API) createEnrollmentToken(c *gin.Context) {
	siteID, err := pathID(c, "site")
	if err != nil {
		a.writeError(c, err)
		return
	}
	var req createEnrollmentTokenRequest
	if err := decodeJSON(c, &req, true); err != nil {
		a.writeError(c, err)
		return
	}
	ttl := a.tokenTTL
	if req.TTL != "" {
		ttl, err = time.ParseDuration(req.TTL)
		if err != nil || ttl < minTokenTTL || ttl > maxTokenTTL {
			a.writeError(c, invalidArgument("ttl must be a duration between %s and %s, like \"30m\"", minTokenTTL, maxTokenTTL))
			return
		}
	}
	uses := defaultTokenN
	if req.MaxUses != nil {
		uses = *req.MaxUses
		if uses < 1 || uses > maxTokenUses {
			a.writeError(c, invalidArgument("max_uses must be between 1 and %d", maxTokenUses))
			return
		}
	}
	tenant := tenantOf(c)
	ctx := c.Request.Context()
	site, err := a.store.GetSite(ctx, tenant, siteID)
	if err != nil {
		a.writeError(c, fmt.Errorf("getting site %s: %w", siteID, err))
		return
	}
	secret, hash := newSecret(tokenPrefix)
	now := a.now().UTC()
	t := store.EnrollmentToken{
		ID:        store.NewID(),
		TenantID:  tenant,
		SiteID:    siteID,
		Hash:      hash,
		ExpiresAt: now.Add(ttl).Truncate(time.Microsecond),
		MaxUses:   uses,
		CreatedAt: now,
	}
	setAuditTarget(c, t.ID.String())
	// The setup key is minted before the token is stored: a token of a
	// NetBird-enabled site without its key would enroll hosts that can
	// never join the mesh.
	t.NetBirdSetupKeyID, t.NetBirdSetupKeySealed, err = a.mintSetupKey(c, site, t.ID, uses, t.ExpiresAt, secret)
	if err != nil {
		a.writeError(c, err)
		return
	}
	if err := a.store.CreateEnrollmentToken(ctx, t); err != nil {
		a.dropSetupKey(ctx, t.NetBirdSetupKeyID)
		a.writeError(c, fmt.Errorf("creating enrollment token for site %s: %w", siteID, err))
		return
	}
	c.Set(ctxKeyRedact, []string{"token"})
	c.JSON(http.StatusCreated, enrollmentTokenView{ID: t.ID, SiteID: siteID, Token: secret, ExpiresAt: t.ExpiresAt, MaxUses: uses})
}
