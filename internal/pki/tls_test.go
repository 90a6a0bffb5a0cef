package pki

import (
	"context"
	"crypto/tls"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ioTimeout bounds each network operation so a broken handshake fails the
// test instead of hanging it; it is never what a test waits on.
const ioTimeout = 10 * time.Second

type handshakeResult struct {
	state tls.ConnectionState
	err   error
}

// startTLSServer serves TLS on a loopback port. For each connection it runs
// the handshake, reports the result, writes one byte on success and closes.
// The accept loop is owned by the test: cleanup closes the listener and
// waits for the loop to return.
func startTLSServer(t *testing.T, cfg *tls.Config) (string, <-chan handshakeResult) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	results := make(chan handshakeResult, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // listener closed
			}
			results <- serveOne(conn.(*tls.Conn))
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return ln.Addr().String(), results
}

func serveOne(conn *tls.Conn) handshakeResult {
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		return handshakeResult{err: err}
	}
	_ = conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := conn.Write([]byte("k")); err != nil {
		return handshakeResult{err: err}
	}
	return handshakeResult{state: conn.ConnectionState()}
}

// dialAndRead connects, then reads the server's byte: in TLS 1.3 a client
// learns that the server refused its certificate only on its first read.
func dialAndRead(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	var b [1]byte
	_, err = io.ReadFull(conn, b[:])
	return err
}

func receive(t *testing.T, results <-chan handshakeResult) handshakeResult {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(ioTimeout):
		t.Fatal("server reported no handshake")
		return handshakeResult{}
	}
}

// enrollAgent runs the agent side of enrollment against a: key, CSR,
// signed certificate, client config around a CertStore.
func enrollAgent(t *testing.T, a *Authority, id AgentIdentity) (*CertStore, *tls.Config) {
	t.Helper()
	key, err := GenerateKey()
	require.NoError(t, err)
	csr, err := CreateCSR(key, "edge")
	require.NoError(t, err)
	certPEM, _, _, err := a.SignAgentCSR(csr, id, time.Hour)
	require.NoError(t, err)
	pair, err := KeyPair(certPEM, key)
	require.NoError(t, err)
	store := NewCertStore(pair)
	cfg, err := store.ClientTLSConfig(a.CACertPEM())
	require.NoError(t, err)
	return store, cfg
}

func TestMutualTLSHandshake(t *testing.T) {
	t.Parallel()
	a, _ := newTestAuthority(t, Options{})
	other, _ := newTestAuthority(t, Options{})
	id := newIdentity()
	_, agentCfg := enrollAgent(t, a, id)
	_, foreignCfg := enrollAgent(t, other, newIdentity())
	foreignCfg.RootCAs = a.CAPool() // trusts our server, presents another CA's cert

	tests := []struct {
		name   string
		client func() *tls.Config
		wantOK bool
		wantID *AgentIdentity
		// wantServerErr, when set, must appear in the server's handshake
		// error, so a refusal is known to be for the intended reason.
		wantServerErr string
	}{
		{
			name:   "agent certificate, server verified by IP",
			client: func() *tls.Config { return agentCfg.Clone() },
			wantOK: true,
			wantID: &id,
		},
		{
			name: "agent certificate, server verified as localhost",
			client: func() *tls.Config {
				c := agentCfg.Clone()
				c.ServerName = "localhost"
				return c
			},
			wantOK: true,
			wantID: &id,
		},
		{
			name: "operator without client certificate",
			client: func() *tls.Config {
				return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: a.CAPool(), NextProtos: []string{"http/1.1"}}
			},
			wantOK: true,
		},
		{
			name: "TLS 1.2 only client",
			client: func() *tls.Config {
				c := agentCfg.Clone()
				c.MinVersion = tls.VersionTLS12
				c.MaxVersion = tls.VersionTLS12
				return c
			},
			wantServerErr: "unsupported versions",
		},
		{
			name:          "client certificate from another CA",
			client:        func() *tls.Config { return foreignCfg.Clone() },
			wantServerErr: "certificate signed by unknown authority",
		},
		{
			name: "client pinned to another CA",
			client: func() *tls.Config {
				c := agentCfg.Clone()
				c.RootCAs = other.CAPool()
				return c
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, results := startTLSServer(t, a.ServerTLSConfig())
			clientErr := dialAndRead(t, addr, tt.client())
			res := receive(t, results)
			if !tt.wantOK {
				assert.Error(t, clientErr, "client side")
				require.Error(t, res.err, "server side")
				assert.Contains(t, res.err.Error(), tt.wantServerErr)
				return
			}
			require.NoError(t, clientErr)
			require.NoError(t, res.err)
			assert.Equal(t, uint16(tls.VersionTLS13), res.state.Version)
			assert.Equal(t, "http/1.1", res.state.NegotiatedProtocol)
			if tt.wantID == nil {
				assert.Empty(t, res.state.PeerCertificates)
				return
			}
			require.NotEmpty(t, res.state.VerifiedChains, "client certificate verified by the server")
			got, err := IdentityFromCert(res.state.VerifiedChains[0][0])
			require.NoError(t, err)
			assert.Equal(t, *tt.wantID, got)
		})
	}
}

func TestCertStoreRenewalWithoutRebuild(t *testing.T) {
	t.Parallel()
	a, _ := newTestAuthority(t, Options{})
	first, second := newIdentity(), newIdentity()
	store, cfg := enrollAgent(t, a, first)
	addr, results := startTLSServer(t, a.ServerTLSConfig())

	// Renew: new key and certificate swapped into the same store; the
	// config built at enrollment is reused unchanged.
	renewedStore, _ := enrollAgent(t, a, second)

	for _, want := range []AgentIdentity{first, second} {
		if want == second {
			store.Set(*renewedStore.Current())
		}
		require.NoError(t, dialAndRead(t, addr, cfg))
		res := receive(t, results)
		require.NoError(t, res.err)
		require.NotEmpty(t, res.state.VerifiedChains)
		got, err := IdentityFromCert(res.state.VerifiedChains[0][0])
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
}
