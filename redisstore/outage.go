package redisstore

import (
	"context"
	"errors"
	"sync"
	"time"
)

// The outage state (see the package documentation, "Outages"). Any
// operation that finds Redis unavailable reports the outage (EventOutage)
// and fails with an error wrapping ErrUnavailable, except reads the cache
// serves; reads that failed are remembered. Only the change log follower
// ends an outage, when it reads the log again: it reports the recovery
// (EventRecovery) and notifies the IDs whose reads failed, so that their
// users read them again.

// outage records whether Redis is unavailable to the store.
type outage struct {
	mu    sync.Mutex // guards down and since
	down  bool       // an outage was reported, and not yet its recovery
	since time.Time  // when it was reported
}

// markDown records that Redis is unavailable, reporting the outage once.
func (s *Store) markDown(err error) {
	s.outage.mu.Lock()
	if s.outage.down {
		s.outage.mu.Unlock()
		return
	}
	s.outage.down, s.outage.since = true, time.Now()
	s.outage.mu.Unlock()
	s.event(Event{Kind: EventOutage, Err: err})
}

// markUp records that the follower reads the change log again; after an
// outage it reports the recovery and notifies the IDs whose reads failed.
func (s *Store) markUp() {
	s.outage.mu.Lock()
	if !s.outage.down {
		s.outage.mu.Unlock()
		return
	}
	s.outage.down = false
	d := time.Since(s.outage.since)
	s.outage.mu.Unlock()
	s.mu.Lock()
	ids := s.displayAll(s.failed)
	clear(s.failed)
	s.mu.Unlock()
	s.event(Event{Kind: EventRecovery, Down: d})
	s.notify(ids...)
}

// opErr is the error of a Redis command of an operation (what, such as
// "List"), as redisErr gives it; an unavailable Redis is reported as an
// outage.
func (s *Store) opErr(ctx context.Context, what string, err error) error {
	err = redisErr(ctx, what, err)
	if errors.Is(err, ErrUnavailable) {
		s.markDown(err)
	}
	return err
}

// readErr is the error of a read of fp from Redis; when Redis is
// unavailable, fp is remembered, to be notified when it is back.
func (s *Store) readErr(ctx context.Context, fp string, err error) error {
	err = redisErr(ctx, "Get "+s.display(fp), err)
	if errors.Is(err, ErrUnavailable) {
		s.markFailed(fp) // before the outage is reported: its recovery notifies fp
		s.markDown(err)
	}
	return err
}

// writeErr is the error of a write's Redis command; when Redis is
// unavailable, it says that nothing was changed.
func (s *Store) writeErr(ctx context.Context, what string, err error) error {
	err = s.opErr(ctx, what, err)
	if errors.Is(err, ErrUnavailable) {
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
