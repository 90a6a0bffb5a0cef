package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kubedoio/n-kudo/internal/version"
)

// Headers the client sends or reads.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderTenant         = "X-Nkudo-Tenant"
	HeaderRequestID      = "X-Request-ID"
	headerLastEventID    = "Last-Event-ID"
)

// Bounds on what the client reads, so a misbehaving server cannot make it
// allocate without limit.
const (
	maxResponseBytes = 32 << 20
	maxErrorBytes    = 64 << 10
)

// Config configures a Client. BaseURL and a CA (CAPEM or CAFile) are
// required unless HTTPClient is given, in which case its transport must
// already trust the server.
type Config struct {
	// BaseURL is the server's address, e.g. https://127.0.0.1:8443.
	BaseURL string
	// CAPEM is the control plane's CA certificate(s) in PEM; only it is
	// trusted, never the system roots, so a public certificate for the
	// same name cannot impersonate the server.
	CAPEM []byte
	// CAFile is read when CAPEM is empty.
	CAFile string
	// APIKey is sent as a bearer token: a tenant key (nk_…) or the admin
	// key.
	APIKey string
	// Tenant is the tenant id an admin key acts on (X-Nkudo-Tenant);
	// ignored by the server for tenant keys.
	Tenant string
	// HTTPClient replaces the TLS client built from the CA.
	HTTPClient *http.Client
	// UserAgent defaults to "nkudo-client/<version>".
	UserAgent string
	// Timeout bounds each unary call; streams are bounded by their
	// context only. Zero means 30 s.
	Timeout time.Duration
	// ReconnectBase and ReconnectMax tune the capped exponential backoff
	// with jitter between stream reconnects (defaults 500 ms and 30 s).
	ReconnectBase time.Duration
	ReconnectMax  time.Duration
	// OnStreamState, when set, is told about the health of every
	// following stream (Events, FollowLogs, FollowConsole): connected
	// true once a connection's answer was accepted; false with the cause
	// when the connection failed or broke and the stream will reconnect,
	// or when the stream gave up for good (err is the final error), and
	// false with a nil error when it completed. stream is the request
	// path (e.g. "/v1/events"). It is called on the goroutine running the
	// stream, so it must return quickly; it is never called once the
	// stream's context has ended.
	OnStreamState func(stream string, connected bool, err error)
}

// Client calls the n-kudo JSON API. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	hc        *http.Client
	apiKey    string
	tenant    string
	userAgent string
	timeout   time.Duration
	reconBase time.Duration
	reconMax  time.Duration
	onState   func(stream string, connected bool, err error)
}

// New validates cfg and builds a Client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, fmt.Errorf("building client: %w: BaseURL is required", ErrInvalidConfig)
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("building client: %w: BaseURL %q is not an absolute URL", ErrInvalidConfig, cfg.BaseURL)
	}
	if base.Scheme != "https" && cfg.HTTPClient == nil {
		return nil, fmt.Errorf("building client: %w: BaseURL %q must use https", ErrInvalidConfig, cfg.BaseURL)
	}
	c := &Client{
		base:      base,
		hc:        cfg.HTTPClient,
		apiKey:    cfg.APIKey,
		tenant:    cfg.Tenant,
		userAgent: cfg.UserAgent,
		timeout:   cfg.Timeout,
		reconBase: cfg.ReconnectBase,
		reconMax:  cfg.ReconnectMax,
		onState:   cfg.OnStreamState,
	}
	if c.userAgent == "" {
		c.userAgent = "nkudo-client/" + version.Version
	}
	if c.timeout == 0 {
		c.timeout = 30 * time.Second
	}
	if c.reconBase <= 0 {
		c.reconBase = 500 * time.Millisecond
	}
	if c.reconMax <= 0 {
		c.reconMax = 30 * time.Second
	}
	if c.hc == nil {
		pem := cfg.CAPEM
		if len(pem) == 0 && cfg.CAFile != "" {
			if pem, err = os.ReadFile(cfg.CAFile); err != nil {
				return nil, fmt.Errorf("building client: reading CA file: %w", err)
			}
		}
		if len(pem) == 0 {
			return nil, fmt.Errorf("building client: %w: a CA (CAPEM or CAFile) is required", ErrInvalidConfig)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("building client: %w: the CA holds no PEM certificate", ErrInvalidConfig)
		}
		c.hc = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	return c, nil
}

// Close releases idle connections. The Client stays usable.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// BaseURL returns the server address the client talks to.
func (c *Client) BaseURL() string { return c.base.String() }

// CallOption adjusts one call.
type CallOption func(*callOptions)

type callOptions struct {
	idempotencyKey string
}

// WithIdempotencyKey replaces the random Idempotency-Key of a creating
// POST, so a caller can retry the same logical request safely.
func WithIdempotencyKey(key string) CallOption {
	return func(o *callOptions) { o.idempotencyKey = key }
}

// NewIdempotencyKey returns a random key (128 bits, hex).
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// request describes one unary call.
type request struct {
	method     string
	path       string
	query      url.Values
	body       any
	idempotent bool // a creating POST: send an Idempotency-Key
	opts       []CallOption
}

// do performs r and decodes a 2xx JSON answer into out (nil: discard).
func (c *Client) do(ctx context.Context, r request, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("encoding %s %s body: %w", r.method, r.path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, r.method, r.path, r.query, body)
	if err != nil {
		return err
	}
	if r.idempotent {
		o := callOptions{}
		for _, opt := range r.opts {
			opt(&o)
		}
		if o.idempotencyKey == "" {
			o.idempotencyKey = NewIdempotencyKey()
		}
		req.Header.Set(HeaderIdempotencyKey, o.idempotencyKey)
	}
	resp, err := c.send(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBytes))
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("reading %s %s: %w", r.method, r.path, ctx.Err())
		}
		return fmt.Errorf("reading %s %s: %w: %w", r.method, r.path, ErrUnreachable, err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding %s %s: %w: %w", r.method, r.path, ErrInvalidResponse, err)
	}
	return nil
}

func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body io.Reader) (*http.Request, error) {
	u := *c.base
	u.Path = c.base.Path + path
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("building %s %s: %w", method, path, err)
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	if c.tenant != "" {
		req.Header.Set(HeaderTenant, c.tenant)
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// send runs the exchange and classifies transport failures: a cancelled
// context stays a context error, everything else is ErrUnreachable.
func (c *Client) send(ctx context.Context, req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err == nil {
		return resp, nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("calling %s %s: %w", req.Method, req.URL.Path, ctxErr)
	}
	var cause error = err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	return nil, fmt.Errorf("calling %s %s on %s: %w: %w", req.Method, req.URL.Path, c.base.Host, ErrUnreachable, cause)
}

// decodeError turns a non-2xx answer into an *APIError. Bodies that are
// not the API's error shape (a proxy's HTML page) still yield a usable
// error from the status.
func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	e := &APIError{Status: resp.StatusCode, RequestID: resp.Header.Get(HeaderRequestID)}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
		return e
	}
	e.Code = codeForStatus(resp.StatusCode)
	e.Message = http.StatusText(resp.StatusCode)
	return e
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusUnauthorized:
		return CodeUnauthenticated
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusConflict:
		return CodeConflict
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return CodeUnavailable
	}
	if status >= 500 {
		return "internal"
	}
	return CodeInvalidArgument
}
