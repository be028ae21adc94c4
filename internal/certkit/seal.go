package certkit

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Private keys at rest
//
// Stores keep private keys only as AES-256-GCM ciphertext: the PKCS#8 DER
// of the key, sealed with a random 12-byte nonce and the entry's ID as
// additional data (a sealed key copied to another entry does not open). The
// AES key is derived from the store's secret with Argon2id, once per store,
// on the first operation that needs it.

// Params are Argon2id parameters. The derived key is always 32 bytes.
type Params struct {
	Time    uint32 `json:"time"`       // passes over memory
	Memory  uint32 `json:"memory_kib"` // KiB
	Threads uint8  `json:"threads"`    // lanes
}

const (
	KeyLen   = 32 // AES-256
	SaltLen  = 16
	NonceLen = 12
)

// DefaultParams are the parameters of new stores: the second recommended
// option of RFC 9106, section 4 (t=3, m=64 MiB, p=4, 32-byte tag). Tests
// lower them (see TestMain of package mtls). A store keeps the parameters
// it was created with in its KDF record.
var DefaultParams = Params{Time: 3, Memory: 64 * 1024, Threads: 4}

// Valid bounds parameters read from storage, so that a corrupt or hostile
// KDF record cannot make a store allocate without limit.
func (p Params) Valid() bool {
	return p.Time >= 1 && p.Time <= 64 && p.Threads >= 1 &&
		p.Memory >= 8*uint32(p.Threads) && p.Memory <= 4<<20
}

// ErrNoSecret is returned by Add of data holding a private key to a store
// without a secret.
var ErrNoSecret = errors.New("the store has no secret, so it cannot protect a private key at rest: " +
	"open it with a non-empty secret, or add the certificate without its key")

// DeriveAEAD derives the AES-256-GCM of a store.
func DeriveAEAD(secret, salt []byte, p Params) (cipher.AEAD, error) {
	k := argon2.IDKey(secret, salt, p.Time, p.Memory, p.Threads, KeyLen)
	defer clear(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal returns nonce || ciphertext || tag of the PKCS#8 DER of key,
// with id as additional data.
func Seal(aead cipher.AEAD, id string, key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key of %s: %w", id, err)
	}
	defer clear(der)
	out := make([]byte, NonceLen, NonceLen+len(der)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[:NonceLen], der, []byte(id)), nil
}

// Open reverses Seal and checks that the key matches pub. Every failure
// wraps ErrDecrypt.
func Open(aead cipher.AEAD, id string, sealed []byte, pub crypto.PublicKey) (crypto.Signer, error) {
	if len(sealed) < NonceLen+aead.Overhead() {
		return nil, fmt.Errorf("%w: %s: sealed key too short", ErrDecrypt, id)
	}
	der, err := aead.Open(nil, sealed[:NonceLen], sealed[NonceLen:], []byte(id))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: wrong secret or corrupt data", ErrDecrypt, id)
	}
	defer clear(der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: decrypted key does not parse", ErrDecrypt, id)
	}
	signer, ok := k.(crypto.Signer)
	if !ok || !KeyMatches(signer, pub) {
		return nil, fmt.Errorf("%w: %s: decrypted key does not match the certificate", ErrDecrypt, id)
	}
	return signer, nil
}

// Keyring derives a store's AEAD once, lazily, and remembers it. Its load
// function does the derivation (and reads or creates the store's KDF
// record); create says whether the caller is about to seal a key (and so
// may create what is missing) or only to open one. An error of load that
// wraps ErrWrongSecret is sticky.
type Keyring struct {
	mu     sync.Mutex // guards everything below
	secret []byte     // cleared once the AEAD is derived
	aead   cipher.AEAD
	err    error // sticky: the secret is wrong
	load   func(secret []byte, create bool) (cipher.AEAD, error)
}

// NewKeyring returns the keyring of a store with secret (copied), whose
// AEAD load derives.
func NewKeyring(secret []byte, load func(secret []byte, create bool) (cipher.AEAD, error)) *Keyring {
	return &Keyring{secret: append([]byte(nil), secret...), load: load}
}

// HasSecret reports whether keys can be stored at all.
func (k *Keyring) HasSecret() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.aead != nil || len(k.secret) > 0
}

// Get returns the store's AEAD, deriving it on first use. Without a secret
// it fails with ErrNoSecret when create is set, and with an error wrapping
// ErrDecrypt otherwise.
func (k *Keyring) Get(create bool) (cipher.AEAD, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.aead != nil {
		return k.aead, nil
	}
	if k.err != nil {
		return nil, k.err
	}
	if len(k.secret) == 0 {
		if create {
			return nil, ErrNoSecret
		}
		return nil, fmt.Errorf("%w: the store was opened without a secret", ErrDecrypt)
	}
	aead, err := k.load(k.secret, create)
	if err != nil {
		if errors.Is(err, ErrWrongSecret) {
			k.err = err
		}
		return nil, err
	}
	k.aead = aead
	clear(k.secret)
	k.secret = nil
	return aead, nil
}

// CountLoads makes k call counted before each call of its load function;
// for tests that count key derivations.
func CountLoads(k *Keyring, counted func()) {
	k.mu.Lock()
	defer k.mu.Unlock()
	load := k.load
	k.load = func(secret []byte, create bool) (cipher.AEAD, error) {
		counted()
		return load(secret, create)
	}
}
