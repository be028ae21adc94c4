package certkit

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"fmt"
)

// KDF is the record of how a store derives its key from its secret: the
// Argon2id parameters, a random salt, and a check value sealed under the
// derived key, which tells a wrong secret before any private key is opened.
// A FileStore keeps it as kdf.json; other stores under a name of their own.
// It is written once and never replaced.
type KDF struct {
	Format int    `json:"format"` // 1
	Alg    string `json:"kdf"`    // "argon2id"
	Params
	KeyLen int    `json:"key_len"` // 32
	Cipher string `json:"cipher"`  // "AES-256-GCM"
	Salt   []byte `json:"salt"`    // 16 random bytes
	Check  []byte `json:"check"`   // checkValue sealed with additional data checkAAD
}

var (
	checkValue = []byte("mtls: the store secret is right")
	checkAAD   = []byte("kdf.json")
)

// ErrWrongSecret: the store's check value does not open with the key
// derived from the secret given.
var ErrWrongSecret = fmt.Errorf("%w: wrong secret for this store", ErrDecrypt)

// NewKDF makes the record of a new store with DefaultParams and a random
// salt, and returns it, encoded, with the AEAD that secret derives.
func NewKDF(secret []byte) ([]byte, cipher.AEAD, error) {
	k := KDF{Format: 1, Alg: "argon2id", Params: DefaultParams, KeyLen: KeyLen, Cipher: "AES-256-GCM", Salt: make([]byte, SaltLen)}
	if _, err := rand.Read(k.Salt); err != nil {
		return nil, nil, err
	}
	aead, err := DeriveAEAD(secret, k.Salt, k.Params)
	if err != nil {
		return nil, nil, err
	}
	nonce := make([]byte, NonceLen, NonceLen+len(checkValue)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	k.Check = aead.Seal(nonce, nonce, checkValue, checkAAD)
	out, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	return append(out, '\n'), aead, nil
}

// OpenKDF derives the AEAD of an encoded record from secret and checks the
// secret against it: a wrong one gives an error wrapping ErrWrongSecret, a
// record that is damaged or of an unknown kind one wrapping ErrDecrypt.
func OpenKDF(data, secret []byte) (cipher.AEAD, error) {
	var k KDF
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("%w: corrupt key derivation record: %w", ErrDecrypt, err)
	}
	if k.Format != 1 || k.Alg != "argon2id" || k.KeyLen != KeyLen || k.Cipher != "AES-256-GCM" ||
		!k.Params.Valid() || len(k.Salt) < SaltLen || len(k.Check) < NonceLen+16 {
		return nil, fmt.Errorf("%w: the key derivation record has unsupported or invalid parameters", ErrDecrypt)
	}
	aead, err := DeriveAEAD(secret, k.Salt, k.Params)
	if err != nil {
		return nil, err
	}
	got, err := aead.Open(nil, k.Check[:NonceLen], k.Check[NonceLen:], checkAAD)
	if err != nil || !bytes.Equal(got, checkValue) {
		return nil, ErrWrongSecret
	}
	return aead, nil
}
