package redisstore

import (
	"context"
	"crypto"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/internal/certkit"
	"github.com/redis/go-redis/v9"
)

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

	// mu guards the cache and the follower's position in the change log.
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

	// nmu guards closed against inflight: Close waits for the calls of
	// subscribers under way, and no call starts after it.
	nmu      sync.Mutex
	ncond    *sync.Cond
	inflight int
	closed   atomic.Bool
	subs     certkit.Subscribers

	downMu    sync.Mutex
	down      bool
	downSince time.Time
}

// entry is one entry of the cache: what Redis held for a fingerprint at
// change number seq. A change makes a new entry, so the decrypted
// certificate never outlives it.
type entry struct {
	seq  uint64
	data *certkit.Data // nil: no such entry
	err  error         // the stored entry failed its checks; wraps mtls.ErrNotFound

	mu   sync.Mutex // serialises decryption
	cert atomic.Pointer[mtls.Certificate]
}

const (
	maxAddAttempts = 32               // merges of one Add that lost a race with another writer
	keyTimeout     = 10 * time.Second // reading or creating the key derivation record
)

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

// orBackground returns ctx, or the background context for a nil one,
// which the stores of package mtls accept.
func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
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

// display returns the ID of the entry with fingerprint fp as the store
// gives it: behind the store's organisation, if any.
func (s *Store) display(fp string) string { return s.org + fp }

// plainID returns the fingerprint that id names in this store: id itself,
// or the fingerprint behind an organisation prefix (the store's own, when
// it has one; any, when it has none). Anything else is an error wrapping
// mtls.ErrNotFound, and never reaches Redis.
func (s *Store) plainID(id string) (string, error) {
	if certkit.IsID(id) {
		return id, nil
	}
	if n := len(id); n > 64 && certkit.IsID(id[n-64:]) && isAlnum(id[:n-64]) {
		org := id[:n-64]
		if s.org == "" || org == s.org {
			return id[n-64:], nil
		}
		return "", errorf("%w: no certificate or key with ID %s in organisation %s (the ID is of organisation %s)",
			mtls.ErrNotFound, id, s.org, org)
	}
	return "", errorf("%w: %s is not a certificate ID (64 lowercase hex digits, optionally behind an organisation)",
		mtls.ErrNotFound, describe(id))
}

// Add implements [mtls.CertStore.Add], with the limits of the core stores
// (1 MiB of PEM, 16 certificates in a chain, RSA keys of 8192 bits). It
// merges with the entry as Redis holds it (a key attached, a longer chain
// kept, as [mtls.MemoryStore] does) and writes the result with a script
// that fails if the entry changed meanwhile, merging again then: of two
// nodes adding to one entry at once, neither loses what it added. The
// entry, the change counter and the change log are written in one step.
// Subscribers on this node are called before Add returns; other nodes see
// the change through the change log. The first Add of a private key to a
// scope creates the key derivation record.
//
// While Redis is unavailable, Add fails with an error wrapping
// [ErrUnavailable] and changes nothing.
func (s *Store) Add(ctx context.Context, pemData []byte) (string, error) {
	if err := s.ready(ctx); err != nil {
		return "", err
	}
	p, err := certkit.Parse(pemData)
	if err == nil {
		err = certkit.CheckNotExpired(p, time.Now())
	}
	if err != nil {
		return "", fromKit(err)
	}
	if p.Key != nil && !s.kr.HasSecret() {
		return "", fromKit(certkit.ErrNoSecret)
	}
	changed, err := s.add(ctx, p)
	if err != nil {
		return "", err
	}
	id := s.display(p.ID)
	if changed {
		s.notify(id)
	}
	return id, nil
}

