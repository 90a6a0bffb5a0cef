package hub_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store"
)

func TestHandshakeRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	bystander, _ := e.connect(e.enroll())

	tests := []struct {
		name string
		// dial returns the HTTP status (0 when TLS itself failed), the
		// body and the dial error.
		dial     func(t *testing.T) dialResult
		status   int
		bodyCode string
	}{
		{
			name: "cert from another CA",
			dial: func(t *testing.T) dialResult {
				other, err := pki.LoadOrCreate(pki.Options{Dir: t.TempDir()})
				require.NoError(t, err)
				a := e.enroll()
				key, err := pki.GenerateKey()
				require.NoError(t, err)
				csr, err := pki.CreateCSR(key, a.id.String())
				require.NoError(t, err)
				cert, _, _, err := other.SignAgentCSR(csr, pki.AgentIdentity{TenantID: e.tenant, SiteID: e.site, AgentID: a.id}, time.Hour)
				require.NoError(t, err)
				return e.dialWith(e.tlsConfig(cert, key), []string{agentproto.Subprotocol})
			},
		},
		{
			name: "expired cert",
			dial: func(t *testing.T) dialResult {
				a := e.enroll()
				csr, err := pki.CreateCSR(a.key, a.id.String())
				require.NoError(t, err)
				e.authClock.Advance(-2 * time.Hour)
				cert, _, _, err := e.auth.SignAgentCSR(csr, pki.AgentIdentity{TenantID: e.tenant, SiteID: e.site, AgentID: a.id}, time.Minute)
				e.authClock.Advance(2 * time.Hour)
				require.NoError(t, err)
				return e.dialWith(e.tlsConfig(cert, a.key), []string{agentproto.Subprotocol})
			},
		},
		{
			name: "no client cert",
			dial: func(*testing.T) dialResult {
				return e.dialWith(e.tlsConfig(nil, nil), []string{agentproto.Subprotocol})
			},
			status:   http.StatusUnauthorized,
			bodyCode: "client_certificate_required",
		},
		{
			name: "plain HTTP",
			dial: func(t *testing.T) dialResult {
				plain := httptest.NewServer(http.HandlerFunc(e.hub.ServeAgent))
				defer plain.Close()
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				defer cancel()
				tr := &http.Transport{}
				defer tr.CloseIdleConnections()
				_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(plain.URL, "http")+"/v1/agent/connect",
					&websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}, Subprotocols: []string{agentproto.Subprotocol}})
				r := dialResult{err: err}
				if resp != nil {
					r.status = resp.StatusCode
				}
				return r
			},
			status: http.StatusBadRequest,
		},
		{
			name: "non-WebSocket GET",
			dial: func(t *testing.T) dialResult {
				a := e.enroll()
				tr := &http.Transport{TLSClientConfig: e.tlsConfig(a.certPEM, a.key)}
				defer tr.CloseIdleConnections()
				resp, err := (&http.Client{Transport: tr}).Get(e.srv.URL + "/v1/agent/connect")
				require.NoError(t, err)
				defer func() { _ = resp.Body.Close() }()
				b, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				return dialResult{status: resp.StatusCode, body: string(b), err: errNotUpgraded}
			},
			status:   http.StatusUpgradeRequired,
			bodyCode: "websocket_required",
		},
		{
			name: "missing subprotocol",
			dial: func(t *testing.T) dialResult {
				a := e.enroll()
				return e.dialWith(e.tlsConfig(a.certPEM, a.key), nil)
			},
			status:   http.StatusBadRequest,
			bodyCode: "subprotocol_required",
		},
		{
			name: "unknown agent",
			dial: func(t *testing.T) dialResult {
				a := e.enroll()
				key, err := pki.GenerateKey()
				require.NoError(t, err)
				csr, err := pki.CreateCSR(key, "ghost")
				require.NoError(t, err)
				ghost := pki.AgentIdentity{TenantID: e.tenant, SiteID: e.site, AgentID: a.host}
				cert, _, _, err := e.auth.SignAgentCSR(csr, ghost, time.Hour)
				require.NoError(t, err)
				return e.dialWith(e.tlsConfig(cert, key), []string{agentproto.Subprotocol})
			},
			status:   http.StatusForbidden,
			bodyCode: "unknown_agent",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.dial(t)
			require.Error(t, r.err)
			require.Equal(t, tt.status, r.status, "body: %s", r.body)
			if tt.bodyCode != "" {
				require.Contains(t, r.body, `{"error":{"code":"`+tt.bodyCode+`","message":`)
			}
			bystander.roundTrip()
		})
	}
}

type dialError string

func (e dialError) Error() string { return string(e) }

