package netbirdapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kubedoio/n-kudo/internal/backoff"
)

// Sentinel errors. An *APIError unwraps to the one matching its status.
var (
	// ErrUnauthorized: 401, the token is missing, wrong or expired.
	ErrUnauthorized = errors.New("netbird api: unauthorized")
	// ErrForbidden: 403, the token's user may not do this.
	ErrForbidden = errors.New("netbird api: forbidden")
	// ErrNotFound: 404, or a named object that does not exist. Since
	// NetBird v0.60.0 a 404 may also mean the token itself is unknown
	// (auth_middleware.go wraps the store's NotFound), so a 404 alone never
	// proves an object is gone: see Client.CheckToken.
	ErrNotFound = errors.New("netbird api: not found")
	// ErrTokenRejected: NetBird does not accept the API token: 401 (a
	// malformed or expired token) or 404 where only the token can be
	// missing (a listing, or CheckToken after an object's 404).
	ErrTokenRejected = errors.New("netbird api: token rejected")
	// ErrPreconditionFailed: 412, NetBird refuses because something else
	// depends on the object (a peer used by a network router, an ingress
	// port or a proxy).
	ErrPreconditionFailed = errors.New("netbird api: precondition failed")
	// ErrInvalid: 400 or 422, NetBird refused the request's content.
	ErrInvalid = errors.New("netbird api: invalid request")
	// ErrConflict: 409.
	ErrConflict = errors.New("netbird api: conflict")
	// ErrRateLimited: 429 after the retries were spent.
	ErrRateLimited = errors.New("netbird api: rate limited")
	// ErrServer: 5xx after the retries were spent.
	ErrServer = errors.New("netbird api: server error")
	// ErrUnexpected: any other status, or a body that does not decode.
	ErrUnexpected = errors.New("netbird api: unexpected response")
	// ErrAmbiguous: a lookup matched more than one object.
	ErrAmbiguous = errors.New("netbird api: ambiguous match")
	// ErrConfig: Options or SetupOptions are invalid.
	ErrConfig = errors.New("netbird api: invalid configuration")
)

// APIError is a non-2xx answer from the Management API.
type APIError struct {
	Method     string
	Path       string
	StatusCode int
	// Message is NetBird's own explanation ({"message": …}), or the start
	// of the body when it is not JSON.
	Message   string
	RequestID string
	kind      error
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("netbird api %s %s: %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RequestID != "" {
		s += " (request " + e.RequestID + ")"
	}
	return s
}

// Unwrap returns the sentinel for the status, for errors.Is.
func (e *APIError) Unwrap() error { return e.kind }

// Defaults of Options.
const (
	DefaultMaxRetries    = 3
	DefaultRetryBase     = 500 * time.Millisecond
	DefaultRetryMax      = 30 * time.Second
	DefaultMaxRetryAfter = time.Minute
	// DefaultTimeout bounds one attempt when Options.HTTPClient is nil.
	DefaultTimeout = 30 * time.Second
)

const (
	// maxResponseBytes bounds a response body; a peer list of a large
	// account is a few MiB.
	maxResponseBytes = 32 << 20
	// maxMessageBytes bounds the NetBird message quoted in an error.
	maxMessageBytes = 512
	userAgent       = "nkudo-server"
)

// slog keys.
const (
	logKeyMethod   = "method"
	logKeyPath     = "path"
	logKeyStatus   = "status"
	logKeyAttempt  = "attempt"
	logKeyDuration = "duration"
	logKeyRetryIn  = "retry_in"
	logKeyError    = "error"
)

// Options configures a Client.
type Options struct {
	// BaseURL is the management server, e.g. https://api.netbird.io; the
	// /api/... paths are appended to it.
	BaseURL string
	// Token is a NetBird personal access token, sent as "Authorization:
	// Token <pat>". A secret: never logged.
	Token string
	// HTTPClient sends the requests; nil means a client with
	// DefaultTimeout.
	HTTPClient *http.Client
	// Logger receives one debug line per attempt and a warning per retry;
	// nil discards.
	Logger *slog.Logger
	// MaxRetries is how many times a 5xx, a 429 or (for idempotent
	// methods) a transport error is retried; zero means
	// DefaultMaxRetries, negative means never.
	MaxRetries int
	// RetryBase and RetryMax bound the backoff; zero means the defaults.
	RetryBase, RetryMax time.Duration
	// MaxRetryAfter is the longest Retry-After honoured; a longer one
	// ends the call with ErrRateLimited instead of parking the caller.
	// Zero means DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
}

