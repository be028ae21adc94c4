package mtls

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
)

// This file holds the pools of connections (semantics §3 "No shared mutable
// config", §6): one per host and proxy, for the host's current TLS
// identity, retired when the identity changes or the bound is reached.

// poolKey names the pool of a host reached through a proxy ("" for none).
type poolKey struct {
	host  hostKey
	proxy string
}

// pool keeps one poolEntry per host and proxy, and the transport that
// TransportFor gives out per host. Both are bounded: past max, the least
// recently used retires.
type pool struct {
	max      int
	onRetire func(*poolEntry) // called with no lock held
	clock    atomic.Uint64
	closed   atomic.Bool

	// sweeps counts the sweeps begun. A request that resolved its identity
	// before a sweep began may find its pool retired by it; the pool it
	// then makes serves it alone, and is never kept: a change is never
	// undone by a request in flight.
	sweeps atomic.Uint64

	mu      sync.RWMutex // guards entries and publics
	entries map[poolKey]*poolEntry
	publics map[hostKey]*publicTransport
}

func newPool(max int, onRetire func(*poolEntry)) *pool {
	return &pool{max: max, onRetire: onRetire, entries: map[poolKey]*poolEntry{}, publics: map[hostKey]*publicTransport{}}
}

// poolEntry is the connection pool of one identity.
type poolEntry struct {
	key     poolKey
	id      identity
	route   route           // what its connections present and check
	t       *http.Transport // with the TLS config of route
	used    atomic.Uint64
	retired atomic.Bool
}

// get returns the entry of key for identity id, resolved when sweeps was
// at seen, made by newEntry when the key has none or one of another
// identity, which retires.
func (p *pool) get(key poolKey, id identity, seen uint64, newEntry func() *poolEntry) (*poolEntry, error) {
	p.mu.RLock()
	e := p.entries[key]
	p.mu.RUnlock()
	if e == nil || e.id != id {
		var retired []*poolEntry
		var err error
		e, retired, err = p.replace(key, id, seen, newEntry)
		p.report(retired)
		if err != nil {
			return nil, err
		}
	}
	e.used.Store(p.clock.Add(1))
	return e, nil
}

// replace makes the entry of key for id, and returns the entries it
// retired, for report.
func (p *pool) replace(key poolKey, id identity, seen uint64, newEntry func() *poolEntry) (*poolEntry, []*poolEntry, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return nil, nil, ErrClosed
	}
	old := p.entries[key]
	if old != nil && old.id == id {
		return old, nil, nil
	}
	e := newEntry()
	if p.sweeps.Load() != seen {
		// Resolved before a change that a sweep is acting on: serve this
		// request alone, then close.
		e.retired.Store(true)
		return e, nil, nil
	}
	var retired []*poolEntry
	if old != nil {
		retired = append(retired, p.retire(old))
	}
	p.entries[key] = e
	if len(p.entries) > p.max {
		var lru *poolEntry
		for _, o := range p.entries {
			if o != e && (lru == nil || o.used.Load() < lru.used.Load()) {
				lru = o
			}
		}
		retired = append(retired, p.retire(lru))
	}
	return e, retired, nil
}

// retire removes e from the pool and closes its idle connections; busy
// ones close after their response. It returns e for report. p.mu is held.
func (p *pool) retire(e *poolEntry) *poolEntry {
	delete(p.entries, e.key)
	e.retired.Store(true)
	e.closeIfRetired()
	return e
}

// report tells onRetire of retired entries, with no lock held: an event
// hook may call what takes the pool's lock (a store whose change sweeps).
func (p *pool) report(retired []*poolEntry) {
	for _, e := range retired {
		p.onRetire(e)
	}
}

// retireIf retires e if it is still its key's entry.
func (p *pool) retireIf(e *poolEntry) {
	p.mu.Lock()
	current := p.entries[e.key] == e
	if current {
		p.retire(e)
	}
	p.mu.Unlock()
	if current {
		p.report([]*poolEntry{e})
	}
}

