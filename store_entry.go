package mtls

import (
	"context"
	"crypto"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlsgo/mtls/internal/certkit"
)

// What MemoryStore and FileStore share (semantics §5): the entry with its
// cache of the decrypted certificate, IDs as the stores take them, and the
// subscribers of Notify (certkit.Subscribers).

// storeEntry is one stored entry and its cache. A change of the entry makes
// a new storeEntry, so the cache never outlives it. Its data is set when it
// is made, or, for an entry read from a FileStore's file, parsed from raw
// on first use, so that listing a store parses nothing.
type storeEntry struct {
	mu       sync.Mutex    // serialises parsing raw and building cert
	raw      []byte        // the checked body to parse; under mu
	data     *certkit.Data // under mu while raw is set
	parseErr error         // the body did not parse; under mu
	cert     atomic.Pointer[Certificate]
}

// decode returns the entry's data, parsing its body on first use. Its
// error wraps ErrNotFound.
func (e *storeEntry) decode(id string) (*certkit.Data, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.decodeLocked(id)
}

func (e *storeEntry) decodeLocked(id string) (*certkit.Data, error) {
	if e.data == nil && e.parseErr == nil {
		d, err := certkit.Decode(id, e.raw)
		e.data, e.parseErr, e.raw = d, fromKit(err), nil
	}
	return e.data, e.parseErr
}

// certificate builds, caches and returns the entry's Certificate,
// decrypting its key once.
func (e *storeEntry) certificate(id string, keys *certkit.Keyring) (*Certificate, error) {
	if c := e.cert.Load(); c != nil {
		return c, nil
	}
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
	if d.Sealed != nil {
		aead, err := keys.Get(false)
		if err != nil {
			return nil, fromKit(err)
		}
		if key, err = certkit.Open(aead, id, d.Sealed, d.Pub); err != nil {
			return nil, fromKit(err)
		}
	}
	c := newCertificate(d, key)
	e.cert.Store(c)
	return c, nil
}

// plainID returns the ID a store without organisations keeps id under: id
// itself, or the ID behind an organisation prefix. Anything else is an
// error wrapping ErrNotFound; stores never use anything but a plain ID as a
// key or a file name.
func plainID(id string) (string, error) {
	if certkit.IsID(id) {
		return id, nil
	}
	if plain, ok := storeID(id); ok {
		return plain, nil
	}
	return "", errorf("%w: %s is not a certificate ID (64 lowercase hex digits)", ErrNotFound, describe(certkit.Truncate(id, 80)))
}

func errIDNotFound(id string) error {
	return errorf("%w: no certificate or key with ID %s", ErrNotFound, id)
}

// ctxErr returns ctx.Err() as this package's stores report it, or nil.
func ctxErr(ctx context.Context) error {
	if ctx == nil || ctx.Err() == nil {
		return nil
	}
	return errorf("%w", ctx.Err())
}

// parseAdd parses and checks what Add was given: the rules of
// CertStore.Add, and a secret to seal a key with.
func parseAdd(pemData []byte, keys *certkit.Keyring) (*certkit.Parsed, error) {
	p, err := certkit.Parse(pemData)
	if err == nil {
		err = certkit.CheckNotExpired(p, time.Now())
	}
	if err != nil {
		return nil, fromKit(err)
	}
	if p.Key != nil && !keys.HasSecret() {
		return nil, fromKit(certkit.ErrNoSecret)
	}
	return p, nil
}
