package mtls

import "context"

// This file holds the store contract (semantics §5): CertStore, and
// Notifier, through which a store reports its changes (§6).

// CertStore holds certificate chains, with or without their private keys,
// and bare public keys, each under its ID (see [Fingerprint]).
//
// Implementations must be safe for concurrent use by multiple goroutines.
// Every method honours ctx: an implementation returns an error wrapping
// ctx.Err() when ctx is done before it starts, and may when ctx ends during
// slow work
// (I/O, key derivation). Errors wrap [ErrNotFound], [ErrExpired] or
// [ErrDecrypt] where one applies, and name the ID concerned; they never
// contain private key material.
//
// The package's stores are [MemoryStore] and [FileStore]; module
// github.com/mtlsgo/mtls/redisstore has one for a fleet of proxies. Package
// storetest checks any implementation against this contract; run it in the
// tests of a new store. [NewCertificate] builds what Get returns.
type CertStore interface {
	// Add parses pemData and stores it, returning its ID.
	//
	// pemData holds one or more CERTIFICATE blocks, leaf first, and at most
	// one unencrypted private key matching the leaf (PKCS#1 "RSA PRIVATE
	// KEY", PKCS#8 "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY"); or exactly one
	// PUBLIC KEY block (SubjectPublicKeyInfo). Text around the blocks is
	// ignored. Anything else is rejected with an error saying what is wrong:
	// no PEM data, a malformed block, a key without a certificate, two keys,
	// a key that does not match the leaf, a public key mixed with
	// certificates, an encrypted key, an expired leaf (wrapping
	// [ErrExpired]), or data over the size limits.
	//
	// Adding content that is already stored returns the same ID and no
	// error. Adding the key of a stored certificate attaches the key to it;
	// adding a longer chain for a stored leaf keeps the longer chain. A
	// store that cannot protect private keys at rest (no secret) rejects
	// data holding a key, and stores nothing.
	Add(ctx context.Context, pemData []byte) (id string, err error)

	// Get returns the entry with ID id, its private key (if any) decrypted
	// and ready for TLS in [Certificate.TLS]. An unknown or malformed ID
	// gives an error wrapping [ErrNotFound]; a key that cannot be
	// decrypted, one wrapping [ErrDecrypt]. id is what a Map names, as
	// written: a store that scopes entries by organisation finds only its
	// organisation's IDs, and a store without one accepts an ID behind any
	// organisation prefix.
	//
	// The returned Certificate may be shared with other callers and cached
	// by the store: callers must not modify it, nor anything it points to.
	Get(ctx context.Context, id string) (*Certificate, error)

	// Delete removes the entry with ID id, and its key. An unknown or
	// malformed ID gives an error wrapping [ErrNotFound]. A Get that
	// starts after Delete returns does not return the entry.
	Delete(ctx context.Context, id string) error

	// List returns the IDs of the stored entries, sorted. It returns an
	// empty slice, not an error, for an empty store. A store may list an
	// entry that it finds unreadable only on Get (as [FileStore] does for
	// a file that another program wrote): Get's error then wraps
	// [ErrNotFound].
	List(ctx context.Context) ([]string, error)
}

// Notifier is implemented by a [CertStore] that reports its own changes,
// so that its users need not poll it. [MemoryStore] and [FileStore]
// implement it.
type Notifier interface {
	// Notify arranges for fn to be called with the ID of every entry that
	// is added, changed (key attached, chain replaced) or deleted, and
	// returns a function that stops the calls. Calling stop more than once
	// is harmless; fn may still be running when stop returns.
	//
	// For a change made in this process through the store, every fn is
	// called synchronously before Add or Delete returns, after the store
	// has released its locks: fn may call any method of the store. Adding
	// content that is already stored may not call fn. fn may be called from
	// several goroutines at once, and must not block for long.
	Notify(fn func(id string)) (stop func())
}

// Interface guards.
var (
	_ CertStore = (*MemoryStore)(nil)
	_ Notifier  = (*MemoryStore)(nil)
	_ CertStore = (*FileStore)(nil)
	_ Notifier  = (*FileStore)(nil)
)