// add merges p into the entry Redis holds and writes the result, and
// reports whether anything may have changed.
func (s *Store) add(ctx context.Context, p *certkit.Parsed) (bool, error) {
	ctx = orBackground(ctx)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	what := "Add " + s.display(p.ID)
	var sealedNew []byte
	raced := false
	for attempt := 1; ; attempt++ {
		epoch := s.epochNow()
		cur, err := s.rdb.HGet(ctx, s.keys.entries, p.ID).Result()
		exists := err == nil
		if err != nil && !errors.Is(err, redis.Nil) {
			return false, s.writeErr(ctx, what, err)
		}
		var curData *certkit.Data
		if exists {
			curData, _ = decodeEntry(p.ID, cur) // nil for a corrupt entry, which is replaced
		}
		chain, sealed, sealNew, changed := certkit.Merge(curData, p)
		if !changed {
			// A write of ours that Redis applied but whose reply was
			// lost, and that the client sent again, reads as no change:
			// after a race, subscribers hear of it all the same.
			return raced, nil
		}
		kdfRec := ""
		if sealNew {
			if sealedNew == nil {
				aead, err := s.kr.Get(true)
				if err == nil {
					sealedNew, err = certkit.Seal(aead, s.display(p.ID), p.Key)
				}
				if err != nil {
					return false, s.keyErr(what, err)
				}
			}
			sealed = sealedNew
			kdfRec = *s.kdfRec.Load()
		}
		if err := ctxErr(ctx); err != nil {
			return false, err
		}
		d := certkit.NewData(p, chain, sealed)
		n, err := putScript.Run(ctx, s.rdb, []string{s.keys.entries, s.keys.log, s.keys.kdf},
			p.ID, flag(exists), cur, certkit.Encode(d), s.logLen, s.node, kdfRec).Int64()
		if err != nil {
			return false, s.writeErr(ctx, what, err)
		}
		switch {
		case n > 0:
			s.mine[uint64(n)] = struct{}{}
			s.keep(p.ID, &entry{seq: uint64(n), data: d}, epoch)
			return true, nil
		case n == -2:
			// The record the key was sealed under is gone (Redis lost its
			// data): put it back, unless another node made a new one.
			ok, err := s.setNX(ctx, s.keys.kdf, kdfRec)
			if err != nil {
				return false, s.writeErr(ctx, what, err)
			}
			if !ok {
				return false, errorf("%s: the key derivation record %s is not the one this store derived its key from "+
					"(was it replaced?); open the store again to use the new one", what, s.keys.kdf)
			}
		case attempt == maxAddAttempts:
			return false, errorf("%s: the entry kept changing under %d attempts to merge with it; try again", what, attempt)
		}
		raced = true
		if err := sleepCtx(ctx, time.Duration(attempt)*time.Millisecond); err != nil {
			return false, err
		}
	}
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctxErr(ctx)
	case <-t.C:
		return nil
	}
}

// Get implements [mtls.CertStore.Get]. A cached entry is returned without
// a round trip to Redis, and, once its key is decrypted, without
// allocating: the cache holds every entry read, until a change of it
// arrives through the change log (or is made here). An entry not cached
// is read with one command (HMGET) and cached; while Redis is
// unavailable, that read fails with an error wrapping [ErrUnavailable],
// and the ID is notified when Redis is back.
func (s *Store) Get(ctx context.Context, id string) (*mtls.Certificate, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	fp, err := s.plainID(id)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	e := s.cache[fp]
	s.mu.RUnlock()
	if e != nil {
		if c := e.cert.Load(); c != nil {
			return c, nil
		}
	} else if e, err = s.load(ctx, fp); err != nil {
		return nil, err
	}
	return s.certificate(fp, e)
}

// Metadata returns the metadata of the entry with ID id (as Get takes it)
// without decrypting anything: its ID is the store's (behind the
// organisation, if any). Errors are those of Get.
func (s *Store) Metadata(ctx context.Context, id string) (mtls.Metadata, error) {
	if err := s.ready(ctx); err != nil {
		return mtls.Metadata{}, err
	}
	fp, err := s.plainID(id)
	if err != nil {
		return mtls.Metadata{}, err
	}
	s.mu.RLock()
	e := s.cache[fp]
	s.mu.RUnlock()
	if e == nil {
		if e, err = s.load(ctx, fp); err != nil {
			return mtls.Metadata{}, err
		}
	}
	switch {
	case e.err != nil:
		return mtls.Metadata{}, e.err
	case e.data == nil:
		return mtls.Metadata{}, errIDNotFound(s.display(fp))
	}
	return metadataOf(e.data, s.display(fp), e.data.Sealed != nil), nil
}

// load reads the entry of fp from Redis and caches it.
func (s *Store) load(ctx context.Context, fp string) (*entry, error) {
	ctx = orBackground(ctx)
	epoch := s.epochNow()
	vals, err := s.rdb.HMGet(ctx, s.keys.entries, fp, seqField).Result()
	if err == nil && len(vals) != 2 {
		err = fmt.Errorf("HMGET returned %d values, want 2", len(vals))
	}
	if err != nil {
		return nil, s.readErr(ctx, fp, err)
	}
	e := &entry{}
	if v, ok := vals[1].(string); ok {
		if e.seq, err = strconv.ParseUint(v, 10, 64); err != nil {
			return nil, errorf("Get %s: the change counter of %s is %s, not a number", s.display(fp), s.keys.entries, describe(v))
		}
	}
	if v, ok := vals[0].(string); ok {
		e.data, e.err = decodeEntry(fp, v)
	}
	return s.keep(fp, e, epoch), nil
}

// readErr is the error of a read of fp from Redis; when Redis is
// unavailable, fp is remembered, to be notified when it is back.
func (s *Store) readErr(ctx context.Context, fp string, err error) error {
	err = redisErr(ctx, "Get "+s.display(fp), err)
	if errors.Is(err, ErrUnavailable) {
		s.mu.Lock()
		s.failed[fp] = struct{}{}
		s.mu.Unlock()
		s.markDown(err)
	}
	return err
}