// retireAll retires every entry and public transport, and refuses new ones.
func (p *pool) retireAll() {
	p.mu.Lock()
	p.closed.Store(true)
	var retired []*poolEntry
	for _, e := range p.entries {
		retired = append(retired, p.retire(e))
	}
	var pubs []*publicTransport
	for _, pub := range p.publics {
		pubs = append(pubs, p.retirePublic(pub))
	}
	p.mu.Unlock()
	p.report(retired)
	for _, pub := range pubs {
		pub.t.CloseIdleConnections()
	}
}

// snapshot returns the entries and public transports of the pool.
func (p *pool) snapshot() ([]*poolEntry, []*publicTransport) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	es := make([]*poolEntry, 0, len(p.entries))
	for _, e := range p.entries {
		es = append(es, e)
	}
	pubs := make([]*publicTransport, 0, len(p.publics))
	for _, pub := range p.publics {
		pubs = append(pubs, pub)
	}
	return es, pubs
}

// closeIdle closes the idle connections of every entry.
func (p *pool) closeIdle() {
	es, pubs := p.snapshot()
	for _, e := range es {
		e.t.CloseIdleConnections()
	}
	for _, pub := range pubs {
		pub.t.CloseIdleConnections()
	}
}

// closeIfRetired closes the idle connections of a retired entry. Once
// closed, an http.Transport also closes the connections that go idle
// later, until its next request.
func (e *poolEntry) closeIfRetired() {
	if e.retired.Load() {
		e.t.CloseIdleConnections()
	}
}

// public returns the public transport of host for identity id, made by
// newPublic when there is none of that identity.
func (p *pool) public(host hostKey, id tlsID, newPublic func() *publicTransport) (*publicTransport, error) {
	p.mu.Lock()
	if p.closed.Load() {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	pub := p.publics[host]
	var retired []*publicTransport
	if pub == nil || pub.id != id {
		if pub != nil {
			retired = append(retired, p.retirePublic(pub))
		}
		pub = newPublic()
		p.publics[host] = pub
		if len(p.publics) > p.max {
			var lru *publicTransport
			for _, o := range p.publics {
				if o != pub && (lru == nil || o.used.Load() < lru.used.Load()) {
					lru = o
				}
			}
			retired = append(retired, p.retirePublic(lru))
		}
	}
	pub.used.Store(p.clock.Add(1))
	p.mu.Unlock()
	for _, old := range retired {
		old.t.CloseIdleConnections()
	}
	return pub, nil
}

// retirePublic removes pub, which refuses every request after, and returns
// it: the caller closes its idle connections once p.mu is released (its
// CloseIdleConnections reads the pool). p.mu is held.
func (p *pool) retirePublic(pub *publicTransport) *publicTransport {
	if p.publics[pub.host] == pub {
		delete(p.publics, pub.host)
	}
	pub.retired.Store(true)
	return pub
}

// retirePublicIf retires pub if it is still its host's.
func (p *pool) retirePublicIf(pub *publicTransport) {
	p.mu.Lock()
	current := p.publics[pub.host] == pub
	if current {
		p.retirePublic(pub)
	}
	p.mu.Unlock()
	if current {
		pub.t.CloseIdleConnections()
	}
}

// sweep retires the pools and public transports whose identity is no
// longer the current one, or whose host now fails closed.
func (s *Selector) sweep() {
	s.pool.sweeps.Add(1)
	es, pubs := s.pool.snapshot()
	st := s.state.Load()
	for _, e := range es {
		r, err := s.reroute(st, &e.route)
		if err != nil || r.identity() != e.id {
			s.pool.retireIf(e)
		}
	}
	for _, pub := range pubs {
		h, err := s.resolveKey(context.Background(), st, pub.host)
		if err != nil || h.tlsID != pub.id {
			s.pool.retirePublicIf(pub)
		}
	}
}

// retired reports a retired entry.
func (s *Selector) retired(e *poolEntry) {
	s.event(Event{Kind: PoolRetired, Host: e.key.host.String(), CertificateID: e.route.target.certID})
}
