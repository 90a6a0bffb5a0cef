package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// secretBytes is the entropy of API keys and enrollment tokens.
const secretBytes = 32

// newSecret returns prefix + 32 random bytes in base64url and the SHA-256
// of the whole string, which is all the store ever sees.
func newSecret(prefix string) (secret string, hash []byte) {
	var b [secretBytes]byte
	// crypto/rand.Read never returns an error (it aborts the program if
	// the OS cannot supply randomness), so there is nothing to handle.
	_, _ = rand.Read(b[:])
	secret = prefix + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(secret))
	return secret, sum[:]
}
