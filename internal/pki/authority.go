package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kubedoio/n-kudo/internal/atomicfile"
)

// File names inside Options.Dir.
const (
	CACertFileName     = "ca.crt"
	CAKeyFileName      = "ca.key"
	ServerCertFileName = "server.crt"
	ServerKeyFileName  = "server.key"
)

// Defaults and lifetimes.
const (
	// DefaultCACommonName is the CA subject when Options.CACommonName is empty.
	DefaultCACommonName = "n-kudo CA"
	// DefaultAgentCertTTL is the agent certificate lifetime used when
	// SignAgentCSR is given a zero ttl. Short, because agents renew over
	// the live channel and a stolen certificate should not outlive a day.
	DefaultAgentCertTTL = 24 * time.Hour
	// serverRenewBefore: a server certificate this close to expiry is
	// re-issued at start, so a server restarted monthly never lapses.
	serverRenewBefore = 30 * 24 * time.Hour
	// clockSkew backdates NotBefore so hosts whose clocks run slightly
	// behind still accept a certificate issued a moment ago.
	clockSkew = time.Minute
)

// File modes. Keys are private to the server's user; certificates are public.
const (
	dirMode  os.FileMode = 0o700
	keyMode  os.FileMode = 0o600
	certMode os.FileMode = 0o644
)

// slog keys.
const (
	logKeyPath        = "path"
	logKeyReason      = "reason"
	logKeyFingerprint = "fingerprint"
	logKeyNotAfter    = "not_after"
)

// Options configure LoadOrCreate.
type Options struct {
	// Dir is the <data-dir>/pki folder where a generated CA and server
	// certificate persist. It is created with mode 0700 when needed. It may
	// be empty only when all four explicit files are given.
	Dir string
	// CACertFile and CAKeyFile name an operator-supplied CA (PEM). Given
	// together; they win over Dir.
	CACertFile string
	CAKeyFile  string
	// ServerCertFile and ServerKeyFile name an operator-supplied server
	// certificate chain and key (PEM). Given together; they win over Dir.
	// The certificate must chain to the CA, because agents trust that CA
	// alone.
	ServerCertFile string
	ServerKeyFile  string
	// RequirePersistent refuses to start unless all four files above are
	// given. Replicas sharing one PostgreSQL must share one CA; a CA
	// generated in each replica's local data dir would split the fleet.
	RequirePersistent bool
	// ServerNames are extra names for the generated server certificate:
	// IP addresses become IP SANs, everything else DNS SANs.
	ServerNames []string
	// CACommonName is the subject of a generated CA; DefaultCACommonName
	// when empty.
	CACommonName string
	// Now returns the current time; time.Now when nil. Tests move it.
	Now func() time.Time
	// Logger receives one line per generated or re-issued certificate;
	// discarded when nil.
	Logger *slog.Logger
}

// Authority is the control plane's CA together with the server certificate
// it signed. It is immutable after LoadOrCreate and safe for concurrent use.
type Authority struct {
	now         func() time.Time
	caCert      *x509.Certificate
	caKey       crypto.Signer
	caPEM       []byte
	pool        *x509.CertPool
	fingerprint string
	server      tls.Certificate
	caCertPath  string
}

// LoadOrCreate loads the CA and server certificate, generating and
// persisting whatever is missing; see Options for where files come from.
// A restart therefore keeps the CA (and its fingerprint, which agents pin),
// while the server certificate is re-issued when it lacks a required name,
// was signed by another CA or expires within 30 days.
func LoadOrCreate(opts Options) (*Authority, error) {
	return load(opts, nil)
}

// caResolver finds or makes the CA when no CA files are given.
type caResolver func(a *Authority, cn string, log *slog.Logger) error

