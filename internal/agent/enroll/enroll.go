package enroll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agent/identity"
	"github.com/kubedoio/n-kudo/internal/agent/statefile"
	"github.com/kubedoio/n-kudo/internal/netbird"
	"github.com/kubedoio/n-kudo/internal/pki"
)

// Sentinel errors.
var (
	// ErrConfig: the options are unusable.
	ErrConfig = errors.New("invalid enrollment options")
	// ErrUntrusted: the server or its answer does not match the CA the
	// operator said to trust.
	ErrUntrusted = errors.New("server not trusted")
	// ErrBadResponse: the server answered 2xx with something that is not
	// a usable enrollment.
	ErrBadResponse = errors.New("bad enrollment response")
)

// maxResponseBytes bounds the enrollment answer (two PEM bundles and ids).
const maxResponseBytes = 1 << 20

// DefaultTimeout bounds the whole enrollment request.
const DefaultTimeout = 30 * time.Second

// Options configures Enroll.
type Options struct {
	// Server is the base URL, https://HOST:PORT, enrolled through.
	Server string
	// Servers are more replicas' base URLs, stored with the identity
	// (after Server) so that `nkudo-agent run` fails over to them.
	Servers []string
	// Token is the enrollment token; it is never logged.
	Token    string
	StateDir string
	// CAFile is a PEM file with the server CA; exclusive with
	// CAFingerprint.
	CAFile string
	// CAFingerprint is the SHA-256 of the server CA certificate.
	CAFingerprint string
	// Hostname is sent to the server; empty means os.Hostname.
	Hostname string
	// Force replaces an existing identity.
	Force bool
	// Timeout bounds the request; zero means DefaultTimeout.
	Timeout time.Duration
	// Now stamps the identity (tests); nil means time.Now.
	Now func() time.Time
}

// Validate checks the options without touching the network.
func (o Options) Validate() error {
	var problems []string
	if o.Server == "" {
		problems = append(problems, "--server is required")
	}
	for _, srv := range append([]string{o.Server}, o.Servers...) {
		if u, err := url.Parse(srv); srv != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
			problems = append(problems, fmt.Sprintf("--server %q must be an https://HOST:PORT URL", srv))
		}
	}
	if o.Token == "" {
		problems = append(problems, "--token (or NKUDO_ENROLL_TOKEN) is required")
	}
	if o.StateDir == "" {
		problems = append(problems, "--state-dir is required")
	}
	switch {
	case o.CAFile == "" && o.CAFingerprint == "":
		problems = append(problems, "one of --ca-file or --ca-fingerprint is required to trust the server")
	case o.CAFile != "" && o.CAFingerprint != "":
		problems = append(problems, "--ca-file and --ca-fingerprint are exclusive")
	case o.CAFingerprint != "":
		if _, err := pki.ParseFingerprint(o.CAFingerprint); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrConfig, strings.Join(problems, "; "))
	}
	return nil
}

// ServerError is a refusal by the server, in its JSON error shape.
type ServerError struct {
	Status  int
	Code    string
	Message string
}