const errNotUpgraded = dialError("not upgraded")

func TestProtocolViolationsClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	bystander, _ := e.connect(e.enroll())
	frame := func(typ string, seq uint64, msg agentproto.Message) []byte {
		b, err := agentproto.Encode(typ, "", seq, 0, msg)
		require.NoError(t, err)
		return b
	}
	hello := frame(agentproto.TypeHello, 1, helloMsg())

	tests := []struct {
		name   string
		frames [][]byte // sent right after connecting
		binary bool
		want   websocket.StatusCode
	}{
		{name: "malformed frame", frames: [][]byte{hello, []byte(`{"type":"heartbeat","seq":2,"data":`)}, want: agentproto.CloseMalformed},
		{name: "invalid body", frames: [][]byte{hello, []byte(`{"type":"heartbeat","seq":2,"data":{"at":"x"}}`)}, want: agentproto.CloseMalformed},
		{name: "null body", frames: [][]byte{hello, []byte(`{"type":"heartbeat","seq":2,"data":null}`)}, want: agentproto.CloseMalformed},
		{name: "array body", frames: [][]byte{hello, []byte(`{"type":"action_result","seq":2,"data":[]}`)}, want: agentproto.CloseMalformed},
		{name: "oversized frame", frames: [][]byte{hello, []byte(`{"type":"heartbeat","data":"` + strings.Repeat("x", agentproto.MaxFrameBytes) + `"}`)}, want: agentproto.CloseTooLarge},
		{name: "unknown type", frames: [][]byte{hello, []byte(`{"type":"gossip","seq":2,"data":{}}`)}, want: agentproto.CloseUnknownType},
		{name: "null hello", frames: [][]byte{[]byte(`{"type":"hello","seq":1,"data":null}`)}, want: agentproto.CloseMalformed},
		{name: "array hello", frames: [][]byte{[]byte(`{"type":"hello","seq":1,"data":[]}`)}, want: agentproto.CloseMalformed},
		{name: "capability too old", frames: [][]byte{[]byte(`{"type":"hello","seq":1,"data":{"agent_version":"0.1","capability_version":0}}`)}, want: agentproto.CloseCapabilityTooOld},
		{name: "heartbeat before hello", frames: [][]byte{frame(agentproto.TypeHeartbeat, 1, &agentproto.Heartbeat{At: time.Now(), VMs: []agentproto.VMStatus{}, NetBird: agentproto.NetBirdStatus{State: agentproto.NetBirdDisabled}})}, want: agentproto.CloseProtocolError},
		{name: "seq gap", frames: [][]byte{hello, frame(agentproto.TypePlanAck, 3, &agentproto.PlanAck{PlanID: e.site})}, want: agentproto.CloseProtocolError},
		{name: "second hello", frames: [][]byte{hello, frame(agentproto.TypeHello, 2, helloMsg())}, want: agentproto.CloseProtocolError},
		{name: "server message from agent", frames: [][]byte{hello, frame(agentproto.TypeResultAck, 2, &agentproto.ResultAck{ActionID: e.site})}, want: agentproto.CloseProtocolError},
		{name: "binary message", frames: [][]byte{hello, []byte(`{}`)}, binary: true, want: agentproto.CloseMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.dial(e.enroll())
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			for i, f := range tt.frames {
				typ := websocket.MessageText
				if tt.binary && i == len(tt.frames)-1 {
					typ = websocket.MessageBinary
				}
				// The server may close before a large frame is fully
				// written; the close status below is what counts.
				_ = c.conn.Write(ctx, typ, f)
			}
			require.Equal(t, tt.want, c.closed())
			bystander.roundTrip()
		})
	}
}

func TestHelloTimeoutCloses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *hub.Options) { o.HelloTimeout = 50 * time.Millisecond })
	c := e.dial(e.enroll())
	require.Equal(t, agentproto.CloseProtocolError, c.closed())
	require.Equal(t, 0, e.hub.Sessions())
}

func TestAdmissionControlRefusesWithRetryAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *hub.Options) {
		o.MaxHandshakes = 1
		// Both agents dial from loopback: the global limit, not the
		// address's, is what this test exercises.
		o.MaxHandshakesPerAddress = 2
		o.AdmissionWait = 20 * time.Millisecond
		o.RetryAfter = 3 * time.Second
	})
	a := e.enroll()
	// A connection without its hello yet holds the only slot.
	first := e.dial(a)
	second := e.enroll()
	for range 5 {
		r := e.dialWith(e.tlsConfig(second.certPEM, second.key), []string{agentproto.Subprotocol})
		require.Error(t, r.err)
		require.Equal(t, http.StatusServiceUnavailable, r.status)
		require.Contains(t, r.body, `"code":"overloaded"`)
		require.NotEmpty(t, r.retryAfter)
		secs, err := strconv.Atoi(r.retryAfter)
		require.NoError(t, err)
		require.GreaterOrEqual(t, secs, 1)
		require.LessOrEqual(t, secs, 3)
	}
	// Once the hello is processed, the slot is free again. hello_ack is
	// sent just before the slot is given back, so a dial right after it
	// may still find none: retry until admitted.
	first.send(agentproto.TypeHello, "", helloMsg())
	first.expect(agentproto.TypeHelloAck)
	var c *client
	eventually(t, "the second agent admitted", func() (bool, error) {
		r := e.dialWith(e.tlsConfig(second.certPEM, second.key), []string{agentproto.Subprotocol})
		if r.err != nil {
			return false, fmt.Errorf("%d %s: %w", r.status, r.body, r.err)
		}
		c = r.c
		return true, nil
	})
	c.send(agentproto.TypeHello, "", helloMsg())
	c.expect(agentproto.TypeHelloAck)
	c.roundTrip()
	first.roundTrip()
}

// TestHandshakeFloodStarvesNobody: upgrades that never send their hello
// hold admission slots until the hello timeout. One agent identity (or one
// source address with many) flooding them takes only its own share:
// its extra connections are refused with 429 and Retry-After, and another
// tenant's agent, from another address, connects at once.
func TestHandshakeFloodStarvesNobody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		flooders int // agent identities of the flooding tenant
		dials    int // upgrades per identity, none sends a hello
		held     int // at most this many flood upgrades get through
	}{
		{name: "one agent", flooders: 1, dials: 24, held: 2},
		{name: "many agents from one address", flooders: 8, dials: 3, held: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(o *hub.Options) {
				o.MaxHandshakes = 16
				o.MaxHandshakesPerAgent = 2
				o.MaxHandshakesPerAddress = 4
				o.AdmissionWait = 100 * time.Millisecond
				// The flood holds its slots for the whole test.
				o.HelloTimeout = 10 * time.Minute
			})
			var flood []*agent
			for range tt.flooders {
				flood = append(flood, e.enroll())
			}
			var wg sync.WaitGroup
			results := make(chan dialResult, tt.flooders*tt.dials)
			for _, a := range flood {
				for range tt.dials {
					wg.Go(func() { results <- e.dialFrom(a, "127.0.0.1") })
				}
			}
			wg.Wait()
			close(results)
			through := 0
			for r := range results {
				if r.err == nil {
					through++
					continue
				}
				require.Equal(t, http.StatusTooManyRequests, r.status, "body: %s", r.body)
				require.Contains(t, r.body, `"code":"too_many_handshakes"`)
				require.NotEmpty(t, r.retryAfter)
			}
			require.LessOrEqual(t, through, tt.held)

			// Another tenant's agent, from another address, is admitted.
			tenant, site, token := e.otherTenant()
			victim := e.enrollIn(tenant, site, token)
			r := e.dialFrom(victim, "127.0.0.2")
			require.NoError(t, r.err, "the victim was refused: %d %s", r.status, r.body)
			r.c.send(agentproto.TypeHello, "", helloMsg())
			r.c.expect(agentproto.TypeHelloAck)
			r.c.roundTrip()
		})
	}
}

// dialFrom dials as a from the local address ip (any 127.0.0.0/8 address
// reaches the loopback listener).
func (e *env) dialFrom(a *agent, ip string) dialResult {
	e.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{TLSClientConfig: e.tlsConfig(a.certPEM, a.key), DialContext: d.DialContext}
	return e.dialOn(tr, []string{agentproto.Subprotocol})
}

// otherTenant creates a second tenant with a site and an enrollment token.
func (e *env) otherTenant() (tenant, site uuid.UUID, token string) {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now()
	tenant, site, token = store.NewID(), store.NewID(), "tok-"+store.NewID().String()
	require.NoError(e.t, e.st.CreateTenant(ctx, store.Tenant{ID: tenant, Name: "other-" + tenant.String(), CreatedAt: now}))
	require.NoError(e.t, e.st.CreateSite(ctx, store.Site{ID: site, TenantID: tenant, Name: "edge", CreatedAt: now, UpdatedAt: now}))
	hash := sha256.Sum256([]byte(token))
	require.NoError(e.t, e.st.CreateEnrollmentToken(ctx, store.EnrollmentToken{
		ID: store.NewID(), TenantID: tenant, SiteID: site, Hash: hash[:],
		ExpiresAt: now.Add(time.Hour), MaxUses: 10, CreatedAt: now,
	}))
	return tenant, site, token
}
