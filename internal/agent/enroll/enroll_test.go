package enroll

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agent/identity"
	"github.com/kubedoio/n-kudo/internal/pki"
)

// testServer implements the POST /v1/enroll contract of SPEC.md with a
// real pki.Authority, over real TLS on loopback.
type testServer struct {
	*httptest.Server
	auth  *pki.Authority
	calls atomic.Int32
	// refuse, when set, is answered instead of an enrollment.
	refuse func(w http.ResponseWriter)
	// lie, when set, makes the answer name another agent than the
	// certificate does.
	lie bool
	// netbird, when set, is sent as the answer's NetBird part.
	netbird *netbirdAnswer
}

func newAuthority(t *testing.T) *pki.Authority {
	t.Helper()
	a, err := pki.LoadOrCreate(pki.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	return a
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	ts := &testServer{auth: newAuthority(t)}
	ts.Server = httptest.NewUnstartedServer(http.HandlerFunc(ts.serve))
	conf := ts.auth.ServerTLSConfig()
	// The server sends its CA in the chain, which is what lets an agent
	// pin it by fingerprint alone.
	chain := ts.auth.ServerCertificate()
	chain.Certificate = append(chain.Certificate[:len(chain.Certificate):len(chain.Certificate)], ts.auth.CACert().Raw)
	conf.Certificates = []tls.Certificate{chain}
	ts.TLS = conf
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

func (ts *testServer) serve(w http.ResponseWriter, r *http.Request) {
	ts.calls.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/v1/enroll" {
		http.NotFound(w, r)
		return
	}
	if ts.refuse != nil {
		ts.refuse(w)
		return
	}
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Token != "good-token" || req.Hostname == "" {
		writeErr(w, http.StatusBadRequest, "invalid_argument", "bad request")
		return
	}
	id := pki.AgentIdentity{TenantID: uuid.New(), SiteID: uuid.New(), AgentID: uuid.New()}
	certPEM, _, _, err := ts.auth.SignAgentCSR([]byte(req.CSR), id, 0)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	agentID := id.AgentID
	if ts.lie {
		agentID = uuid.New()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(response{
		AgentID: agentID, HostID: uuid.New(), SiteID: id.SiteID, TenantID: id.TenantID,
		Certificate: string(certPEM), CA: string(ts.auth.CACertPEM()), NetBird: ts.netbird,
	})
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeCAFile(t *testing.T, a *pki.Authority) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(p, a.CACertPEM(), 0o600))
	return p
}

func TestEnroll(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup returns options for a fresh server and state dir.
		setup    func(t *testing.T, ts *testServer, o *Options)
		wantErr  error
		wantCode string
		// wantCalls is how many requests reached the server.
		wantCalls int32
	}{
		{
			name:      "ca file",
			setup:     func(t *testing.T, ts *testServer, o *Options) { o.CAFile = writeCAFile(t, ts.auth) },
			wantCalls: 1,
		},
		{
			name:      "ca fingerprint",
			setup:     func(_ *testing.T, ts *testServer, o *Options) { o.CAFingerprint = ts.auth.Fingerprint() },
			wantCalls: 1,
		},
		{
			name: "ca fingerprint in openssl form",
			setup: func(_ *testing.T, ts *testServer, o *Options) {
				fp := ts.auth.Fingerprint()
				var s string
				for i := 0; i < len(fp); i += 2 {
					if i > 0 {
						s += ":"
					}
					s += fp[i : i+2]
				}
				o.CAFingerprint = "SHA256:" + s
			},
			wantCalls: 1,
		},
		{
			name: "ca fingerprint mismatch",
			setup: func(t *testing.T, _ *testServer, o *Options) {
				o.CAFingerprint = newAuthority(t).Fingerprint()
			},
			wantErr: ErrUntrusted,
		},
		{
			name: "ca file of another CA",
			setup: func(t *testing.T, _ *testServer, o *Options) {
				o.CAFile = writeCAFile(t, newAuthority(t))
			},
			wantErr: errTLS,
		},
		{
			name: "token expired",
			setup: func(t *testing.T, ts *testServer, o *Options) {
				o.CAFile = writeCAFile(t, ts.auth)
				ts.refuse = func(w http.ResponseWriter) {
					writeErr(w, http.StatusUnauthorized, "token_invalid", "enrollment token expired or used up")
				}
			},
			wantCode:  "token_invalid",
			wantCalls: 1,
		},
		{
			name: "rate limited",
			setup: func(t *testing.T, ts *testServer, o *Options) {
				o.CAFile = writeCAFile(t, ts.auth)
				ts.refuse = func(w http.ResponseWriter) {
					writeErr(w, http.StatusTooManyRequests, "rate_limited", "too many attempts")
				}
			},
			wantCode:  "rate_limited",
			wantCalls: 1,
		},
		{
			name: "answer names another agent",
			setup: func(t *testing.T, ts *testServer, o *Options) {
				o.CAFile = writeCAFile(t, ts.auth)
				ts.lie = true
			},
			wantErr:   ErrBadResponse,
			wantCalls: 1,
		},
		{
			name: "failover server not https",
			setup: func(t *testing.T, ts *testServer, o *Options) {
				o.CAFile = writeCAFile(t, ts.auth)
				o.Servers = []string{"http://replica-2:8443"}
			},
			wantErr: ErrConfig,
		},
		{
			name: "existing identity",
			setup: func(t *testing.T, ts *testServer, o *Options) {
				o.CAFile = writeCAFile(t, ts.auth)
				require.NoError(t, os.WriteFile(filepath.Join(o.StateDir, identity.InfoFile), []byte("{}"), 0o600))
			},
			wantErr: identity.ErrExists,
		},
		{
			name: "existing identity forced",
			setup: func(t *testing.T, ts *testServer, o *Options) {
				o.CAFile = writeCAFile(t, ts.auth)
				o.Force = true
				require.NoError(t, os.WriteFile(filepath.Join(o.StateDir, identity.InfoFile), []byte("{}"), 0o600))
			},
			wantCalls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			o := Options{Server: ts.URL, Token: "good-token", StateDir: t.TempDir(), Hostname: "edge-1"}
			tt.setup(t, ts, &o)
			info, err := Enroll(context.Background(), o)
			assert.Equal(t, tt.wantCalls, ts.calls.Load(), "requests reaching the server")
			switch {
			case tt.wantCode != "":
				var se *ServerError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, tt.wantCode, se.Code)
				assert.Contains(t, err.Error(), se.Message)
				assertNotEnrolled(t, o.StateDir, o.Force)
				return
			case errors.Is(tt.wantErr, errTLS):
				var ue *tls.CertificateVerificationError
				require.ErrorAs(t, err, &ue)
				assertNotEnrolled(t, o.StateDir, o.Force)
				return
			case tt.wantErr != nil:
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			id, err := identity.Load(o.StateDir)
			require.NoError(t, err)
			assert.Equal(t, info, id.Info)
			assert.Equal(t, "edge-1", id.Info.Hostname)
			assert.Equal(t, ts.URL, id.Info.Server)
			require.NoError(t, pki.VerifyFingerprint(id.CAPEM, ts.auth.Fingerprint()), "the pinned CA is the server's")
			st, err := os.Stat(filepath.Join(o.StateDir, identity.KeyFile))
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
			// The stored identity dials the server with mutual TLS.
			conf, err := pki.NewCertStore(id.Cert).ClientTLSConfig(id.CAPEM)
			require.NoError(t, err)
			conn, err := tls.Dial("tcp", ts.Listener.Addr().String(), conf)
			require.NoError(t, err)
			require.NoError(t, conn.Handshake())
			_ = conn.Close()
		})
	}
}

