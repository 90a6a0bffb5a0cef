package mesh

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"

	"github.com/google/uuid"
)

// sealVersion starts every sealed key, so the scheme can change later
// without guessing what old rows hold.
const sealVersion byte = 1

// sealInfo separates this use of the token secret from any other.
const sealInfo = "nkudo netbird setup key v1"

// sealKey derives the AES-256 key from the token secret. The token id is
// the salt: two tokens never share a key even if a secret repeated.
func sealKey(secret string, tokenID uuid.UUID) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, []byte(secret), tokenID[:], sealInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("deriving seal key: %w", err)
	}
	return k, nil
}

func sealAEAD(secret string, tokenID uuid.UUID) (cipher.AEAD, error) {
	if secret == "" {
		return nil, fmt.Errorf("deriving seal key: empty token secret: %w", ErrSealed)
	}
	k, err := sealKey(secret, tokenID)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("creating cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("creating gcm: %w", err)
	}
	return aead, nil
}

// Seal encrypts a setup key with AES-256-GCM under a key derived with
// HKDF-SHA256 from the enrollment token secret. The token id is bound as
// additional data, so a sealed key copied to another token's row does not
// open. The result is version || nonce || ciphertext.
func Seal(secret string, tokenID uuid.UUID, setupKey string) ([]byte, error) {
	aead, err := sealAEAD(secret, tokenID)
	if err != nil {
		return nil, fmt.Errorf("sealing setup key: %w", err)
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(setupKey)+aead.Overhead())
	out[0] = sealVersion
	// crypto/rand.Read never fails (it aborts the program instead).
	_, _ = rand.Read(out[1:])
	return aead.Seal(out, out[1:], []byte(setupKey), tokenID[:]), nil
}

// Open decrypts what Seal produced. A wrong secret, another token's id or
// tampered bytes wrap ErrSealed.
func Open(secret string, tokenID uuid.UUID, sealed []byte) (string, error) {
	aead, err := sealAEAD(secret, tokenID)
	if err != nil {
		return "", fmt.Errorf("opening setup key: %w", err)
	}
	if len(sealed) < 1+aead.NonceSize()+aead.Overhead() || sealed[0] != sealVersion {
		return "", fmt.Errorf("opening setup key: malformed or unknown version: %w", ErrSealed)
	}
	nonce := sealed[1 : 1+aead.NonceSize()]
	plain, err := aead.Open(nil, nonce, sealed[1+aead.NonceSize():], tokenID[:])
	if err != nil {
		return "", fmt.Errorf("opening setup key: %w", ErrSealed)
	}
	return string(plain), nil
}
