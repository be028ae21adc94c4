package redisstore

import (
	"sync"
	"sync/atomic"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/internal/certkit"
)

// The local read cache (see the package documentation, "Reads"). Each
// node caches every entry it reads, and the absence of each ID it found
// absent, until a change of it reaches the node. Every entry carries the
// number of the last change it reflects, so that an entry read before a
// change is never cached after it (keep); a resynchronisation, which
// cannot tell what changed, drops the whole cache (dropCache).

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

// stored returns the data of e, the entry of the ID id, or why there is
// none: the stored entry failed its checks, or Redis has no such entry.
func (e *entry) stored(id string) (*certkit.Data, error) {
	switch {
	case e.err != nil:
		return nil, e.err
	case e.data == nil:
		return nil, errIDNotFound(id)
	}
	return e.data, nil
}

// epochNow returns the number of resynchronisations so far; a read or a
// write notes it before its Redis command, for keep.
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

// markFailed remembers that a read of fp failed while Redis was
// unavailable, so that fp is notified when Redis is back (markUp).
func (s *Store) markFailed(fp string) {
	s.mu.Lock()
	s.failed[fp] = struct{}{}
	s.mu.Unlock()
}

// dropCache empties the cache, and returns the fingerprints of every
// entry the store handed out: cached, handed out without being cached, or
// whose read failed. The caller holds mu.
func (s *Store) dropCache() map[string]struct{} {
	set := s.loose
	for fp := range s.cache {
		set[fp] = struct{}{}
	}
	for fp := range s.failed {
		set[fp] = struct{}{}
	}
	s.cache, s.loose, s.failed = map[string]*entry{}, map[string]struct{}{}, map[string]struct{}{}
	return set
}
