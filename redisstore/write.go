package redisstore

import (
	"context"
	"errors"
	"time"

	"github.com/mtlsgo/mtls/internal/certkit"
	"github.com/redis/go-redis/v9"
)

// Writes: Add, which merges with the entry as Redis holds it and writes
// the result with a compare-and-set script (putScript), merging again when
// another writer came first; and Delete (delScript). Each write changes
// the entry, counts the change and logs it in one step, and is notified
// here before it returns; the change log follower (follow.go) does not
// notify it a second time.

// maxAddAttempts bounds the merges of one Add that lost a race with
// another writer.
const maxAddAttempts = 32

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

// An addition is an Add under way, over its attempts.
type addition struct {
	p      *certkit.Parsed
	what   string // "Add <id>", for errors
	sealed []byte // p.Key sealed under the store's key, once an attempt needed it
	raced  bool   // an attempt lost a race with another writer
}

// A merged entry is what one attempt of an Add writes, and what it
// expects Redis to hold still.
type merged struct {
	exists bool          // Redis held an entry
	cur    string        // its text
	data   *certkit.Data // the entry to write
	kdfRec string        // the key derivation record a new key was sealed under; "" if none was
}

// add merges p into the entry Redis holds and writes the result, and
// reports whether anything may have changed.
func (s *Store) add(ctx context.Context, p *certkit.Parsed) (bool, error) {
	ctx = orBackground(ctx)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a := &addition{p: p, what: "Add " + s.display(p.ID)}
	for attempt := 1; ; attempt++ {
		epoch := s.epochNow()
		m, changed, err := s.merge(ctx, a)
		if err != nil {
			return false, err
		}
		if !changed {
			// A write of ours that Redis applied but whose reply was
			// lost, and that the client sent again, reads as no change:
			// after a race, subscribers hear of it all the same.
			return a.raced, nil
		}
		if err := ctxErr(ctx); err != nil {
			return false, err
		}
		n, err := putScript.Run(ctx, s.rdb, []string{s.keys.entries, s.keys.log, s.keys.kdf},
			p.ID, m.exists, m.cur, certkit.Encode(m.data), s.logLen, s.node, m.kdfRec).Int64()
		if err != nil {
			return false, s.writeErr(ctx, a.what, err)
		}
		switch {
		case n > 0:
			s.wrote(p.ID, &entry{seq: uint64(n), data: m.data}, epoch)
			return true, nil
		case n == -2:
			if err := s.restoreKDF(ctx, a.what, m.kdfRec); err != nil {
				return false, err
			}
		case attempt == maxAddAttempts:
			return false, errorf("%s: the entry kept changing under %d attempts to merge with it; try again", a.what, attempt)
		}
		a.raced = true
		if err := sleepCtx(ctx, time.Duration(attempt)*time.Millisecond); err != nil {
			return false, err
		}
	}
}

// merge reads the entry of a from Redis and merges a into it; changed is
// false when a adds nothing to it.
func (s *Store) merge(ctx context.Context, a *addition) (m merged, changed bool, err error) {
	m.cur, err = s.rdb.HGet(ctx, s.keys.entries, a.p.ID).Result()
	m.exists = err == nil
	if err != nil && !errors.Is(err, redis.Nil) {
		return m, false, s.writeErr(ctx, a.what, err)
	}
	var curData *certkit.Data
	if m.exists {
		curData, _ = decodeEntry(a.p.ID, m.cur) // nil for a corrupt entry, which is replaced
	}
	chain, sealed, sealNew, changed := certkit.Merge(curData, a.p)
	if !changed {
		return m, false, nil
	}
	if sealNew {
		if sealed, err = s.sealKey(a); err != nil {
			return m, false, err
		}
		m.kdfRec = *s.kdfRec.Load()
	}
	m.data = certkit.NewData(a.p, chain, sealed)
	return m, true, nil
}

// sealKey returns the key of a sealed under the store's key, sealing it
// on the first attempt that needs it (creating the key derivation record
// if the scope has none).
func (s *Store) sealKey(a *addition) ([]byte, error) {
	if a.sealed == nil {
		aead, err := s.kr.Get(true)
		if err == nil {
			a.sealed, err = certkit.Seal(aead, s.display(a.p.ID), a.p.Key)
		}
		if err != nil {
			return nil, s.keyErr(a.what, err)
		}
	}
	return a.sealed, nil
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
	ctx = orBackground(ctx)
	deleted, err := s.del(ctx, fp)
	if err != nil {
		return s.writeErr(ctx, "Delete "+s.display(fp), err)
	}
	if !deleted {
		return errIDNotFound(s.display(fp))
	}
	s.notify(s.display(fp))
	return nil
}

// del removes the entry of fp from Redis and logs the change, and reports
// whether there was one. Its error is go-redis's.
func (s *Store) del(ctx context.Context, fp string) (bool, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	epoch := s.epochNow()
	n, err := delScript.Run(ctx, s.rdb, []string{s.keys.entries, s.keys.log}, fp, s.logLen, s.node).Int64()
	if err != nil || n <= 0 {
		return false, err
	}
	s.wrote(fp, &entry{seq: uint64(n)}, epoch)
	return true, nil
}

// wrote records change number e.seq, which this store made and notifies
// itself, so that the follower does not notify it again; and caches e,
// what fp holds after it, as keep does. The caller holds wmu.
func (s *Store) wrote(fp string, e *entry, epoch uint64) {
	s.mine[e.seq] = struct{}{}
	s.keep(fp, e, epoch)
}

// sleepCtx waits for d, or fails with ctx's error when ctx is done first.
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
