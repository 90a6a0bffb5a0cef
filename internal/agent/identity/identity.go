package identity

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agent/statefile"
	"github.com/kubedoio/n-kudo/internal/atomicfile"
	"github.com/kubedoio/n-kudo/internal/pki"
)

// File names inside the state directory.
const (
	KeyFile     = "key.pem"
	CertFile    = "cert.pem"
	CAFile      = "ca.pem"
	InfoFile    = "identity.json"
	nextKeyFile = "key.next.pem"
)

// Sentinel errors.
var (
	// ErrNotEnrolled: the state directory holds no identity.
	ErrNotEnrolled = errors.New("agent not enrolled")
	// ErrExists: an identity is already stored and overwriting was not
	// asked for.
	ErrExists = errors.New("agent identity already exists")
	// ErrInvalid: the stored identity is inconsistent (certificate for
	// another key or agent, unparseable files).
	ErrInvalid = errors.New("stored agent identity invalid")
)

// Info is what the server told the agent at enrollment.
type Info struct {
	AgentID  uuid.UUID `json:"agent_id"`
	HostID   uuid.UUID `json:"host_id"`
	SiteID   uuid.UUID `json:"site_id"`
	TenantID uuid.UUID `json:"tenant_id"`
	Server   string    `json:"server"`
	// Servers are every server base URL given at enrollment (Server,
	// the one enrolled through, among them): the replicas `run` fails
	// over between. Identities enrolled before it hold only Server.
	Servers    []string  `json:"servers,omitempty"`
	Hostname   string    `json:"hostname"`
	EnrolledAt time.Time `json:"enrolled_at"`
}

// ServerList returns the servers to connect to: Servers, or Server alone
// for an identity that has no list.
func (i Info) ServerList() []string {
	if len(i.Servers) > 0 {
		return i.Servers
	}
	if i.Server == "" {
		return nil
	}
	return []string{i.Server}
}

// Identity is a loaded, consistent identity.
type Identity struct {
	Info Info
	// Cert is the client certificate with its private key, Leaf set.
	Cert  tls.Certificate
	CAPEM []byte
}

// Exists reports whether dir holds an identity.
func Exists(dir string) (bool, error) {
	_, err := os.Stat(filepath.Join(dir, InfoFile))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("checking identity in %s: %w", dir, err)
	}
}

// Save stores a fresh identity. Without force it refuses to replace an
// existing one, since that would orphan the enrolled agent. identity.json
// is written last, so an interrupted Save leaves the directory "not
// enrolled" rather than half enrolled.
func Save(dir string, info Info, key crypto.Signer, certPEM, caPEM []byte, force bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating state dir %s: %w", dir, err)
	}
	exists, err := Exists(dir)
	if err != nil {
		return err
	}
	if exists && !force {
		return fmt.Errorf("saving identity in %s: %w (use --force to replace it)", dir, ErrExists)
	}
	if err := pki.WriteKeyFile(filepath.Join(dir, KeyFile), key); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	if err := statefile.WriteBytes(filepath.Join(dir, CertFile), certPEM); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	if err := statefile.WriteBytes(filepath.Join(dir, CAFile), caPEM); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	// A stale next key from an earlier identity must not be mistaken for a
	// half-finished renewal of this one.
	if err := os.Remove(filepath.Join(dir, nextKeyFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("saving identity: removing stale next key: %w", err)
	}
	if err := statefile.Write(filepath.Join(dir, InfoFile), info); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	return nil
}

// Load reads and checks the identity in dir: the certificate must belong
// to the key and name the stored agent.
func Load(dir string) (*Identity, error) {
	var info Info
	if err := statefile.Read(filepath.Join(dir, InfoFile), &info); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("loading identity from %s: %w (run `nkudo-agent enroll` first)", dir, ErrNotEnrolled)
		}
		return nil, fmt.Errorf("loading identity: %w", err)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		return nil, fmt.Errorf("loading identity: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("loading identity: %w", err)
	}
	cert, err := loadKeyPair(dir, certPEM)
	if err != nil {
		return nil, err
	}
	id, err := pki.IdentityFromCert(cert.Leaf)
	if err != nil {
		return nil, fmt.Errorf("loading identity: %w: %w", ErrInvalid, err)
	}
	if id.AgentID != info.AgentID || id.SiteID != info.SiteID || id.TenantID != info.TenantID {
		return nil, fmt.Errorf("loading identity: %w: certificate names %s, identity.json agent %s", ErrInvalid, id, info.AgentID)
	}
	return &Identity{Info: info, Cert: cert, CAPEM: caPEM}, nil
}

// loadKeyPair pairs cert.pem with key.pem, or with key.next.pem when a
// renewal was interrupted after the certificate was written, finishing
// that renewal.
func loadKeyPair(dir string, certPEM []byte) (tls.Certificate, error) {
	keyPath := filepath.Join(dir, KeyFile)
	key, err := pki.LoadKeyFile(keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("loading identity: %w", err)
	}
	cert, err := pki.KeyPair(certPEM, key)
	if err == nil {
		return cert, nil
	}
	if !errors.Is(err, pki.ErrKeyMismatch) {
		return tls.Certificate{}, fmt.Errorf("loading identity: %w: %w", ErrInvalid, err)
	}
	nextPath := filepath.Join(dir, nextKeyFile)
	next, nerr := pki.LoadKeyFile(nextPath)
	if nerr != nil {
		return tls.Certificate{}, fmt.Errorf("loading identity: %w: %w", ErrInvalid, err)
	}
	cert, nerr = pki.KeyPair(certPEM, next)
	if nerr != nil {
		return tls.Certificate{}, fmt.Errorf("loading identity: %w: %w", ErrInvalid, err)
	}
	if err := os.Rename(nextPath, keyPath); err != nil {
		return tls.Certificate{}, fmt.Errorf("loading identity: completing interrupted renewal: %w", err)
	}
	return cert, nil
}

// SaveRenewed stores a renewed certificate and the new key it was issued
// for, and returns the pair. See the package comment for the write order
// that makes this crash-safe.
func SaveRenewed(dir string, key crypto.Signer, certPEM []byte) (tls.Certificate, error) {
	cert, err := pki.KeyPair(certPEM, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("saving renewed certificate: %w", err)
	}
	nextPath := filepath.Join(dir, nextKeyFile)
	if err := pki.WriteKeyFile(nextPath, key); err != nil {
		return tls.Certificate{}, fmt.Errorf("saving renewed certificate: %w", err)
	}
	if err := statefile.WriteBytes(filepath.Join(dir, CertFile), certPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("saving renewed certificate: %w", err)
	}
	if err := os.Rename(nextPath, filepath.Join(dir, KeyFile)); err != nil {
		return tls.Certificate{}, fmt.Errorf("saving renewed certificate: installing key: %w", err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return tls.Certificate{}, fmt.Errorf("saving renewed certificate: %w", err)
	}
	return cert, nil
}

// VerifyClientCert checks that cert chains to the CA in caPEM for client
// authentication, so a renewed certificate from a confused or hostile
// server is never installed.
func VerifyClientCert(cert tls.Certificate, caPEM []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("verifying client certificate: %w: no CA certificate", ErrInvalid)
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("verifying client certificate: %w", err)
		}
		inter.AddCert(c)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return fmt.Errorf("verifying client certificate: %w", err)
	}
	return nil
}