func load(opts Options, shared caResolver) (*Authority, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dnsNames, ips, err := checkOptions(opts, log)
	if err != nil {
		return nil, err
	}
	needDir := opts.CACertFile == "" || opts.ServerCertFile == ""
	if needDir {
		if opts.Dir == "" {
			return nil, errors.New("loading PKI: no PKI directory given and not all certificate files given explicitly")
		}
		if err := os.MkdirAll(opts.Dir, dirMode); err != nil {
			return nil, fmt.Errorf("creating PKI directory %s: %w", opts.Dir, err)
		}
	}

	a := &Authority{now: now}
	cn := opts.CACommonName
	if cn == "" {
		cn = DefaultCACommonName
	}
	switch {
	case opts.CACertFile != "":
		a.caCertPath = opts.CACertFile
		err = a.loadCA(opts.CACertFile, opts.CAKeyFile)
	case shared != nil:
		a.caCertPath = filepath.Join(opts.Dir, CACertFileName)
		err = shared(a, cn, log)
	default:
		a.caCertPath = filepath.Join(opts.Dir, CACertFileName)
		err = a.loadOrCreateCA(a.caCertPath, filepath.Join(opts.Dir, CAKeyFileName), cn, log)
	}
	if err != nil {
		return nil, err
	}
	if err := a.checkCA(); err != nil {
		return nil, err
	}

	if opts.ServerCertFile != "" {
		if err := a.loadExplicitServer(opts.ServerCertFile, opts.ServerKeyFile); err != nil {
			return nil, err
		}
	} else {
		certPath := filepath.Join(opts.Dir, ServerCertFileName)
		keyPath := filepath.Join(opts.Dir, ServerKeyFileName)
		if err := a.loadOrIssueServer(certPath, keyPath, dnsNames, ips, log); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// checkOptions refuses inconsistent options and returns the names the
// server certificate must carry.
func checkOptions(opts Options, log *slog.Logger) ([]string, []net.IP, error) {
	if (opts.CACertFile == "") != (opts.CAKeyFile == "") {
		return nil, nil, errors.New("loading PKI: CA certificate and key files must be given together")
	}
	if (opts.ServerCertFile == "") != (opts.ServerKeyFile == "") {
		return nil, nil, errors.New("loading PKI: server certificate and key files must be given together")
	}
	if opts.RequirePersistent && (opts.CACertFile == "" || opts.ServerCertFile == "") {
		var missing []string
		if opts.CACertFile == "" {
			missing = append(missing, "CA certificate and key")
		}
		if opts.ServerCertFile == "" {
			missing = append(missing, "server certificate and key")
		}
		return nil, nil, fmt.Errorf("loading PKI: %w (missing: %s)", ErrPersistentPKIRequired, strings.Join(missing, ", "))
	}
	dnsNames, ips, err := requiredServerNames(opts.ServerNames, log)
	if err != nil {
		return nil, nil, fmt.Errorf("loading PKI: %w", err)
	}
	return dnsNames, ips, nil
}

// loadCA loads a CA pair from explicit files, which must exist.
func (a *Authority) loadCA(certPath, keyPath string) error {
	certs, err := loadCertFile(certPath)
	if err != nil {
		return err
	}
	key, err := loadKeyFile(keyPath)
	if err != nil {
		return err
	}
	// The first certificate is the CA; anything after it (an operator's
	// chain up to their root) is not needed, as agents pin this one.
	if !publicKeysEqual(certs[0].PublicKey, key) {
		return fmt.Errorf("loading CA: %w: certificate %s, key %s", ErrKeyMismatch, certPath, keyPath)
	}
	a.setCA(certs[0], key)
	return nil
}

// loadOrCreateCA loads the CA from the data dir, or generates it. The key is
// written before the certificate, so a crash in between leaves a key
// without a certificate: that CA was never served, so a certificate is
// simply created for the existing key. A certificate without its key is an
// operator mistake and is refused, since generating a new CA there would
// silently orphan every enrolled agent.
func (a *Authority) loadOrCreateCA(certPath, keyPath, cn string, log *slog.Logger) error {
	certOK, err := fileExists(certPath)
	if err != nil {
		return fmt.Errorf("checking CA certificate %s: %w", certPath, err)
	}
	keyOK, err := fileExists(keyPath)
	if err != nil {
		return fmt.Errorf("checking CA key %s: %w", keyPath, err)
	}
	switch {
	case certOK && keyOK:
		return a.loadCA(certPath, keyPath)
	case certOK:
		return fmt.Errorf("loading CA: certificate %s exists but its key %s is missing; restore the key rather than orphan enrolled agents", certPath, keyPath)
	}

	var key crypto.Signer
	if keyOK {
		key, err = loadKeyFile(keyPath)
		if err != nil {
			return err
		}
		log.Warn("CA key found without its certificate; creating the certificate", logKeyPath, keyPath)
	} else {
		ecKey, err := GenerateKey()
		if err != nil {
			return fmt.Errorf("generating CA key: %w", err)
		}
		key = ecKey
		keyPEM, err := marshalPrivateKeyPEM(key)
		if err != nil {
			return fmt.Errorf("generating CA key: %w", err)
		}
		if err := atomicfile.Write(keyPath, keyPEM, keyMode); err != nil {
			return fmt.Errorf("writing CA key: %w", err)
		}
	}
	cert, err := createCACert(key, cn, a.now())
	if err != nil {
		return err
	}
	if err := atomicfile.Write(certPath, encodeCertPEM(cert.Raw), certMode); err != nil {
		return fmt.Errorf("writing CA certificate: %w", err)
	}
	a.setCA(cert, key)
	log.Info("generated CA", logKeyPath, certPath, logKeyFingerprint, a.fingerprint, logKeyNotAfter, cert.NotAfter)
	return nil
}

func createCACert(key crypto.Signer, cn string, now time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"n-kudo"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing new CA certificate: %w", err)
	}
	return cert, nil
}

func (a *Authority) setCA(cert *x509.Certificate, key crypto.Signer) {
	a.caCert = cert
	a.caKey = key
	a.caPEM = encodeCertPEM(cert.Raw)
	a.pool = x509.NewCertPool()
	a.pool.AddCert(cert)
	a.fingerprint = FingerprintOf(cert)
}

// checkCA refuses a certificate that cannot act as our CA, with the reason,
// instead of failing later at every enrollment.
func (a *Authority) checkCA() error {
	c := a.caCert
	switch {
	case !c.BasicConstraintsValid || !c.IsCA:
		return fmt.Errorf("loading CA %s: certificate is not a CA (basic constraints CA:false)", a.caCertPath)
	case c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("loading CA %s: certificate lacks the certSign key usage", a.caCertPath)
	case !a.now().Before(c.NotAfter):
		return fmt.Errorf("loading CA %s: certificate expired at %s", a.caCertPath, c.NotAfter.Format(time.RFC3339))
	}
	return nil
}

// loadExplicitServer loads an operator-supplied server certificate. It is
// never rewritten, so it must already be usable: matching key, not expired,
// and chaining to the CA agents will pin.
func (a *Authority) loadExplicitServer(certPath, keyPath string) error {
	cert, err := loadServerPair(certPath, keyPath)
	if err != nil {
		return err
	}
	leaf := cert.Leaf
	inter := x509.NewCertPool()
	for _, c := range cert.Certificate[1:] {
		ic, err := x509.ParseCertificate(c)
		if err != nil {
			return fmt.Errorf("loading server certificate %s: %w", certPath, err)
		}
		inter.AddCert(ic)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         a.pool,
		Intermediates: inter,
		CurrentTime:   a.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("verifying server certificate %s against CA %s: %w", certPath, a.caCertPath, err)
	}
	a.server = cert
	return nil
}

// loadServerPair loads a certificate chain and its key, checking they match.
func loadServerPair(certPath, keyPath string) (tls.Certificate, error) {
	certs, err := loadCertFile(certPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := loadKeyFile(keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	if !publicKeysEqual(certs[0].PublicKey, key) {
		return tls.Certificate{}, fmt.Errorf("loading server certificate: %w: certificate %s, key %s", ErrKeyMismatch, certPath, keyPath)
	}
	out := tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, c := range certs {
		out.Certificate = append(out.Certificate, c.Raw)
	}
	return out, nil
}

// loadOrIssueServer reuses the server certificate in the data dir when it
// is still right, and otherwise issues a new one (with a new key: the
// server key is disposable, unlike the CA's).
func (a *Authority) loadOrIssueServer(certPath, keyPath string, dnsNames []string, ips []net.IP, log *slog.Logger) error {
	certOK, err := fileExists(certPath)
	if err != nil {
		return fmt.Errorf("checking server certificate %s: %w", certPath, err)
	}
	keyOK, err := fileExists(keyPath)
	if err != nil {
		return fmt.Errorf("checking server key %s: %w", keyPath, err)
	}
	reason := "no server certificate yet"
	if certOK && keyOK {
		cert, err := loadServerPair(certPath, keyPath)
		if err != nil {
			return err
		}
		reason = a.serverReissueReason(cert.Leaf, dnsNames, ips)
		if reason == "" {
			a.server = cert
			return nil
		}
	}
	key, err := GenerateKey()
	if err != nil {
		return fmt.Errorf("generating server key: %w", err)
	}
	leaf, err := a.issueServerCert(key, dnsNames, ips)
	if err != nil {
		return err
	}
	keyPEM, err := marshalPrivateKeyPEM(key)
	if err != nil {
		return fmt.Errorf("issuing server certificate: %w", err)
	}
	// A crash between the two writes must not leave a new key beside the
	// old certificate (a mismatch the next start would refuse). Removing
	// the old certificate first means any interrupted state is "key
	// without certificate", which the next start simply re-issues.
	if certOK {
		if err := os.Remove(certPath); err != nil {
			return fmt.Errorf("removing old server certificate %s: %w", certPath, err)
		}
		if err := atomicfile.SyncDir(filepath.Dir(certPath)); err != nil {
			return fmt.Errorf("syncing directory of %s: %w", certPath, err)
		}
	}
	if err := atomicfile.Write(keyPath, keyPEM, keyMode); err != nil {
		return fmt.Errorf("writing server key: %w", err)
	}
	if err := atomicfile.Write(certPath, encodeCertPEM(leaf.Raw), certMode); err != nil {
		return fmt.Errorf("writing server certificate: %w", err)
	}
	a.server = tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	log.Info("issued server certificate", logKeyPath, certPath, logKeyReason, reason, logKeyNotAfter, leaf.NotAfter)
	return nil
}

// serverReissueReason says why leaf must be replaced, or "" to keep it.
func (a *Authority) serverReissueReason(leaf *x509.Certificate, dnsNames []string, ips []net.IP) string {
	now := a.now()
	if err := leaf.CheckSignatureFrom(a.caCert); err != nil {
		return "not signed by the current CA"
	}
	if now.Before(leaf.NotBefore) {
		return "not valid yet"
	}
	if leaf.NotAfter.Sub(now) < serverRenewBefore {
		return "expires within 30 days"
	}
	for _, n := range dnsNames {
		if !slices.ContainsFunc(leaf.DNSNames, func(have string) bool { return strings.EqualFold(have, n) }) {
			return "missing name " + n
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return "missing address " + ip.String()
		}
	}
	return ""
}

func (a *Authority) issueServerCert(key crypto.Signer, dnsNames []string, ips []net.IP) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("issuing server certificate: %w", err)
	}
	now := a.now()
	notAfter := now.AddDate(1, 0, 0)
	if notAfter.After(a.caCert.NotAfter) {
		notAfter = a.caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "nkudo-server", Organization: []string{"n-kudo"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.caCert, key.Public(), a.caKey)
	if err != nil {
		return nil, fmt.Errorf("issuing server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing new server certificate: %w", err)
	}
	return leaf, nil
}

// requiredServerNames returns the names every generated server certificate
// must carry: localhost, the loopback addresses, the host name and extra.
// An invalid extra name is an error; an odd host name is skipped with a
// warning, since the operator did not choose it.
func requiredServerNames(extra []string, log *slog.Logger) ([]string, []net.IP, error) {
	dnsNames := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	addDNS := func(n string) {
		if !slices.Contains(dnsNames, n) {
			dnsNames = append(dnsNames, n)
		}
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if validDNSName(h) {
			addDNS(h)
		} else {
			log.Warn("host name is not a valid DNS name; leaving it out of the server certificate", "hostname", h)
		}
	}
	for _, raw := range extra {
		n := strings.TrimSpace(raw)
		if n == "" {
			continue
		}
		if ip := net.ParseIP(n); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if !validDNSName(n) {
			return nil, nil, fmt.Errorf("server name %q is neither an IP address nor a valid DNS name", raw)
		}
		addDNS(n)
	}
	return dnsNames, ips, nil
}

// validDNSName accepts lowercase host names of letters, digits and hyphens
// (labels 1–63 long, not starting or ending with a hyphen), optionally with
// a leading "*." wildcard label.
func validDNSName(n string) bool {
	n = strings.TrimPrefix(n, "*.")
	if n == "" || len(n) > 253 {
		return false
	}
	for label := range strings.SplitSeq(n, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				return false
			}
		}
	}
	return true
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generating serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// Fingerprint returns the SHA-256 of the CA certificate's DER encoding as 64
// lowercase hex characters.
func (a *Authority) Fingerprint() string { return a.fingerprint }

// CACert returns the CA certificate. Callers must not modify it.
func (a *Authority) CACert() *x509.Certificate { return a.caCert }

// CACertPath returns the file the CA certificate was loaded from or written to.
func (a *Authority) CACertPath() string { return a.caCertPath }

// CACertPEM returns the CA certificate in PEM form, as sent to enrolling
// agents. The slice is a copy.
func (a *Authority) CACertPEM() []byte { return slices.Clone(a.caPEM) }

// CAPool returns a new pool holding only the CA certificate.
func (a *Authority) CAPool() *x509.CertPool { return a.pool.Clone() }

// ServerCertificate returns the server certificate and key.
func (a *Authority) ServerCertificate() tls.Certificate { return a.server }

// ServerTLSConfig returns a fresh TLS configuration for the HTTPS listener.
// TLS 1.3 only. A client certificate is verified against the CA when one is
// presented but not required, because operators' API calls carry none; the
// agent-channel handler insists on a verified identity itself. Only
// HTTP/1.1 is offered, since WebSockets upgrade over HTTP/1.1.
//
// The CA certificate is sent after the leaf (when the chain does not
// already end in it), so an agent enrolling with only --ca-fingerprint can
// find the CA in the handshake, check its fingerprint and verify the leaf
// against it.
func (a *Authority) ServerTLSConfig() *tls.Config {
	cert := a.server
	if last := cert.Certificate[len(cert.Certificate)-1]; !bytes.Equal(last, a.caCert.Raw) {
		cert.Certificate = append(slices.Clone(cert.Certificate), a.caCert.Raw)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    a.pool.Clone(),
		NextProtos:   []string{"http/1.1"},
	}
}

// GenerateKey returns a new ECDSA P-256 private key.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating P-256 key: %w", err)
	}
	return key, nil
}
