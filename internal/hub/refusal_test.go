package hub_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/pki"
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
		{name: "oversized frame", frames: [][]byte{hello, []byte(`{"type":"heartbeat","data":"` + strings.Repeat("x", agentproto.MaxFrameBytes) + `"}`)}, want: agentproto.CloseTooLarge},
		{name: "unknown type", frames: [][]byte{hello, []byte(`{"type":"gossip","seq":2,"data":{}}`)}, want: agentproto.CloseUnknownType},
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
	// Once the hello is processed, the slot is free again.
	first.send(agentproto.TypeHello, "", helloMsg())
	first.expect(agentproto.TypeHelloAck)
	c, _ := e.connect(second)
	c.roundTrip()
	first.roundTrip()
}
