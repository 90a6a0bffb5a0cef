package pki_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/pki"
)

// The enrollment flow end to end: the server loads its CA, the agent makes
// a key and CSR locally, the server signs it for an identity, and the agent
// pins the CA by fingerprint before building its mutual-TLS config.
func Example() {
	dataDir, err := os.MkdirTemp("", "nkudo-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dataDir)

	// Server side.
	ca, err := pki.LoadOrCreate(pki.Options{Dir: filepath.Join(dataDir, "pki")})
	if err != nil {
		log.Fatal(err)
	}

	// Agent side: the key never leaves the host.
	key, err := pki.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	csr, err := pki.CreateCSR(key, "edge-01")
	if err != nil {
		log.Fatal(err)
	}

	// Server side, in POST /v1/enroll: refuse a bad CSR before the token
	// is consumed, then sign.
	if _, err := pki.ValidateCSR(csr); err != nil {
		log.Fatal(err)
	}
	id := pki.AgentIdentity{
		TenantID: uuid.MustParse("0190b5a4-0000-7000-8000-000000000001"),
		SiteID:   uuid.MustParse("0190b5a4-0000-7000-8000-000000000002"),
		AgentID:  uuid.MustParse("0190b5a4-0000-7000-8000-000000000003"),
	}
	certPEM, _, _, err := ca.SignAgentCSR(csr, id, 24*time.Hour)
	if err != nil {
		log.Fatal(err)
	}

	// Agent side: pin the CA the operator gave as a fingerprint, then
	// build a renewable client config.
	if err := pki.VerifyFingerprint(ca.CACertPEM(), "sha256:"+ca.Fingerprint()); err != nil {
		log.Fatal(err)
	}
	pair, err := pki.KeyPair(certPEM, key)
	if err != nil {
		log.Fatal(err)
	}
	store := pki.NewCertStore(pair)
	if _, err := store.ClientTLSConfig(ca.CACertPEM()); err != nil {
		log.Fatal(err)
	}

	got, err := pki.IdentityFromCert(pair.Leaf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got)
	// Output: spiffe://nkudo/tenant/0190b5a4-0000-7000-8000-000000000001/site/0190b5a4-0000-7000-8000-000000000002/agent/0190b5a4-0000-7000-8000-000000000003
}