// Client calls the NetBird Management API. It is safe for concurrent use.
type Client struct {
	base          *url.URL
	token         string
	http          *http.Client
	log           *slog.Logger
	maxRetries    int
	maxRetryAfter time.Duration
	backoff       *backoff.Backoff
	// wait sleeps between attempts; tests replace it to observe delays.
	wait func(ctx context.Context, d time.Duration) error
}

// New returns a Client.
func New(o Options) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("creating netbird api client: base URL %q is not an http(s) URL: %w", o.BaseURL, ErrConfig)
	}
	if base.RawQuery != "" || base.Fragment != "" || base.User != nil {
		return nil, fmt.Errorf("creating netbird api client: base URL must not carry a query, fragment or credentials: %w", ErrConfig)
	}
	if strings.TrimSpace(o.Token) == "" || strings.ContainsAny(o.Token, "\r\n") {
		return nil, fmt.Errorf("creating netbird api client: token: %w", ErrConfig)
	}
	c := &Client{
		base:          base,
		token:         o.Token,
		http:          o.HTTPClient,
		log:           o.Logger,
		maxRetries:    o.MaxRetries,
		maxRetryAfter: o.MaxRetryAfter,
		backoff:       &backoff.Backoff{Base: o.RetryBase, Max: o.RetryMax},
		wait:          sleep,
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: DefaultTimeout}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.maxRetryAfter <= 0 {
		c.maxRetryAfter = DefaultMaxRetryAfter
	}
	if c.backoff.Base <= 0 {
		c.backoff.Base = DefaultRetryBase
	}
	if c.backoff.Max <= 0 {
		c.backoff.Max = DefaultRetryMax
	}
	return c, nil
}

// CreateSetupKey creates a setup key (POST /api/setup-keys). The answer
// holds the plaintext key, the only time NetBird reveals it.
func (c *Client) CreateSetupKey(ctx context.Context, req CreateSetupKeyRequest) (SetupKey, error) {
	if req.AutoGroups == nil {
		// NetBird requires the array; null is refused.
		req.AutoGroups = []string{}
	}
	var key SetupKey
	if err := c.do(ctx, http.MethodPost, "/api/setup-keys", nil, req, &key); err != nil {
		return SetupKey{}, fmt.Errorf("creating setup key %q: %w", req.Name, err)
	}
	return key, nil
}

// GetSetupKey reads a setup key (GET /api/setup-keys/{keyId}); its Key is
// masked.
func (c *Client) GetSetupKey(ctx context.Context, id string) (SetupKey, error) {
	if err := checkID(id); err != nil {
		return SetupKey{}, fmt.Errorf("reading setup key: %w", err)
	}
	var key SetupKey
	if err := c.do(ctx, http.MethodGet, "/api/setup-keys/"+pathID(id), nil, nil, &key); err != nil {
		return SetupKey{}, fmt.Errorf("reading setup key %s: %w", id, err)
	}
	return key, nil
}

// RevokeSetupKey revokes a setup key (PUT /api/setup-keys/{keyId} with
// revoked: true). The PUT replaces auto_groups too, which the API
// requires, so the key's current groups are read first and sent back
// unchanged.
func (c *Client) RevokeSetupKey(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("revoking setup key: %w", err)
	}
	cur, err := c.GetSetupKey(ctx, id)
	if err != nil {
		return fmt.Errorf("revoking setup key %s: %w", id, err)
	}
	groups := cur.AutoGroups
	if groups == nil {
		groups = []string{}
	}
	body := updateSetupKeyRequest{Revoked: true, AutoGroups: groups}
	var updated SetupKey
	if err := c.do(ctx, http.MethodPut, "/api/setup-keys/"+pathID(id), nil, body, &updated); err != nil {
		return fmt.Errorf("revoking setup key %s: %w", id, err)
	}
	if !updated.Revoked {
		return fmt.Errorf("revoking setup key %s: still not revoked after update: %w", id, ErrUnexpected)
	}
	return nil
}

// DeleteSetupKey deletes a setup key (DELETE /api/setup-keys/{keyId}).
func (c *Client) DeleteSetupKey(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("deleting setup key: %w", err)
	}
	if err := c.do(ctx, http.MethodDelete, "/api/setup-keys/"+pathID(id), nil, nil, nil); err != nil {
		return fmt.Errorf("deleting setup key %s: %w", id, err)
	}
	return nil
}

