package mtls

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
// Both stores keep private keys only as AES-256-GCM ciphertext: the PKCS#8
// DER of the key, sealed with a random 12-byte nonce and the entry's ID as
// additional data (a sealed key copied to another entry does not open).
// The AES key is derived from the store's secret with Argon2id, once per
// store, on the first operation that needs it.

// kdfParams are Argon2id parameters. The derived key is always 32 bytes.
type kdfParams struct {
	Time    uint32 `json:"time"`       // passes over memory
	Memory  uint32 `json:"memory_kib"` // KiB
	Threads uint8  `json:"threads"`    // lanes
}

const (
	kdfKeyLen  = 32 // AES-256
	kdfSaltLen = 16
	gcmNonce   = 12
)

// argon2Params are the parameters of new stores: the second recommended
// option of RFC 9106, section 4 (t=3, m=64 MiB, p=4, 32-byte tag). Tests
// of package mtls lower them (see TestMain). A FileStore keeps the
// parameters it was created with in its kdf.json.
var argon2Params = kdfParams{Time: 3, Memory: 64 * 1024, Threads: 4}

// valid bounds parameters read from a file, so that a corrupt or hostile
// kdf.json cannot make a store allocate without limit.
func (p kdfParams) valid() bool {
	return p.Time >= 1 && p.Time <= 64 && p.Threads >= 1 &&
		p.Memory >= 8*uint32(p.Threads) && p.Memory <= 4<<20
}

// errNoSecret is returned by Add of data holding a private key to a store
// without a secret.
var errNoSecret = errors.New("mtls: the store has no secret, so it cannot protect a private key at rest: " +
	"open it with a non-empty secret, or add the certificate without its key")

// deriveAEAD derives the AES-256-GCM of a store.
func deriveAEAD(secret, salt []byte, p kdfParams) (cipher.AEAD, error) {
	k := argon2.IDKey(secret, salt, p.Time, p.Memory, p.Threads, kdfKeyLen)
	defer clear(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealKey returns nonce || ciphertext || tag of the PKCS#8 DER of key,
// with id as additional data.
func sealKey(aead cipher.AEAD, id string, key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("mtls: encode private key of %s: %v", id, err)
	}
	defer clear(der)
	out := make([]byte, gcmNonce, gcmNonce+len(der)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[:gcmNonce], der, []byte(id)), nil
}

// openKey reverses sealKey and checks that the key matches pub. Every
// failure wraps ErrDecrypt.
func openKey(aead cipher.AEAD, id string, sealed []byte, pub crypto.PublicKey) (crypto.Signer, error) {
	if len(sealed) < gcmNonce+aead.Overhead() {
		return nil, fmt.Errorf("%w: %s: sealed key too short", ErrDecrypt, id)
	}
	der, err := aead.Open(nil, sealed[:gcmNonce], sealed[gcmNonce:], []byte(id))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: wrong secret or corrupt data", ErrDecrypt, id)
	}
	defer clear(der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: decrypted key does not parse", ErrDecrypt, id)
	}
	signer, ok := k.(crypto.Signer)
	if !ok || !publicKeyMatches(signer, pub) {
		return nil, fmt.Errorf("%w: %s: decrypted key does not match the certificate", ErrDecrypt, id)
	}
	return signer, nil
}

// storeKeyring derives a store's AEAD once, lazily, and remembers it. load does
// the derivation (and, for a FileStore, reads or creates kdf.json); create
// says whether the caller is about to seal a key (and so may create
// what is missing) or only to open one.
type storeKeyring struct {
	mu     sync.Mutex
	secret []byte // cleared once the AEAD is derived
	aead   cipher.AEAD
	err    error // sticky: the secret is wrong
	load   func(secret []byte, create bool) (aead cipher.AEAD, wrongSecret bool, err error)
}

func newStoreKeyring(secret []byte, load func([]byte, bool) (cipher.AEAD, bool, error)) *storeKeyring {
	return &storeKeyring{secret: append([]byte(nil), secret...), load: load}
}

// hasSecret reports whether keys can be stored at all.
func (k *storeKeyring) hasSecret() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.aead != nil || len(k.secret) > 0
}

func (k *storeKeyring) get(create bool) (cipher.AEAD, error) {
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
			return nil, errNoSecret
		}
		return nil, fmt.Errorf("%w: the store was opened without a secret", ErrDecrypt)
	}
	aead, wrong, err := k.load(k.secret, create)
	if err != nil {
		if wrong {
			k.err = err
		}
		return nil, err
	}
	k.aead = aead
	clear(k.secret)
	k.secret = nil
	return aead, nil
}
