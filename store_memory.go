package mtls

import (
	"context"
	"crypto"
	"crypto/cipher"
	"crypto/rand"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryStore is a [CertStore] that keeps its entries in memory, for tests
// and for processes that load their certificates at start. It implements
// [Notifier]. Private keys are kept sealed with AES-256-GCM under a key
// derived from the secret (see [NewMemoryStore]) and decrypted on the first
// Get of each entry.
//
// The zero value is not usable; call [NewMemoryStore]. A MemoryStore is
// safe for concurrent use by multiple goroutines.
type MemoryStore struct {
	keys *storeKeyring

	wmu     sync.Mutex // serialises Add and Delete
	mu      sync.RWMutex
	entries map[string]*storeEntry

	subs storeNotifier
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
	salt := make([]byte, kdfSaltLen)
	if _, err := rand.Read(salt); err != nil {
		panic("mtls: cannot read random salt: " + err.Error()) // crypto/rand does not fail
	}
	params := argon2Params
	s := &MemoryStore{entries: make(map[string]*storeEntry)}
	s.keys = newStoreKeyring(secret, func(secret []byte, _ bool) (cipher.AEAD, bool, error) {
		a, err := deriveAEAD(secret, salt, params)
		return a, false, err
	})
	return s
}

// Add implements [CertStore.Add]. The limits: 1 MiB of PEM, 16
// certificates in a chain, RSA keys of 8192 bits. The first Add of a
// private key derives the store key (see [NewMemoryStore]).
func (s *MemoryStore) Add(ctx context.Context, pemData []byte) (string, error) {
	if err := storeCtxErr(ctx); err != nil {
		return "", err
	}
	p, err := parsePEM(pemData)
	if err != nil {
		return "", err
	}
	if err := checkNotExpired(p, time.Now()); err != nil {
		return "", err
	}
	if p.key != nil && !s.keys.hasSecret() {
		return "", errNoSecret
	}

	s.wmu.Lock()
	s.mu.RLock()
	cur := s.entries[p.id]
	s.mu.RUnlock()
	var curData *storeData
	if cur != nil {
		curData = cur.data
	}
	chain, sealed, sealNew, changed := mergeAdd(curData, p)
	if !changed {
		s.wmu.Unlock()
		return p.id, nil
	}
	if sealNew {
		aead, err := s.keys.get(true)
		if err == nil {
			sealed, err = sealKey(aead, p.id, p.key)
		}
		if err != nil {
			s.wmu.Unlock()
			return "", err
		}
	}
	e := &storeEntry{data: newStored(p, chain, sealed)}
	s.mu.Lock()
	s.entries[p.id] = e
	s.mu.Unlock()
	s.wmu.Unlock()

	s.subs.notify(p.id)
	return p.id, nil
}

// Get implements [CertStore.Get]. The private key is decrypted on the
// first Get of an entry; later calls return the same *Certificate without
// allocating, until the entry is replaced or deleted.
func (s *MemoryStore) Get(ctx context.Context, id string) (*Certificate, error) {
	e, err := s.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	if c := e.cert.Load(); c != nil {
		return c, nil
	}
	return e.certificate(id, s.keys)
}

// Metadata returns the metadata of the entry with ID id without decrypting
// anything. Errors are those of Get.
func (s *MemoryStore) Metadata(ctx context.Context, id string) (Metadata, error) {
	e, err := s.lookup(ctx, id)
	if err != nil {
		return Metadata{}, err
	}
	return e.data.metadata(), nil
}

func (s *MemoryStore) lookup(ctx context.Context, id string) (*storeEntry, error) {
	if err := storeCtxErr(ctx); err != nil {
		return nil, err
	}
	if !isPlainID(id) {
		return nil, checkID(id)
	}
	s.mu.RLock()
	e := s.entries[id]
	s.mu.RUnlock()
	if e == nil {
		return nil, errIDNotFound(id)
	}
	return e, nil
}

// Delete implements [CertStore.Delete].
func (s *MemoryStore) Delete(ctx context.Context, id string) error {
	if err := storeCtxErr(ctx); err != nil {
		return err
	}
	if err := checkID(id); err != nil {
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
	s.subs.notify(id)
	return nil
}

// List implements [CertStore.List].
func (s *MemoryStore) List(ctx context.Context) ([]string, error) {
	if err := storeCtxErr(ctx); err != nil {
		return nil, err
	}
	s.mu.RLock()
	ids := make([]string, 0, len(s.entries))
	for id := range s.entries {
		ids = append(ids, id)
	}
	s.mu.RUnlock()
	sort.Strings(ids)
	return ids, nil
}

// Notify implements [Notifier]: fn is called before Add (of new content)
// and Delete return.
func (s *MemoryStore) Notify(fn func(id string)) (stop func()) {
	stop, _ = s.subs.add(fn)
	return stop
}

// storeEntry is one stored entry with its cache. err, fi and checked are
// set before the entry is published and never change; a change of the
// entry makes a new entry, so the cache never outlives it. data is set
// before the entry is published too, except for an entry that a FileStore
// read from its file: raw then holds the file's checked body, which decode
// parses on first use, so that listing a store parses nothing.
type storeEntry struct {
	err error // FileStore: the file failed its checks; nothing else is set

	fi      fileSig      // FileStore: the file data was read from
	checked atomic.Int64 // FileStore: monotonic time of the last check of fi

	mu       sync.Mutex // serialises decoding raw and building cert
	raw      []byte     // FileStore: the body to parse; under mu
	data     *storeData // under mu while raw is set
	parseErr error      // the body did not parse; under mu
	cert     atomic.Pointer[Certificate]
}

// decode returns the entry's data, parsing the file body of a FileStore
// entry on first use. Its error wraps ErrNotFound.
func (e *storeEntry) decode(id string) (*storeData, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.decodeLocked(id)
}

func (e *storeEntry) decodeLocked(id string) (*storeData, error) {
	if e.data == nil && e.parseErr == nil {
		e.data, e.parseErr = parseEntryBody(id, e.raw)
		e.raw = nil
	}
	return e.data, e.parseErr
}

// certificate builds, caches and returns the entry's Certificate,
// decrypting its key once.
func (e *storeEntry) certificate(id string, keys *storeKeyring) (*Certificate, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.cert.Load(); c != nil {
		return c, nil
	}
	d, err := e.decodeLocked(id)
	if err != nil {
		return nil, err
	}
	var key crypto.Signer
	if d.sealed != nil {
		aead, err := keys.get(false)
		if err != nil {
			return nil, err
		}
		if key, err = openKey(aead, id, d.sealed, d.pub); err != nil {
			return nil, err
		}
	}
	c := newCertificate(d.meta, d.chain, d.leaf, d.pub, d.spki, key)
	e.cert.Store(c)
	return c, nil
}

// storeNotifier is a set of subscribers.
type storeNotifier struct {
	mu   sync.Mutex
	next uint64
	fns  map[uint64]func(string)
	// onCount, if set, is called under mu with the number of subscribers
	// after each change of it.
	onCount func(n int)
}

// add registers fn and returns its stop function and the number of
// subscribers after adding it.
func (n *storeNotifier) add(fn func(string)) (stop func(), count int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fns == nil {
		n.fns = make(map[uint64]func(string))
	}
	key := n.next
	n.next++
	n.fns[key] = fn
	if n.onCount != nil {
		n.onCount(len(n.fns))
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			if _, ok := n.fns[key]; !ok {
				return
			}
			delete(n.fns, key)
			if n.onCount != nil {
				n.onCount(len(n.fns))
			}
		})
	}, len(n.fns)
}

// notify calls every subscriber with id, in the order they subscribed.
// The caller must hold no lock of the store.
func (n *storeNotifier) notify(ids ...string) {
	n.mu.Lock()
	if len(n.fns) == 0 {
		n.mu.Unlock()
		return
	}
	keys := make([]uint64, 0, len(n.fns))
	for k := range n.fns {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fns := make([]func(string), len(keys))
	for i, k := range keys {
		fns[i] = n.fns[k]
	}
	n.mu.Unlock()
	for _, id := range ids {
		for _, fn := range fns {
			fn(id)
		}
	}
}

// clear removes every subscriber.
func (n *storeNotifier) clear() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fns = nil
	if n.onCount != nil {
		n.onCount(0)
	}
}
