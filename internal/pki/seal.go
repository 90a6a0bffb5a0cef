package pki

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SealKeySize is the size of the key that seals a CA key stored in a
// database: AES-256.
const SealKeySize = 32

// sealVersion is the first byte of a sealed key, so another format can be
// told apart later.
const sealVersion = 1

// sealAADPrefix binds a sealed key to its purpose; the CA certificate's DER
// follows it in the additional data, so a sealed key cannot be paired with
// another certificate unnoticed.
const sealAADPrefix = "n-kudo pki ca key v1\x00"

// ErrWrongSealKey: a sealed CA key does not open with the given seal key
// (another replica's key differs, or the stored value was altered).
var ErrWrongSealKey = errors.New("the PKI seal key does not open the stored CA key")

// ParseSealKey decodes NKUDO_PKI_SEAL_KEY: exactly 32 bytes, in standard
// or URL-safe base64, padded or not. A passphrase is refused on purpose:
// the key guards the whole fleet's CA, and a stretched passphrase would
// still be weaker than 256 random bits that a Secret holds as easily.
func ParseSealKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != SealKeySize {
				return nil, fmt.Errorf("decodes to %d bytes, want %d (generate one with `openssl rand -base64 32`)", len(b), SealKeySize)
			}
			return b, nil
		}
	}
	return nil, errors.New("is not base64 (generate one with `openssl rand -base64 32`)")
}

// SealKey encrypts the CA's private key with AES-256-GCM under sealKey.
// The result is version, nonce and ciphertext; the CA certificate is
// authenticated with it.
func SealKey(sealKey, caCertDER []byte, key crypto.Signer) ([]byte, error) {
	aead, err := newSealAEAD(sealKey)
	if err != nil {
		return nil, err
	}
	pemKey, err := marshalPrivateKeyPEM(key)
	if err != nil {
		return nil, fmt.Errorf("sealing CA key: %w", err)
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(pemKey)+aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("sealing CA key: generating nonce: %w", err)
	}
	return aead.Seal(out, out[1:], pemKey, sealAAD(caCertDER)), nil
}

// OpenKey decrypts a key sealed by SealKey for the certificate caCertDER.
// A wrong seal key, another certificate or altered bytes are
// ErrWrongSealKey.
func OpenKey(sealKey, caCertDER, sealed []byte) (crypto.Signer, error) {
	aead, err := newSealAEAD(sealKey)
	if err != nil {
		return nil, err
	}
	if len(sealed) < 1+aead.NonceSize()+aead.Overhead() || sealed[0] != sealVersion {
		return nil, fmt.Errorf("opening CA key: %w (not a sealed key of this version)", ErrWrongSealKey)
	}
	nonce := sealed[1 : 1+aead.NonceSize()]
	plain, err := aead.Open(nil, nonce, sealed[1+aead.NonceSize():], sealAAD(caCertDER))
	if err != nil {
		return nil, fmt.Errorf("opening CA key: %w", ErrWrongSealKey)
	}
	key, err := parsePrivateKeyPEM(plain)
	if err != nil {
		return nil, fmt.Errorf("opening CA key: %w", err)
	}
	return key, nil
}

func newSealAEAD(sealKey []byte) (cipher.AEAD, error) {
	if len(sealKey) != SealKeySize {
		return nil, fmt.Errorf("PKI seal key is %d bytes, want %d", len(sealKey), SealKeySize)
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, fmt.Errorf("building AES cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("building AES-GCM: %w", err)
	}
	return aead, nil
}

func sealAAD(caCertDER []byte) []byte {
	return append([]byte(sealAADPrefix), caCertDER...)
}