// ListPeers lists every peer of the account (GET /api/peers).
func (c *Client) ListPeers(ctx context.Context) ([]Peer, error) {
	return c.FindPeers(ctx, PeerFilter{})
}

// PeerFilter narrows FindPeers with the API's name and ip query
// parameters; empty fields do not filter.
type PeerFilter struct {
	Name string
	IP   string
}

// FindPeers lists the peers matching f (GET /api/peers?name=&ip=).
func (c *Client) FindPeers(ctx context.Context, f PeerFilter) ([]Peer, error) {
	q := url.Values{}
	if f.Name != "" {
		q.Set("name", f.Name)
	}
	if f.IP != "" {
		q.Set("ip", f.IP)
	}
	var peers []Peer
	if err := c.do(ctx, http.MethodGet, "/api/peers", q, nil, &peers); err != nil {
		return nil, fmt.Errorf("listing peers: %w", credentialErr(err))
	}
	return peers, nil
}

// DeletePeer removes a peer from the account (DELETE /api/peers/{peerId}).
func (c *Client) DeletePeer(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("deleting peer: %w", err)
	}
	if err := c.do(ctx, http.MethodDelete, "/api/peers/"+pathID(id), nil, nil, nil); err != nil {
		return fmt.Errorf("deleting peer %s: %w", id, err)
	}
	return nil
}

// ListGroups lists the account's groups (GET /api/groups).
func (c *Client) ListGroups(ctx context.Context) ([]Group, error) {
	var groups []Group
	if err := c.do(ctx, http.MethodGet, "/api/groups", nil, nil, &groups); err != nil {
		return nil, fmt.Errorf("listing groups: %w", credentialErr(err))
	}
	return groups, nil
}

// CheckToken proves the token works with the cheapest authenticated call
// NetBird has (GET /api/groups). It wraps ErrTokenRejected when NetBird
// refuses the token (401, or 404 on a listing, which only an unknown
// token can cause).
func (c *Client) CheckToken(ctx context.Context) error {
	if _, err := c.ListGroups(ctx); err != nil {
		return fmt.Errorf("checking the netbird api token: %w", err)
	}
	return nil
}

// credentialErr marks a listing's 401 or 404 as ErrTokenRejected: a
// collection route always exists, so NetBird can only be refusing the
// token.
func credentialErr(err error) error {
	if errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrTokenRejected, err)
	}
	return err
}

// ResolveGroups maps group names (as site settings hold them) to the IDs
// that auto_groups takes, in the order given. Every name must name exactly
// one group: a missing one wraps ErrNotFound, a duplicated one
// ErrAmbiguous.
func (c *Client) ResolveGroups(ctx context.Context, names []string) ([]string, error) {
	if len(names) == 0 {
		return []string{}, nil
	}
	groups, err := c.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("resolving groups: %w", err)
	}
	byName := make(map[string][]string, len(groups))
	for _, g := range groups {
		byName[g.Name] = append(byName[g.Name], g.ID)
	}
	ids := make([]string, 0, len(names))
	var missing []string
	for _, n := range names {
		switch found := byName[n]; len(found) {
		case 0:
			missing = append(missing, strconv.Quote(n))
		case 1:
			ids = append(ids, found[0])
		default:
			return nil, fmt.Errorf("resolving group %q: %d groups have that name: %w", n, len(found), ErrAmbiguous)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("resolving groups: no group named %s: %w", strings.Join(missing, ", "), ErrNotFound)
	}
	return ids, nil
}