// writeErr is the error of a write's Redis command.
func (s *Store) writeErr(ctx context.Context, what string, err error) error {
	err = redisErr(ctx, what, err)
	if errors.Is(err, ErrUnavailable) {
		s.markDown(err)
		return errorf("%w (nothing was changed; this node serves the certificates it has cached until Redis is back)", err)
	}
	return err
}

// keyErr is the error of the keyring: the key derivation record could not
// be read or created, or the secret is wrong or missing.
func (s *Store) keyErr(what string, err error) error {
	if errors.Is(err, ErrUnavailable) {
		s.markDown(err)
		return err
	}
	return errorf("%s: %w", what, fromKit(err))
}

func (s *Store) epochNow() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.epoch
}

// keep caches e, read or written at change number e.seq while the
// store's epoch was epoch, unless the cache may already have applied a
// later change of fp; and returns the entry to use. The rule: the cache
// holds an entry only if no change of its fingerprint numbered after it
// has been applied. An entry not cached is remembered as handed out, to be
// notified if the store resynchronises.
func (s *Store) keep(fp string, e *entry, epoch uint64) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch != s.epoch {
		s.loose[fp] = struct{}{}
		return e
	}
	cur := s.cache[fp]
	switch {
	case cur != nil && cur.seq >= e.seq:
		return cur
	case cur != nil || s.applied <= e.seq:
		// No change of fp after cur was applied, so none after e.
		s.cache[fp] = e
	default:
		s.loose[fp] = struct{}{}
	}
	return e
}

// certificate returns the Certificate of e, decrypting its key once.
func (s *Store) certificate(fp string, e *entry) (*mtls.Certificate, error) {
	if c := e.cert.Load(); c != nil {
		return c, nil
	}
	switch {
	case e.err != nil:
		return nil, e.err
	case e.data == nil:
		return nil, errIDNotFound(s.display(fp))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.cert.Load(); c != nil {
		return c, nil
	}
	id := s.display(fp)
	var key crypto.Signer
	if e.data.Sealed != nil {
		aead, err := s.kr.Get(false)
		if err != nil {
			if errors.Is(err, ErrUnavailable) {
				s.mu.Lock()
				s.failed[fp] = struct{}{}
				s.mu.Unlock()
			}
			return nil, s.keyErr("Get "+id, err)
		}
		if key, err = certkit.Open(aead, id, e.data.Sealed, e.data.Pub); err != nil {
			return nil, fromKit(err)
		}
	}
	c, err := mtls.NewCertificate(e.data.Chain, e.data.Pub, key)
	if err != nil {
		return nil, errorf("Get %s: %w", id, err)
	}
	c.ID = id
	e.cert.Store(c)
	return c, nil
}

// decodeEntry checks and parses the entry text v of fp. Its error wraps
// mtls.ErrNotFound.
func decodeEntry(fp, v string) (*certkit.Data, error) {
	body, err := certkit.Check(fp, []byte(v))
	if err != nil {
		return nil, fromKit(err)
	}
	d, err := certkit.Decode(fp, body)
	return d, fromKit(err)
}

// metadataOf is the metadata of d, as the core stores give it.
func metadataOf(d *certkit.Data, id string, hasKey bool) mtls.Metadata {
	m := mtls.Metadata{ID: id, Fingerprint: d.ID, HasPrivateKey: hasKey}
	if leaf := d.Leaf; leaf != nil {
		m.Issuer = leaf.Issuer.String()
		m.Subject = leaf.Subject.String()
		m.NotBefore = leaf.NotBefore.UTC()
		m.NotAfter = leaf.NotAfter.UTC()
		m.DNSNames = slices.Clone(leaf.DNSNames)
		m.IsCA = leaf.IsCA
	}
	return m
}

// Delete implements [mtls.CertStore.Delete]. The entry and its key are
// removed, and the change logged, in one step; subscribers on this node
// are called before Delete returns, and a Get on this node that starts
// after it returns does not return the entry. Other nodes drop it when
// the change log reaches them. While Redis is unavailable, Delete fails
// with an error wrapping [ErrUnavailable] and changes nothing.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	fp, err := s.plainID(id)
	if err != nil {
		return err
	}
	what := "Delete " + s.display(fp)
	ctx = orBackground(ctx)
	s.wmu.Lock()
	epoch := s.epochNow()
	n, err := delScript.Run(ctx, s.rdb, []string{s.keys.entries, s.keys.log}, fp, s.logLen, s.node).Int64()
	if err != nil {
		s.wmu.Unlock()
		return s.writeErr(ctx, what, err)
	}
	if n > 0 {
		s.mine[uint64(n)] = struct{}{}
		s.keep(fp, &entry{seq: uint64(n)}, epoch)
	}
	s.wmu.Unlock()
	if n <= 0 {
		return errIDNotFound(s.display(fp))
	}
	s.notify(s.display(fp))
	return nil
}

