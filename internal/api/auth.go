package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// Secret prefixes make leaked keys recognisable by secret scanners.
const (
	apiKeyPrefix   = "nk_"
	tokenPrefix    = "nket_"
	displayPrefixN = 8
)

// touchEvery bounds how often a key's last-used time is written: a busy
// key costs one write a minute, not one per request.
const touchEvery = time.Minute

const ctxKeyPrincipal = "nkudo.principal"

// errBadCredentials: the presented key is unknown; never sent as is.
var errBadCredentials = errors.New("bad credentials")

// principal is who is calling: the admin key or one tenant API key.
type principal struct {
	Admin    bool
	KeyID    uuid.UUID
	TenantID uuid.UUID // uuid.Nil for the admin key
	Role     string
}

func (p principal) actor() string {
	if p.Admin {
		return "admin"
	}
	return "key:" + p.KeyID.String()
}

func (p principal) limiterKey() string {
	if p.Admin {
		return "admin"
	}
	return p.KeyID.String()
}

func principalOf(c *gin.Context) (principal, bool) {
	v, ok := c.Get(ctxKeyPrincipal)
	if !ok {
		return principal{}, false
	}
	p, ok := v.(principal)
	return p, ok
}

// authenticate resolves the bearer key into a principal. A source that has
// used up its failed-authentication budget gets 429 before its key is even
// looked at, so rotating through guessed keys does not help it.
func (a *API) authenticate(c *gin.Context) {
	ip := c.ClientIP()
	now := a.now()
	if blocked, retry := a.failLim.exhausted(ip, now); blocked {
		a.rateLimited(c, retry)
		return
	}
	p, err := a.resolveKey(c.Request.Context(), requestID(c), c.GetHeader("Authorization"))
	if err != nil {
		if !errors.Is(err, errBadCredentials) {
			a.writeError(c, err)
			return
		}
		a.failLim.allow(ip, now)
		c.Header("WWW-Authenticate", `Bearer realm="nkudo"`)
		a.writeError(c, errUnauthenticated)
		return
	}
	c.Set(ctxKeyPrincipal, p)
	c.Next()
}

func (a *API) resolveKey(ctx context.Context, reqID, header string) (principal, error) {
	scheme, secret, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return principal{}, errBadCredentials
	}
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return principal{}, errBadCredentials
	}
	sum := sha256.Sum256([]byte(secret))
	// Comparing hashes keeps the comparison constant-time and independent
	// of the admin key's length.
	if a.adminEnabled && subtle.ConstantTimeCompare(sum[:], a.adminHash[:]) == 1 {
		return principal{Admin: true, Role: store.RoleAdmin}, nil
	}
	if !strings.HasPrefix(secret, apiKeyPrefix) {
		return principal{}, errBadCredentials
	}
	// No cache in front of the store: a deleted key must stop working on
	// every replica at once, and the lookup is one indexed read.
	k, err := a.store.GetAPIKeyByHash(ctx, sum[:])
	if errors.Is(err, store.ErrNotFound) {
		return principal{}, errBadCredentials
	}
	if err != nil {
		return principal{}, fmt.Errorf("looking up api key: %w", err)
	}
	a.touch(ctx, reqID, k.ID)
	return principal{KeyID: k.ID, TenantID: k.TenantID, Role: k.Role}, nil
}

// touch records the key's last use at most once per touchEvery. The write
// is synchronous but rare, so it costs no goroutine and cannot outlive the
// API; a failure is logged and never fails the request.
func (a *API) touch(ctx context.Context, reqID string, id uuid.UUID) {
	now := a.now()
	if !a.touches.claim(id, now) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := a.store.TouchAPIKey(ctx, id, now); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.log.LogAttrs(ctx, slog.LevelWarn, "recording api key use failed",
			slog.String(logKeyRequestID, reqID), slog.String("key_id", id.String()), slog.String(logKeyError, err.Error()))
	}
}

// touchTable remembers when each key's last use was written. A sync.Map
// keeps the per-request check lock-free; entries exist only for keys that
// authenticated, so the store's key count bounds it, and deleting a key
// forgets it.
type touchTable struct {
	last sync.Map // uuid.UUID -> time.Time
}

func newTouchTable() *touchTable { return &touchTable{} }

// claim reports whether the caller should write id's last use now. Two
// racing callers may both win; that costs one redundant write.
func (t *touchTable) claim(id uuid.UUID, now time.Time) bool {
	if v, ok := t.last.Load(id); ok {
		if last, ok := v.(time.Time); ok && now.Sub(last) < touchEvery {
			return false
		}
	}
	t.last.Store(id, now)
	return true
}

func (t *touchTable) forget(id uuid.UUID) { t.last.Delete(id) }
