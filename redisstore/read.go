package redisstore

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/internal/certkit"
)

// Reads: Get and Metadata, served from the local cache (cache.go) when it
// holds the entry and read from Redis otherwise, and List, which reads
// Redis each time.

// Get implements [mtls.CertStore.Get]. A cached entry is returned without
// a round trip to Redis, and, once its key is decrypted, without
// allocating: the cache holds every entry read, until a change of it
// arrives through the change log (or is made here). An entry not cached
// is read with one command (HMGET) and cached; while Redis is
// unavailable, that read fails with an error wrapping [ErrUnavailable],
// and the ID is notified when Redis is back.
func (s *Store) Get(ctx context.Context, id string) (*mtls.Certificate, error) {
	fp, e, err := s.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.certificate(fp, e)
}

// Metadata returns the metadata of the entry with ID id (as Get takes it)
// without decrypting anything: its ID is the store's (behind the
// organisation, if any). Errors are those of Get.
func (s *Store) Metadata(ctx context.Context, id string) (mtls.Metadata, error) {
	fp, e, err := s.lookup(ctx, id)
	if err != nil {
		return mtls.Metadata{}, err
	}
	d, err := e.stored(s.display(fp))
	if err != nil {
		return mtls.Metadata{}, err
	}
	return metadataOf(d, s.display(fp)), nil
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
		return nil, s.opErr(ctx, "List", err)
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

// lookup returns the fingerprint that id names and its entry: the cached
// one, or else the one read from Redis (and cached).
func (s *Store) lookup(ctx context.Context, id string) (string, *entry, error) {
	if err := s.ready(ctx); err != nil {
		return "", nil, err
	}
	fp, err := s.plainID(id)
	if err != nil {
		return "", nil, err
	}
	s.mu.RLock()
	e := s.cache[fp]
	s.mu.RUnlock()
	if e == nil {
		if e, err = s.load(ctx, fp); err != nil {
			return "", nil, err
		}
	}
	return fp, e, nil
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

// certificate returns the Certificate of e, the entry of fp, decrypting
// its key once.
func (s *Store) certificate(fp string, e *entry) (*mtls.Certificate, error) {
	if c := e.cert.Load(); c != nil {
		return c, nil
	}
	id := s.display(fp)
	d, err := e.stored(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.cert.Load(); c != nil {
		return c, nil
	}
	key, err := s.openKey(fp, id, d)
	if err != nil {
		return nil, err
	}
	c, err := mtls.NewCertificate(d.Chain, d.Pub, key)
	if err != nil {
		return nil, errorf("Get %s: %w", id, err)
	}
	c.ID = id
	e.cert.Store(c)
	return c, nil
}

// openKey opens the sealed key of d, the entry of fp (ID id); nil when the
// entry has no key. When the key derivation record cannot be read because
// Redis is unavailable, fp is notified when Redis is back.
func (s *Store) openKey(fp, id string, d *certkit.Data) (crypto.Signer, error) {
	if d.Sealed == nil {
		return nil, nil
	}
	aead, err := s.kr.Get(false)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			s.markFailed(fp)
		}
		return nil, s.keyErr("Get "+id, err)
	}
	key, err := certkit.Open(aead, id, d.Sealed, d.Pub)
	if err != nil {
		return nil, fromKit(err)
	}
	return key, nil
}

// metadataOf is the metadata of d, whose ID is id, as the core stores give
// it.
func metadataOf(d *certkit.Data, id string) mtls.Metadata {
	m := mtls.Metadata{ID: id, Fingerprint: d.ID, HasPrivateKey: d.Sealed != nil}
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
