package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/mtlsgo/mtls/internal/certkit"
	"github.com/redis/go-redis/v9"
)

// The change log follower (see the package documentation, "Change
// notification"): one goroutine per Store reads the scope's stream with
// XREAD BLOCK from the last entry it read, applies each change to the
// cache and notifies it. Every change carries its number; a number that
// does not follow the last one applied means entries were lost to the
// follower (trimmed while it lagged, or Redis lost its data), and the
// store resynchronises: it drops its cache and notifies every ID it
// handed out. After an error the follower retries with backoff, and
// checks, before reading on, that the log still continues from its last
// entry.

const (
	blockFor    = time.Second           // XREAD BLOCK: also bounds how long Close leaves the follower's last read
	readCount   = 512                   // entries per XREAD
	idleVerify  = 5                     // after this many empty reads, check that the log still continues
	minBackoff  = 50 * time.Millisecond // first wait after an error
	maxBackoff  = time.Second           // longest wait between attempts while Redis is unavailable
	syncTimeout = 10 * time.Second      // bounds a verification or resynchronisation
)

// follower is the state of the change log follower between two reads.
type follower struct {
	verify  bool          // check that the log continues from the last entry read before reading on
	idle    int           // empty reads since the last entry read or check
	backoff time.Duration // the last wait after an error; 0 after a success
}

// follow is the change log follower's goroutine: it reads the log until
// the store closes, checking first that it continues from its last entry
// after an error or idleVerify empty reads.
func (s *Store) follow() {
	f := &follower{}
	for !s.closed.Load() {
		if f.verify {
			if err := s.reconcile(); err != nil {
				if s.closed.Load() || !s.retry(f, err) {
					return
				}
				continue
			}
			f.verify, f.backoff = false, 0
			s.markUp()
		}
		if !s.readLog(f) {
			return
		}
	}
}

// readLog reads the change log on from the last entry read (waiting up to
// blockFor for one) and applies what it read. It returns false when the
// store closed.
func (s *Store) readLog(f *follower) bool {
	s.mu.RLock()
	last := s.last
	s.mu.RUnlock()
	res, err := s.rdb.XRead(s.bg, &redis.XReadArgs{
		Streams: []string{s.keys.log, last}, Count: readCount, Block: blockFor,
	}).Result()
	if s.closed.Load() {
		return false
	}
	switch {
	case errors.Is(err, redis.Nil): // nothing new within blockFor
		f.backoff = 0
		s.markUp()
		if f.idle++; f.idle >= idleVerify {
			f.idle, f.verify = 0, true
		}
		return true
	case err != nil:
		return s.retry(f, redisErr(s.bg, "follow the change log "+s.keys.log, err))
	}
	f.idle, f.backoff = 0, 0
	s.markUp()
	if why := s.applyAll(res); why != nil {
		if err := s.resync(why); err != nil {
			s.markDown(err)
			f.verify = true
		}
	}
	return true
}

// retry reports err, which kept the follower from reading the log, as an
// outage, and waits before the next attempt, which verifies the log
// first: twice as long as the last wait, from minBackoff to maxBackoff.
// It returns false when the store closed meanwhile.
func (s *Store) retry(f *follower, err error) bool {
	s.markDown(err)
	f.verify = true
	f.backoff = min(max(2*f.backoff, minBackoff), maxBackoff)
	return sleepCtx(s.bg, f.backoff) == nil
}

// applyAll applies the entries read, and stops at the first whose number
// does not follow the last one applied, saying why.
func (s *Store) applyAll(res []redis.XStream) error {
	for _, st := range res {
		for _, m := range st.Messages {
			if err := s.apply(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// apply applies one entry of the change log: the cached entry of its ID
// is dropped unless it is newer, and the subscribers are notified, unless
// this Store made the change and notified it already. It returns an error
// saying why it cannot: a change number that does not follow the last one
// applied (changes were missed), or an entry that is not a change.
func (s *Store) apply(m redis.XMessage) error {
	field := func(k string) string { v, _ := m.Values[k].(string); return v }
	seq, err := strconv.ParseUint(field("seq"), 10, 64)
	fp := field("id")
	if err != nil || !certkit.IsID(fp) {
		return fmt.Errorf("the change log entry %s is not a change of this package", m.ID)
	}
	s.mu.Lock()
	if seq != s.applied+1 {
		applied := s.applied
		s.mu.Unlock()
		return fmt.Errorf("the change log went from change %d to change %d: changes were missed "+
			"(trimmed before this node read them, or Redis lost its data)", applied, seq)
	}
	s.applied, s.last = seq, m.ID
	if e := s.cache[fp]; e != nil && e.seq < seq {
		delete(s.cache, fp)
	}
	s.mu.Unlock()
	if field("node") == s.node {
		s.wmu.Lock()
		_, notified := s.mine[seq]
		delete(s.mine, seq)
		s.wmu.Unlock()
		if notified {
			return nil
		}
	}
	s.mu.Lock()
	delete(s.loose, fp) // its users hear of the change below, and read it again
	s.mu.Unlock()
	s.notify(s.display(fp))
	return nil
}

// reconcile checks, after the follower lost Redis or was idle, that the
// change log continues from the last entry read; if it does not, the
// store resynchronises.
func (s *Store) reconcile() error {
	ctx, cancel := context.WithTimeout(s.bg, syncTimeout)
	defer cancel()
	s.mu.RLock()
	last, applied := s.last, s.applied
	s.mu.RUnlock()
	ok, err := verifyScript.Run(ctx, s.rdb, []string{s.keys.entries, s.keys.log}, last, applied).Int64()
	if err != nil {
		return redisErr(ctx, "follow the change log "+s.keys.log, err)
	}
	if ok == 1 {
		return nil
	}
	return s.resync(fmt.Errorf("the change log no longer holds this node's last entry %s (change %d): "+
		"changes may have been missed (trimmed before this node read them, or Redis lost its data)", last, applied))
}

// resync drops the whole cache and notifies every ID the store handed out,
// after moving the follower to the end of the change log.
func (s *Store) resync(why error) error {
	ctx, cancel := context.WithTimeout(s.bg, syncTimeout)
	defer cancel()
	last, seq, err := s.position(ctx)
	if err != nil {
		return redisErr(ctx, "resynchronise with "+s.keys.log, err)
	}
	s.mu.Lock()
	set := s.dropCache()
	s.last, s.applied = last, seq
	s.epoch++
	s.mu.Unlock()
	s.wmu.Lock()
	clear(s.mine) // at worst, a change of ours is notified twice
	s.wmu.Unlock()
	ids := s.displayAll(set)
	s.event(Event{Kind: EventResync, Err: errorf("resynchronised: %w", why), IDs: len(ids)})
	s.notify(ids...)
	return nil
}

// position returns where the change log ends: the ID of its last entry
// and the change counter.
func (s *Store) position(ctx context.Context) (string, uint64, error) {
	v, err := positionScript.Run(ctx, s.rdb, []string{s.keys.entries, s.keys.log}).StringSlice()
	if err != nil {
		return "", 0, err
	}
	if len(v) != 2 {
		return "", 0, fmt.Errorf("the position script returned %d values", len(v))
	}
	seq, err := strconv.ParseUint(v[1], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("the change counter of %s is %q, not a number", s.keys.entries, v[1])
	}
	return v[0], seq, nil
}