// List implements [mtls.CertStore.List]: the IDs of the scope's entries,
// read from Redis (one HKEYS), sorted. While Redis is unavailable it fails
// with an error wrapping [ErrUnavailable].
func (s *Store) List(ctx context.Context) ([]string, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	ctx = orBackground(ctx)
	fields, err := s.rdb.HKeys(ctx, s.keys.entries).Result()
	if err != nil {
		err = redisErr(ctx, "List", err)
		if errors.Is(err, ErrUnavailable) {
			s.markDown(err)
		}
		return nil, err
	}
	ids := make([]string, 0, len(fields))
	for _, f := range fields {
		if certkit.IsID(f) {
			ids = append(ids, s.display(f))
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Notify implements [mtls.Notifier]. fn is called with the ID (behind the
// organisation, if any) of every entry that is added, changed or deleted:
//   - by this Store: synchronously, before Add or Delete returns;
//   - by another node: when this Store's change log follower reads the
//     change, about a round trip after it was made while Redis is
//     reachable;
//   - for every ID this Store handed out, when it resynchronises (see
//     [EventResync]); and for the IDs whose reads failed while Redis was
//     unavailable, when it is back.
//
// After Close, fn is never called.
func (s *Store) Notify(fn func(id string)) (stop func()) {
	if s == nil || s.rdb == nil || s.closed.Load() {
		return func() {}
	}
	return s.subs.Add(fn)
}

// notify calls the subscribers with each id, unless the store is closed.
func (s *Store) notify(ids ...string) {
	if len(ids) == 0 {
		return
	}
	s.nmu.Lock()
	if s.closed.Load() {
		s.nmu.Unlock()
		return
	}
	s.inflight++
	s.nmu.Unlock()
	defer func() {
		s.nmu.Lock()
		if s.inflight--; s.inflight == 0 {
			s.ncond.Broadcast()
		}
		s.nmu.Unlock()
	}()
	s.subs.Notify(ids...)
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
	s.cache, s.loose, s.failed = map[string]*entry{}, map[string]struct{}{}, map[string]struct{}{}
	s.mu.Unlock()
	return nil
}

// loadKeys derives the store's AEAD from the key derivation record in
// Redis, creating the record (SETNX, so that it is written once) when
// create is set and there is none.
func (s *Store) loadKeys(secret []byte, create bool) (cipher.AEAD, error) {
	ctx, cancel := context.WithTimeout(context.Background(), keyTimeout)
	defer cancel()
	for range 2 {
		rec, err := s.rdb.Get(ctx, s.keys.kdf).Result()
		if err == nil {
			aead, err := certkit.OpenKDF([]byte(rec), secret)
			if err == nil {
				s.kdfRec.Store(&rec)
			}
			return aead, err
		}
		if !errors.Is(err, redis.Nil) {
			return nil, redisErr(ctx, "read the key derivation record "+s.keys.kdf, err)
		}
		if !create {
			return nil, fmt.Errorf("%w: Redis has no key derivation record %s", certkit.ErrDecrypt, s.keys.kdf)
		}
		newRec, aead, err := certkit.NewKDF(secret)
		if err != nil {
			return nil, err
		}
		ok, err := s.setNX(ctx, s.keys.kdf, string(newRec))
		if err != nil {
			return nil, redisErr(ctx, "create the key derivation record "+s.keys.kdf, err)
		}
		if ok {
			rec := string(newRec)
			s.kdfRec.Store(&rec)
			return aead, nil
		}
		// Another node created it first: use theirs.
	}
	return nil, errorf("cannot read or create the key derivation record %s", s.keys.kdf)
}

// setNX sets key to value unless it exists (SETNX, which ACLs can allow
// alone, rather than SET NX).
func (s *Store) setNX(ctx context.Context, key, value string) (bool, error) {
	cmd := redis.NewBoolCmd(ctx, "setnx", key, value)
	s.rdb.Process(ctx, cmd)
	return cmd.Result()
}

// redisErr wraps an error of a Redis command made for what (such as "Add
// <id>"): ctx's error when ctx ended, ErrUnavailable when Redis could not
// serve it, else the error as is.
func redisErr(ctx context.Context, what string, err error) error {
	if cerr := ctxErr(ctx); cerr != nil {
		return errorf("%s: %w", what, cerr)
	}
	if unavailable(err) {
		return errorf("%w: %s: %w", ErrUnavailable, what, err)
	}
	return errorf("%s: Redis: %w", what, err)
}

// Interface guards.
var (
	_ mtls.CertStore = (*Store)(nil)
	_ mtls.Notifier  = (*Store)(nil)
)
