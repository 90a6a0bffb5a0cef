package loadtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// StatusError is a non-expected HTTP answer of the API.
type StatusError struct {
	Method, Path string
	Status       int
	Code         string
	Message      string
	// RetryAfter is the server's Retry-After on a 429.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, e.Code, e.Message)
}

// apiClient calls the JSON API. It holds one HTTP client per source
// address so that per-IP rate limits and ephemeral ports are spread.
type apiClient struct {
	base    string
	clients []*http.Client
	next    atomic.Uint64
	// unsentRetries counts attempts repeated because the server never
	// processed them (see neverProcessed).
	unsentRetries atomic.Int64
}

// maxResponseBytes bounds what the harness reads of one API answer.
const maxResponseBytes = 4 << 20

func newAPIClient(base string, caPEM []byte, sources []netip.Addr) (*apiClient, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("building API client: %w: no certificate in the CA file", ErrInvalidConfig)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	c := &apiClient{base: base}
	mk := func(local net.Addr) *http.Client {
		d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: local}
		return &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				DialContext:         d.DialContext,
				TLSClientConfig:     tlsCfg,
				MaxIdleConnsPerHost: 64,
				IdleConnTimeout:     30 * time.Second,
				ForceAttemptHTTP2:   false,
			},
		}
	}
	if len(sources) == 0 {
		c.clients = []*http.Client{mk(nil)}
	}
	for _, ip := range sources {
		c.clients = append(c.clients, mk(&net.TCPAddr{IP: ip.AsSlice()}))
	}
	return c, nil
}

// closeIdle releases the pooled connections, so no transport goroutine
// outlives the run.
func (c *apiClient) closeIdle() {
	for _, cl := range c.clients {
		cl.CloseIdleConnections()
	}
}

// client returns the HTTP client of source slot i (any int).
func (c *apiClient) client(i int) *http.Client {
	return c.clients[uint(i)%uint(len(c.clients))]
}

// maxUnsentAttempts bounds the attempts of a request the server never
// processed.
const maxUnsentAttempts = 5

// newRequest builds one attempt of r; sent reports whether the transport
// finished writing it.
func (c *apiClient) newRequest(ctx context.Context, r call, raw []byte, idem string) (*http.Request, *atomic.Bool, error) {
	sent := new(atomic.Bool)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(w httptrace.WroteRequestInfo) { sent.Store(w.Err == nil) },
	})
	var body io.Reader
	if raw != nil {
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.base+r.path, body)
	if err != nil {
		return nil, nil, fmt.Errorf("building %s %s: %w", r.method, r.path, err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	if r.key != "" {
		req.Header.Set("Authorization", "Bearer "+r.key)
	}
	if r.tenant != uuid.Nil {
		req.Header.Set("X-Nkudo-Tenant", r.tenant.String())
	}
	return req, sent, nil
}

// neverProcessed reports whether a failed attempt certainly did not reach
// the server's handler, so that repeating it cannot do anything twice
// (POST /v1/enroll is not idempotent: it uses a token). Either the request
// was never written, or the server had closed the connection before the
// request was put on it: net/http's "server closed idle connection"
// (errServerClosedIdle, unexported), which it only retries by itself on a
// reused connection. Under load a run saw it on a fresh connection while
// enrolling (the server closes a connection whose TLS handshake outlives
// its deadline, derived from ReadHeaderTimeout), and the whole run failed
// on a request the server never saw.
func neverProcessed(err error, sent bool) bool {
	return !sent || strings.Contains(err.Error(), "http: server closed idle connection")
}

// call is one API request; tenant is sent with the admin key.
type call struct {
	method, path, key string
	tenant            uuid.UUID
	body              any
	// want is the expected status; 0 accepts any 2xx.
	want int
	// slot picks the source address; -1 means round robin.
	slot int
}

func (c *apiClient) do(ctx context.Context, r call, out any) error {
	var raw []byte
	if r.body != nil {
		var err error
		if raw, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("encoding %s %s body: %w", r.method, r.path, err)
		}
	}
	// One key for every attempt: the server sees one logical request.
	idem := ""
	if r.method == http.MethodPost {
		idem = uuid.NewString()
	}
	slot := r.slot
	if slot < 0 {
		slot = int(c.next.Add(1))
	}
	var resp *http.Response
	for attempt := 1; ; attempt++ {
		req, sent, err := c.newRequest(ctx, r, raw, idem)
		if err != nil {
			return err
		}
		resp, err = c.client(slot).Do(req)
		if err == nil {
			break
		}
		if attempt >= maxUnsentAttempts || ctx.Err() != nil || !neverProcessed(err, sent.Load()) {
			return fmt.Errorf("calling %s %s (attempt %d): %w", r.method, r.path, attempt, err)
		}
		c.unsentRetries.Add(1)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("reading %s %s answer: %w", r.method, r.path, err)
	}
	ok := resp.StatusCode == r.want || (r.want == 0 && resp.StatusCode >= 200 && resp.StatusCode < 300)
	if !ok {
		se := &StatusError{Method: r.method, Path: r.path, Status: resp.StatusCode}
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil {
			se.Code, se.Message = e.Error.Code, e.Error.Message
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			se.RetryAfter = time.Duration(s) * time.Second
		}
		return se
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("decoding %s %s answer: %w", r.method, r.path, err)
		}
	}
	return nil
}

