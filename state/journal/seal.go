package journal

import (
	"crypto/rand"
	"fmt"
)

// Sealed data: format byte 1, 12-byte random nonce, AES-256-GCM ciphertext
// with its 16-byte tag, with sealAAD as additional data.
const (
	sealFormat = 1
	nonceLen   = 12
)

var sealAAD = []byte("cronium-agent journal secret v1")

// CanSeal reports whether the journal has a secret key.
func (j *Journal) CanSeal() bool { return j.aead != nil }

// Seal encrypts plaintext (a decoded job's secrets: environment values, SSH
// keys) with the journal's key, for storing in a record. Without a key it
// refuses with ErrNoKey: the caller must then leave the secrets out.
func (j *Journal) Seal(plaintext []byte) ([]byte, error) {
	if j.aead == nil {
		return nil, ErrNoKey
	}
	out := make([]byte, 1+nonceLen, 1+nonceLen+len(plaintext)+j.aead.Overhead())
	out[0] = sealFormat
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("journal: seal: %w", err)
	}
	return j.aead.Seal(out, out[1:1+nonceLen], plaintext, sealAAD), nil
}

// Unseal decrypts what Seal returned. Data sealed with another key, or
// altered, fails with ErrUnseal; without a key it fails with ErrNoKey.
func (j *Journal) Unseal(sealed []byte) ([]byte, error) {
	if j.aead == nil {
		return nil, ErrNoKey
	}
	if len(sealed) < 1+nonceLen+j.aead.Overhead() || sealed[0] != sealFormat {
		return nil, ErrUnseal
	}
	plain, err := j.aead.Open(nil, sealed[1:1+nonceLen], sealed[1+nonceLen:], sealAAD)
	if err != nil {
		return nil, ErrUnseal
	}
	return plain, nil
}