// Every server given is stored, the one enrolled through first and
// without repeats, so that `run` fails over between them.
func TestEnrollStoresEveryServer(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	o := Options{Server: ts.URL + "/", Servers: []string{"https://replica-2:8443/", ts.URL},
		Token: "good-token", StateDir: t.TempDir(), Hostname: "edge-1", CAFile: writeCAFile(t, ts.auth)}
	_, err := Enroll(context.Background(), o)
	require.NoError(t, err)
	id, err := identity.Load(o.StateDir)
	require.NoError(t, err)
	assert.Equal(t, ts.URL, id.Info.Server)
	assert.Equal(t, []string{ts.URL, "https://replica-2:8443"}, id.Info.Servers)
	assert.Equal(t, id.Info.Servers, id.Info.ServerList())
}

// errTLS marks cases that must fail in the TLS handshake.
var errTLS = errors.New("tls verification failure")

func assertNotEnrolled(t *testing.T, dir string, hadOld bool) {
	t.Helper()
	if hadOld {
		return
	}
	_, err := identity.Load(dir)
	require.ErrorIs(t, err, identity.ErrNotEnrolled)
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	good := Options{Server: "https://127.0.0.1:8443", Token: "t", StateDir: "/tmp/x", CAFile: "/ca.pem"}
	tests := []struct {
		name string
		mut  func(*Options)
		ok   bool
	}{
		{"good", func(*Options) {}, true},
		{"http server", func(o *Options) { o.Server = "http://127.0.0.1:8443" }, false},
		{"no server", func(o *Options) { o.Server = "" }, false},
		{"no token", func(o *Options) { o.Token = "" }, false},
		{"no state dir", func(o *Options) { o.StateDir = "" }, false},
		{"no trust", func(o *Options) { o.CAFile = "" }, false},
		{"both trusts", func(o *Options) { o.CAFingerprint = "00" }, false},
		{"bad fingerprint", func(o *Options) { o.CAFile, o.CAFingerprint = "", "zz" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := good
			tt.mut(&o)
			err := o.Validate()
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrConfig)
		})
	}
}
