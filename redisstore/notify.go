package redisstore

// Notifications: the subscribers of a Store (Notify) hear of every change
// of its scope, made here (write.go) or by another node (follow.go), and
// of the IDs to read again after a resynchronisation or an outage; Close
// (store.go) waits for the calls under way. The event hook (WithEventHook)
// hears of outages, recoveries and resynchronisations.

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
// The caller must hold no lock of the store.
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

// event calls the event hook, unless the store is closed.
func (s *Store) event(e Event) {
	if s.onEvent != nil && !s.closed.Load() {
		s.onEvent(e)
	}
}