func (e *ServerError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("server refused enrollment: HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("server refused enrollment: %s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

type request struct {
	Token    string `json:"token"`
	CSR      string `json:"csr"`
	Hostname string `json:"hostname"`
}

type response struct {
	AgentID     uuid.UUID `json:"agent_id"`
	HostID      uuid.UUID `json:"host_id"`
	SiteID      uuid.UUID `json:"site_id"`
	TenantID    uuid.UUID `json:"tenant_id"`
	Certificate string    `json:"certificate"`
	CA          string    `json:"ca"`
	// NetBird is present when the token's site has NetBird enabled.
	NetBird *netbirdAnswer `json:"netbird"`
}

// netbirdAnswer is what the server hands over for joining the mesh.
type netbirdAnswer struct {
	SetupKey      string `json:"setup_key"`
	ManagementURL string `json:"management_url"`
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Enroll enrolls the agent and stores its identity in o.StateDir.
func Enroll(ctx context.Context, o Options) (identity.Info, error) {
	if err := o.Validate(); err != nil {
		return identity.Info{}, err
	}
	// Checked before the token is spent, and again by Save.
	exists, err := identity.Exists(o.StateDir)
	if err != nil {
		return identity.Info{}, err
	}
	if exists && !o.Force {
		return identity.Info{}, fmt.Errorf("enrolling: %s already holds an identity: %w (use --force to replace it)", o.StateDir, identity.ErrExists)
	}
	hostname := o.Hostname
	if hostname == "" {
		if hostname, err = os.Hostname(); err != nil {
			return identity.Info{}, fmt.Errorf("enrolling: reading host name: %w", err)
		}
	}
	anchorOf, tlsConf, err := trust(o)
	if err != nil {
		return identity.Info{}, err
	}
	key, err := pki.GenerateKey()
	if err != nil {
		return identity.Info{}, fmt.Errorf("enrolling: %w", err)
	}
	csr, err := pki.CreateCSR(key, hostname)
	if err != nil {
		return identity.Info{}, fmt.Errorf("enrolling: %w", err)
	}
	resp, err := post(ctx, o, tlsConf, request{Token: o.Token, CSR: string(csr), Hostname: hostname})
	if err != nil {
		return identity.Info{}, err
	}
	cert, err := pki.KeyPair([]byte(resp.Certificate), key)
	if err != nil {
		return identity.Info{}, fmt.Errorf("enrolling: %w: certificate: %w", ErrBadResponse, err)
	}
	anchor := anchorOf()
	if err := checkAnswer(resp, cert, anchor); err != nil {
		return identity.Info{}, err
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	info := identity.Info{
		AgentID: resp.AgentID, HostID: resp.HostID, SiteID: resp.SiteID, TenantID: resp.TenantID,
		Server: strings.TrimRight(o.Server, "/"), Servers: serverList(o), Hostname: hostname, EnrolledAt: now().UTC(),
	}
	// The pinned CA is the anchor the agent verified, not whatever the
	// answer carried: checkAnswer made sure they are the same certificate.
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: anchor.Raw})
	// NetBird first: an answer it cannot store fails before an identity
	// exists that a retry with a new token would have to --force over.
	if nb := resp.NetBird; nb != nil && nb.SetupKey != "" {
		if err := saveNetBird(o.StateDir, nb.SetupKey, nb.ManagementURL); err != nil {
			return identity.Info{}, fmt.Errorf("enrolling: %w", err)
		}
	}
	if err := identity.Save(o.StateDir, info, key, []byte(resp.Certificate), caPEM, o.Force); err != nil {
		return identity.Info{}, fmt.Errorf("enrolling: %w", err)
	}
	return info, nil
}

// serverList is Server then Servers, without repeats; nil when that is
// Server alone (identity.Info.ServerList falls back to it).
func serverList(o Options) []string {
	var out []string
	seen := map[string]bool{}
	for _, srv := range append([]string{o.Server}, o.Servers...) {
		srv = strings.TrimRight(srv, "/")
		if srv != "" && !seen[srv] {
			seen[srv] = true
			out = append(out, srv)
		}
	}
	if len(out) < 2 {
		return nil
	}
	return out
}

// Files in the state directory holding what enrollment delivered for
// NetBird; `nkudo-agent run --netbird-enabled` reads them.
const (
	// NetBirdSetupKeyFile holds the setup key, mode 0600 (a secret).
	NetBirdSetupKeyFile = "netbird-setup-key"
	// NetBirdManagementFile holds the management URL to join with.
	NetBirdManagementFile = "netbird-management-url"
)

// saveNetBird stores the setup key (0600, never logged) and the management
// URL the agent joins the mesh with.
func saveNetBird(dir, key, managementURL string) error {
	// The first enrollment of a host finds no state directory yet:
	// identity.Save, which would create it, runs after this.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("storing netbird setup key: creating state directory: %w", err)
	}
	if err := (netbird.SetupKeyFile{Path: filepath.Join(dir, NetBirdSetupKeyFile)}).Write(key); err != nil {
		return fmt.Errorf("storing netbird setup key: %w", err)
	}
	if managementURL == "" {
		return nil
	}
	if u, err := url.Parse(managementURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("storing netbird management url: %w: %q is not an http(s) URL", ErrBadResponse, managementURL)
	}
	if err := statefile.WriteBytes(filepath.Join(dir, NetBirdManagementFile), []byte(managementURL+"\n")); err != nil {
		return fmt.Errorf("storing netbird management url: %w", err)
	}
	return nil
}

// TrustConfig is the TLS configuration enrollment uses to trust the
// server, from a CA file or a CA fingerprint (exactly one of them), for
// tools that must reach the server the same way before enrolling
// (`nkudo-agent doctor`).
func TrustConfig(caFile, caFingerprint string) (*tls.Config, error) {
	_, conf, err := trust(Options{CAFile: caFile, CAFingerprint: caFingerprint})
	return conf, err
}

// trust returns the TLS configuration that enforces the operator's trust
// choice and a function returning the CA certificate it trusted (with a
// fingerprint, known only once a handshake verified it).
func trust(o Options) (func() *x509.Certificate, *tls.Config, error) {
	if o.CAFile != "" {
		data, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("enrolling: reading CA file: %w", err)
		}
		certs, err := parsePEMCerts(data)
		if err != nil || len(certs) != 1 || !certs[0].IsCA {
			return nil, nil, fmt.Errorf("enrolling: %w: %s must hold exactly one CA certificate", ErrConfig, o.CAFile)
		}
		pool := x509.NewCertPool()
		pool.AddCert(certs[0])
		anchor := certs[0]
		return func() *x509.Certificate { return anchor }, &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
	}
	want, err := pki.ParseFingerprint(o.CAFingerprint)
	if err != nil {
		return nil, nil, fmt.Errorf("enrolling: %w: %w", ErrConfig, err)
	}
	p := &pinned{want: want}
	return p.anchor.Load, &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Standard verification needs the CA up front, which is exactly
		// what a fingerprint-only agent lacks; VerifyConnection does the
		// full chain verification instead, against the pinned
		// certificate. A handshake it does not approve fails.
		InsecureSkipVerify: true, //nolint:gosec // replaced by VerifyConnection, see above
		VerifyConnection:   p.verify,
	}, nil
}