// statusOf returns the HTTP status of a StatusError, 0 for other errors.
func statusOf(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// tenantSetup is what bootstrap created: a tenant, operator keys and one
// site.
type tenantSetup struct {
	tenantID uuid.UUID
	siteID   uuid.UUID
	keys     []string
}

// bootstrap creates a fresh tenant with nKeys operator keys and a site,
// so every run starts from an empty fleet and never touches other data.
func (c *apiClient) bootstrap(ctx context.Context, adminKey string, nKeys int) (tenantSetup, error) {
	var ts tenantSetup
	suffix := uuid.NewString()[:8]
	var tenant struct {
		ID uuid.UUID `json:"id"`
	}
	if err := c.do(ctx, call{method: http.MethodPost, path: "/v1/tenants", key: adminKey,
		body: map[string]string{"name": "load-" + suffix}, want: http.StatusCreated, slot: 0}, &tenant); err != nil {
		return ts, fmt.Errorf("creating tenant: %w", err)
	}
	ts.tenantID = tenant.ID
	for i := range nKeys {
		var key struct {
			Key string `json:"key"`
		}
		if err := c.do(ctx, call{method: http.MethodPost, path: "/v1/tenants/" + tenant.ID.String() + "/api-keys",
			key: adminKey, body: map[string]string{"name": fmt.Sprintf("load-operator-%d", i), "role": "operator"},
			want: http.StatusCreated, slot: 0}, &key); err != nil {
			return ts, fmt.Errorf("creating API key %d: %w", i, err)
		}
		ts.keys = append(ts.keys, key.Key)
	}
	var site struct {
		ID uuid.UUID `json:"id"`
	}
	if err := c.do(ctx, call{method: http.MethodPost, path: "/v1/sites", key: ts.keys[0],
		body: map[string]string{"name": "load-site-" + suffix}, want: http.StatusCreated, slot: 0}, &site); err != nil {
		return ts, fmt.Errorf("creating site: %w", err)
	}
	ts.siteID = site.ID
	return ts, nil
}

// maxTokenUses is the API's upper bound on an enrollment token's uses.
const maxTokenUses = 1000

// enrollmentTokens creates enough multi-use tokens for n enrollments.
func (c *apiClient) enrollmentTokens(ctx context.Context, ts tenantSetup, n int) ([]string, error) {
	var out []string
	for left := n; left > 0; left -= maxTokenUses {
		var tok struct {
			Token string `json:"token"`
		}
		if err := c.do(ctx, call{method: http.MethodPost, path: "/v1/sites/" + ts.siteID.String() + "/enrollment-tokens",
			key: ts.keys[0], body: map[string]any{"ttl": "1h", "max_uses": min(left, maxTokenUses)},
			want: http.StatusCreated, slot: 0}, &tok); err != nil {
			return nil, fmt.Errorf("creating enrollment token %d: %w", len(out), err)
		}
		out = append(out, tok.Token)
	}
	return out, nil
}

// planView is the part of a plan answer the harness reads.
type planView struct {
	ID      uuid.UUID `json:"id"`
	Status  string    `json:"status"`
	Actions []struct {
		ID          uuid.UUID `json:"id"`
		ExecutionID uuid.UUID `json:"execution_id"`
	} `json:"actions"`
}
