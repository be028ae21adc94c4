package mtls

import (
	"crypto/tls"
	"sync/atomic"
)

// Session caches (semantics §4, §6): a session is resumed only by the TLS
// identity of the handshake that made it. crypto/tls stores a session
// (Put) after the handshake, for TLS 1.3 when the ticket arrives, with
// nothing that says which handshake made it; so a cache holds the sessions
// of one identity, and takes them only while that identity is certain.

// poolSessions is the cache of a pool, whose handshakes all have the pool's
// identity: it holds sessions until the selector closes.
type poolSessions struct {
	tls.ClientSessionCache
	closed *atomic.Bool
}

func newPoolSessions(n int, closed *atomic.Bool) tls.ClientSessionCache {
	if n < 0 {
		return nil // resumption is off
	}
	return poolSessions{tls.NewLRUClientSessionCache(n), closed}
}

func (c poolSessions) Get(key string) (*tls.ClientSessionState, bool) {
	if c.closed.Load() {
		return nil, false
	}
	return c.ClientSessionCache.Get(key)
}

// configSessions is the cache of a config of TLSConfigFor, whose callbacks
// follow the selector: each handshake may have another identity than the
// one the config was made with. It holds sessions of that identity only,
// and only while every handshake so far has had it: once one has had
// another, a ticket arriving later could be that handshake's, so the cache
// neither takes nor gives a session any more.
type configSessions struct {
	inner   tls.ClientSessionCache
	id      tlsID
	current hopFunc     // the config's: it calls observe
	mixed   atomic.Bool // a handshake has had another identity
}

func newConfigSessions(id tlsID, n int) *configSessions {
	if n < 0 {
		return nil
	}
	return &configSessions{inner: tls.NewLRUClientSessionCache(n), id: id}
}

// observe records the identity a handshake's callback resolved.
func (c *configSessions) observe(h *hop) {
	if c != nil && h.tlsID != c.id {
		c.mixed.Store(true)
	}
}

// holds reports whether the identity is still certain: the current one is
// the cache's, as every earlier handshake's was.
func (c *configSessions) holds() bool {
	_, err := c.current() // observes the identity now
	return err == nil && !c.mixed.Load()
}

func (c *configSessions) Get(key string) (*tls.ClientSessionState, bool) {
	if !c.holds() {
		return nil, false
	}
	return c.inner.Get(key)
}

func (c *configSessions) Put(key string, cs *tls.ClientSessionState) {
	if c.holds() {
		c.inner.Put(key, cs)
	}
}