// do sends one API call with retries and decodes a 2xx body into out.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encoding %s %s body: %w", method, path, err)
		}
	}
	// path is already escaped (pathID); the base has no query or
	// fragment (New checks), so plain concatenation is exact.
	rawURL := c.base.String() + path
	if len(query) > 0 {
		rawURL += "?" + query.Encode()
	}

	for attempt := 0; ; attempt++ {
		status, data, reqID, retryAfter, err := c.attempt(ctx, method, rawURL, path, payload, attempt)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("calling %s %s: %w", method, path, ctx.Err())
			}
			// A request that may have reached NetBird is only resent
			// when doing it twice is harmless.
			if !idempotent(method) || attempt >= c.maxRetries {
				return fmt.Errorf("calling %s %s after %d attempts: %w", method, path, attempt+1, err)
			}
			if err := c.pause(ctx, method, path, attempt, c.backoff.Next(attempt), err.Error()); err != nil {
				return err
			}
			continue
		}
		if status >= 200 && status < 300 {
			if out == nil {
				return nil
			}
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("decoding %s %s answer: %w: %w", method, path, ErrUnexpected, err)
			}
			return nil
		}

		apiErr := &APIError{Method: method, Path: path, StatusCode: status, Message: errorMessage(data), RequestID: reqID, kind: statusKind(status)}
		if status != http.StatusTooManyRequests && status < 500 {
			return apiErr
		}
		if attempt >= c.maxRetries {
			return fmt.Errorf("giving up after %d attempts: %w", attempt+1, apiErr)
		}
		delay := c.backoff.Next(attempt)
		if retryAfter >= 0 {
			if retryAfter > c.maxRetryAfter {
				return fmt.Errorf("retry-after %s exceeds %s: %w", retryAfter, c.maxRetryAfter, apiErr)
			}
			delay = retryAfter
		}
		if err := c.pause(ctx, method, path, attempt, delay, apiErr.Error()); err != nil {
			return err
		}
	}
}

// attempt sends one request. retryAfter is -1 when the answer had none.
func (c *Client) attempt(ctx context.Context, method, rawURL, path string, payload []byte, attempt int) (status int, data []byte, reqID string, retryAfter time.Duration, err error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return 0, nil, "", -1, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Authorization", "Token "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelDebug, "netbird api call failed",
			slog.String(logKeyMethod, method), slog.String(logKeyPath, path), slog.Int(logKeyAttempt, attempt+1),
			slog.Duration(logKeyDuration, time.Since(start)), slog.String(logKeyError, err.Error()))
		return 0, nil, "", -1, err
	}
	defer resp.Body.Close()
	data, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return 0, nil, "", -1, fmt.Errorf("reading answer: %w", err)
	}
	if len(data) > maxResponseBytes {
		return 0, nil, "", -1, fmt.Errorf("answer over %d bytes: %w", maxResponseBytes, ErrUnexpected)
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "netbird api call",
		slog.String(logKeyMethod, method), slog.String(logKeyPath, path), slog.Int(logKeyStatus, resp.StatusCode),
		slog.Int(logKeyAttempt, attempt+1), slog.Duration(logKeyDuration, time.Since(start)))
	return resp.StatusCode, data, resp.Header.Get("X-Request-Id"), parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), nil
}

func (c *Client) pause(ctx context.Context, method, path string, attempt int, delay time.Duration, reason string) error {
	c.log.LogAttrs(ctx, slog.LevelWarn, "retrying netbird api call",
		slog.String(logKeyMethod, method), slog.String(logKeyPath, path), slog.Int(logKeyAttempt, attempt+1),
		slog.Duration(logKeyRetryIn, delay), slog.String(logKeyError, reason))
	if err := c.wait(ctx, delay); err != nil {
		return fmt.Errorf("waiting to retry %s %s: %w", method, path, err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

func statusKind(status int) error {
	switch {
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		return ErrInvalid
	case status == http.StatusUnauthorized:
		return ErrUnauthorized
	case status == http.StatusForbidden:
		return ErrForbidden
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusConflict:
		return ErrConflict
	case status == http.StatusPreconditionFailed:
		return ErrPreconditionFailed
	case status == http.StatusTooManyRequests:
		return ErrRateLimited
	case status >= 500:
		return ErrServer
	}
	return ErrUnexpected
}

// parseRetryAfter reads delay-seconds or an HTTP date; -1 when absent or
// unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return -1
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return -1
}

// errorMessage extracts NetBird's {"message": …} or the start of a plain
// body.
func errorMessage(data []byte) string {
	var body struct {
		Message string `json:"message"`
	}
	msg := ""
	if json.Unmarshal(data, &body) == nil && body.Message != "" {
		msg = body.Message
	} else {
		msg = string(bytes.TrimSpace(data))
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > maxMessageBytes {
		cut := maxMessageBytes
		for cut > 0 && msg[cut]&0xC0 == 0x80 {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

// checkID refuses an empty ID, which would address the collection
// instead of one object.
func checkID(id string) error {
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("empty id: %w", ErrInvalid)
	}
	return nil
}

// pathID escapes an ID for use as one path segment.
func pathID(id string) string { return url.PathEscape(id) }