// pinned verifies a server chain against a CA known only by fingerprint.
type pinned struct {
	want []byte
	// anchor is set by a successful verify; the handshake runs on the
	// transport's goroutine, hence atomic.
	anchor atomic.Pointer[x509.Certificate]
}

func (p *pinned) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: server presented no certificate", ErrUntrusted)
	}
	var anchor *x509.Certificate
	for _, c := range cs.PeerCertificates {
		sum := sha256.Sum256(c.Raw)
		if subtle.ConstantTimeCompare(sum[:], p.want) == 1 {
			anchor = c
			break
		}
	}
	if anchor == nil {
		return fmt.Errorf("%w: no certificate in the server's chain matches --ca-fingerprint (%w)", ErrUntrusted, pki.ErrFingerprintMismatch)
	}
	if !anchor.IsCA {
		return fmt.Errorf("%w: the certificate matching --ca-fingerprint is not a CA", ErrUntrusted)
	}
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		DNSName:       cs.ServerName,
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	p.anchor.Store(anchor)
	return nil
}

func post(ctx context.Context, o Options, tlsConf *tls.Config, body request) (*response, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("enrolling: encoding request: %w", err)
	}
	endpoint := strings.TrimRight(o.Server, "/") + "/v1/enroll"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("enrolling: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	tr := &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true, Proxy: http.ProxyFromEnvironment}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("enrolling with %s: %w", o.Server, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("enrolling: reading response: %w", err)
	}
	if len(raw) > maxResponseBytes {
		return nil, fmt.Errorf("enrolling: %w: response over %d bytes", ErrBadResponse, maxResponseBytes)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, serverError(res.StatusCode, raw)
	}
	var out response
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("enrolling: %w: %w", ErrBadResponse, err)
	}
	return &out, nil
}

func serverError(status int, raw []byte) error {
	var body errorBody
	if err := json.Unmarshal(raw, &body); err == nil && body.Error.Code != "" {
		return &ServerError{Status: status, Code: body.Error.Code, Message: body.Error.Message}
	}
	msg := strings.TrimSpace(string(raw))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &ServerError{Status: status, Message: msg}
}

// checkAnswer makes sure the enrollment answer is what the agent asked
// for: ids present, the CA in it is the trusted anchor, and the
// certificate chains to it and names the agent id it came with.
func checkAnswer(resp *response, cert tls.Certificate, anchor *x509.Certificate) error {
	if resp.AgentID == uuid.Nil || resp.HostID == uuid.Nil || resp.SiteID == uuid.Nil || resp.TenantID == uuid.Nil {
		return fmt.Errorf("enrolling: %w: missing agent, host, site or tenant id", ErrBadResponse)
	}
	cas, err := parsePEMCerts([]byte(resp.CA))
	if err != nil {
		return fmt.Errorf("enrolling: %w: ca: %w", ErrBadResponse, err)
	}
	if anchor == nil {
		return fmt.Errorf("enrolling: %w: no verified anchor", ErrUntrusted)
	}
	found := false
	for _, c := range cas {
		if c.Equal(anchor) {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("enrolling: %w: the CA in the answer is not the trusted CA", ErrUntrusted)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: anchor.Raw})
	if err := identity.VerifyClientCert(cert, caPEM); err != nil {
		return fmt.Errorf("enrolling: %w: %w", ErrUntrusted, err)
	}
	id, err := pki.IdentityFromCert(cert.Leaf)
	if err != nil {
		return fmt.Errorf("enrolling: %w: %w", ErrBadResponse, err)
	}
	if id.AgentID != resp.AgentID || id.SiteID != resp.SiteID || id.TenantID != resp.TenantID {
		return fmt.Errorf("enrolling: %w: certificate names %s, answer agent %s", ErrBadResponse, id, resp.AgentID)
	}
	return nil
}

func parsePEMCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}
