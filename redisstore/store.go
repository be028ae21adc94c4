package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/internal/certkit"
	"github.com/redis/go-redis/v9"
)

// The Store type, New, Close and the zero Store. The rest of the store is
// in the files named after what they do: ids.go (the IDs it takes and
// gives), read.go (Get, Metadata, List), cache.go (what the local cache
// may hold), write.go (Add, Delete), kdf.go (the key derivation record),
// notify.go (Notify), follow.go (the change log follower), outage.go
// (Redis unavailable), layout.go (the Redis keys and scripts).

// Store is a [mtls.CertStore] on Redis, shared by a fleet of proxies: each
// node opens a Store with [New] on the same Redis, prefix and
// organisation, and sees the certificates every other node adds, replaces
// and deletes. It implements [mtls.Notifier]: a Selector over it follows
// the changes of every node. See the package documentation for the
// guarantees and the Redis key layout.
//
// A Store is safe for concurrent use by multiple goroutines. The zero
// Store is closed: its methods fail with [mtls.ErrClosed]; use [New].
type Store struct {
	rdb     redis.UniversalClient
	keys    keys
	org     string
	node    string // this Store's name in the change log, random
	logLen  int64
	onEvent func(Event)
	kr      *certkit.Keyring
	kdfRec  atomic.Pointer[string] // the key derivation record the keyring derived from

	bg     context.Context // of the change log follower; cancelled by Close
	cancel context.CancelFunc

	// mu guards the cache (cache, loose, failed, epoch) and the
	// follower's position in the change log (applied, last).
	mu      sync.RWMutex
	cache   map[string]*entry   // by fingerprint, including entries known absent
	loose   map[string]struct{} // handed out without being cached (see keep)
	failed  map[string]struct{} // reads that failed while Redis was unavailable
	applied uint64              // number of the last change applied from the log (or position of a resync)
	last    string              // stream ID of the last log entry read ("0-0": none)
	epoch   uint64              // bumped by every resynchronisation

	// wmu serialises this Store's writes, and guards mine.
	wmu  sync.Mutex
	mine map[uint64]struct{} // numbers of changes made and notified here, not yet read back from the log

	// nmu guards inflight, the number of subscriber calls under way, and
	// orders Close (which sets closed under it) against them: Close waits
	// on ncond until inflight is zero, and no call starts after it.
	nmu      sync.Mutex
	ncond    *sync.Cond // on nmu; signalled when inflight drops to zero
	inflight int
	closed   atomic.Bool         // set once, by Close; read without nmu by every method
	subs     certkit.Subscribers // the Notify functions; has its own lock

	outage outage // whether Redis is unavailable; has its own lock
}

// New opens the store of prefix and organisation (see [WithPrefix],
// [WithOrg]) on rdb: a *redis.Client, a failover client, or a
// *redis.ClusterClient (every key of a store has one hash tag; see the
// package documentation). rdb must send reads to the primary, and be left
// open until Close. Private keys are protected by secret, which may be a
// passphrase: the AES-256 key is derived from it with Argon2id, once, and
// the secret never leaves the process. Every node of a scope must use the
// same secret. With a nil or empty secret the store accepts certificates
// and public keys, and rejects data holding a private key; a wrong secret
// is reported as [mtls.ErrDecrypt] by the first operation that needs the
// key.
//
// New reads where the store's change log ends (one round trip, bounded by
// ctx) and starts the goroutine that follows it; it fails with an error
// wrapping [ErrUnavailable] when Redis cannot be reached. Call Close to
// stop the goroutine.
func New(ctx context.Context, rdb redis.UniversalClient, secret []byte, opts ...Option) (*Store, error) {
	o := options{prefix: DefaultPrefix, logLen: DefaultLogLength}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case rdb == nil:
		return nil, errorf("redisstore.New: nil Redis client")
	case strings.ContainsAny(o.prefix, "{}"):
		return nil, errorf("redisstore.New: key prefix %s contains '{' or '}': the store adds a Redis Cluster hash tag of its own", describe(o.prefix))
	case !isAlnum(o.org):
		return nil, errorf("redisstore.New: organisation %s is not letters and digits", describe(o.org))
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	ctx = orBackground(ctx)
	node := make([]byte, 8)
	rand.Read(node) // crypto/rand.Read never fails
	s := &Store{
		rdb: rdb, keys: newKeys(o.prefix, o.org), org: o.org, node: hex.EncodeToString(node),
		logLen: o.logLen, onEvent: o.onEvent,
		cache: map[string]*entry{}, loose: map[string]struct{}{}, failed: map[string]struct{}{},
		mine: map[uint64]struct{}{},
	}
	s.ncond = sync.NewCond(&s.nmu)
	s.kr = certkit.NewKeyring(secret, s.loadKeys)
	last, seq, err := s.position(ctx)
	if err != nil {
		return nil, redisErr(ctx, "redisstore.New: read the change log "+s.keys.log, err)
	}
	s.last, s.applied = last, seq
	s.bg, s.cancel = context.WithCancel(context.Background())
	go s.follow()
	return s, nil
}

// Org returns the store's organisation, "" for none.
func (s *Store) Org() string {
	if s == nil {
		return ""
	}
	return s.org
}

// ready fails for a closed store, and for the zero Store, which is closed.
func (s *Store) ready(ctx context.Context) error {
	switch {
	case s == nil || s.rdb == nil:
		return errorf("%w: the zero redisstore.Store is not open: use redisstore.New", mtls.ErrClosed)
	case s.closed.Load():
		return errorf("%w: redisstore.Store %s", mtls.ErrClosed, s.keys.entries)
	}
	return ctxErr(ctx)
}

// Close stops following the change log, drops the subscribers and the
// cache (and so the decrypted keys), and waits for the subscriber calls
// under way; later calls of the store's methods fail with
// [mtls.ErrClosed]. It does not close rdb. The follower's last blocking
// read may outlive Close by up to a second; it then ends without calling
// anything. Close must not be called from a subscriber or an event hook.
// Closing twice is harmless.
func (s *Store) Close() error {
	if s == nil || s.rdb == nil {
		return nil
	}
	s.nmu.Lock()
	if s.closed.Swap(true) {
		s.nmu.Unlock()
		return nil
	}
	for s.inflight > 0 {
		s.ncond.Wait()
	}
	s.nmu.Unlock()
	s.cancel()
	s.subs.Clear()
	s.mu.Lock()
	s.dropCache()
	s.mu.Unlock()
	return nil
}

// orBackground returns ctx, or the background context for a nil one,
// which the stores of package mtls accept.
func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// Interface guards.
var (
	_ mtls.CertStore = (*Store)(nil)
	_ mtls.Notifier  = (*Store)(nil)
)
