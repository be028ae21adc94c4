package mtls

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"slices"
	"sync"

	"github.com/mtlsgo/mtls/internal/certkit"
)

// MemoryStore is a [CertStore] that keeps its entries in memory, for tests
// and for processes that load their certificates at start. It implements
// [Notifier]. Private keys are kept sealed with AES-256-GCM under a key
// derived from the secret (see [NewMemoryStore]) and decrypted on the first
// Get of each entry.
//
// A MemoryStore is safe for concurrent use by multiple goroutines. The zero
// MemoryStore is an empty store without a secret: it holds certificates and
// public keys, and refuses private keys.
type MemoryStore struct {
	init sync.Once
	keys *certkit.Keyring

	wmu     sync.Mutex   // serialises Add and Delete
	mu      sync.RWMutex // guards entries
	entries map[string]*storeEntry

	subs certkit.Subscribers
}

// NewMemoryStore returns an empty MemoryStore whose private keys are
// protected by secret, which may be a passphrase. The key is derived with
// Argon2id (time 3, memory 64 MiB, 4 threads, 32-byte key: the second
// recommendation of RFC 9106) and a random 16-byte salt, once, on the
// first Add of a private key: creating a store costs nothing.
//
// With a nil or empty secret the store accepts certificates and public
// keys but rejects data holding a private key. secret is copied.
func NewMemoryStore(secret []byte) *MemoryStore {
	s := &MemoryStore{}
	s.setup(secret)
	return s
}

// setup makes the store's keyring and map, once; the zero MemoryStore gets
// them on first use, without a secret.
func (s *MemoryStore) setup(secret []byte) {
	s.init.Do(func() {
		salt := make([]byte, certkit.SaltLen)
		rand.Read(salt) // crypto/rand.Read never fails
		params := certkit.DefaultParams
		s.keys = certkit.NewKeyring(secret, func(secret []byte, _ bool) (cipher.AEAD, error) {
			return certkit.DeriveAEAD(secret, salt, params)
		})
		s.entries = make(map[string]*storeEntry)
	})
}

// Add implements [CertStore.Add]. The limits: 1 MiB of PEM, 16
// certificates in a chain, RSA keys of 8192 bits. The first Add of a
// private key derives the store key (see [NewMemoryStore]).
func (s *MemoryStore) Add(ctx context.Context, pemData []byte) (string, error) {
	s.setup(nil)
	if err := ctxErr(ctx); err != nil {
		return "", err
	}
	p, err := parseAdd(pemData, s.keys)
	if err != nil {
		return "", err
	}
	changed, err := s.add(p)
	if err != nil {
		return "", err
	}
	if changed {
		s.subs.Notify(p.ID)
	}
	return p.ID, nil
}

func (s *MemoryStore) add(p *certkit.Parsed) (bool, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	cur := s.entries[p.ID]
	s.mu.RUnlock()
	var curData *certkit.Data
	if cur != nil {
		curData = cur.data
	}
	chain, sealed, sealNew, changed := certkit.Merge(curData, p)
	if !changed {
		return false, nil
	}
	if sealNew {
		aead, err := s.keys.Get(true)
		if err == nil {
			sealed, err = certkit.Seal(aead, p.ID, p.Key)
		}
		if err != nil {
			return false, fromKit(err)
		}
	}
	e := &storeEntry{data: certkit.NewData(p, chain, sealed)}
	s.mu.Lock()
	s.entries[p.ID] = e
	s.mu.Unlock()
	return true, nil
}

// Get implements [CertStore.Get]. The private key is decrypted on the
// first Get of an entry; later calls return the same *Certificate without
// allocating, until the entry is replaced or deleted.
func (s *MemoryStore) Get(ctx context.Context, id string) (*Certificate, error) {
	e, id, err := s.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	return e.certificate(id, s.keys)
}

// Metadata returns the metadata of the entry with ID id without decrypting
// anything. Errors are those of Get.
func (s *MemoryStore) Metadata(ctx context.Context, id string) (Metadata, error) {
	e, _, err := s.lookup(ctx, id)
	if err != nil {
		return Metadata{}, err
	}
	return cloneMetadata(metadataOf(e.data, e.data.Sealed != nil)), nil
}

func (s *MemoryStore) lookup(ctx context.Context, id string) (*storeEntry, string, error) {
	s.setup(nil)
	if err := ctxErr(ctx); err != nil {
		return nil, "", err
	}
	id, err := plainID(id)
	if err != nil {
		return nil, "", err
	}
	s.mu.RLock()
	e := s.entries[id]
	s.mu.RUnlock()
	if e == nil {
		return nil, "", errIDNotFound(id)
	}
	return e, id, nil
}

// Delete implements [CertStore.Delete].
func (s *MemoryStore) Delete(ctx context.Context, id string) error {
	s.setup(nil)
	if err := ctxErr(ctx); err != nil {
		return err
	}
	id, err := plainID(id)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	s.mu.Lock()
	_, ok := s.entries[id]
	delete(s.entries, id)
	s.mu.Unlock()
	s.wmu.Unlock()
	if !ok {
		return errIDNotFound(id)
	}
	s.subs.Notify(id)
	return nil
}

// List implements [CertStore.List].
func (s *MemoryStore) List(ctx context.Context) ([]string, error) {
	s.setup(nil)
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	s.mu.RLock()
	ids := make([]string, 0, len(s.entries))
	for id := range s.entries {
		ids = append(ids, id)
	}
	s.mu.RUnlock()
	slices.Sort(ids)
	return ids, nil
}

// Notify implements [Notifier]: fn is called before Add (of new content)
// and Delete return.
func (s *MemoryStore) Notify(fn func(id string)) (stop func()) {
	return s.subs.Add(fn)
}
