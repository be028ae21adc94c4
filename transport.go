package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds what a request meets (semantics §3, §4, §6): the TLS
// identity of a host, the pools of connections kept per identity, the
// tls.Config that presents the certificate and checks the pins, and the
// RoundTripper in front of them.

// hostKey is a normalised host: the name (an IPv6 literal without
// brackets) and the port.
type hostKey struct {
	name string
	port uint16
}

func (h hostKey) String() string { return net.JoinHostPort(h.name, strconv.Itoa(int(h.port))) }

// identity is the TLS identity of a connection: connections are pooled per
// identity, and a session is resumed only by the identity that made it.
type identity struct {
	host     hostKey
	certID   string   // "" when no client certificate is presented
	chain    [32]byte // SHA-256 of the chain presented with it
	pins     string   // "" when the host is not pinned
	roots    *x509.CertPool
	insecure bool
}

// resolved is a host's identity now, with what it takes to act on it.
type resolved struct {
	identity
	cert *tls.Certificate // nil: none is presented
	pins *pinState        // nil: the host is not pinned
}

// resolve works out the TLS identity of host from memory, failing closed
// when the host's certificate cannot be presented. It reads a store only
// after a change notification (or always, for a store without them) and
// files only when their stamp changed.
func (s *Selector) resolve(ctx context.Context, host hostKey) (resolved, error) {
	var h parsedHost
	if _, err := parseRequestHost(host.name, &h); err != nil {
		return resolved{}, err // not a normalised host: cannot happen
	}
	return s.resolveParsed(ctx, host, &h)
}

// resolveParsed is resolve for a host that parseRequestHost parsed into h.
func (s *Selector) resolveParsed(ctx context.Context, host hostKey, h *parsedHost) (resolved, error) {
	st := s.state.Load()
	r := resolved{identity: identity{host: host, roots: st.roots, insecure: st.insecure}}
	if m, ok := st.certs.lookupParsed(h, host.port); ok {
		cs, err := st.certSlots[m.Value].load(ctx, s.c, time.Now())
		if err != nil {
			return r, fmt.Errorf("mtls: host %s: client certificate %s: %w", host, describe(m.Value), err)
		}
		r.certID, r.chain, r.cert = cs.id, cs.chain, cs.cert
	}
	if m, ok := st.pins.lookupParsed(h, host.port); ok {
		r.pins = st.pinSlots[m.Value].load(ctx, s.c)
		r.identity.pins = r.pins.key
	}
	return r, nil
}

// entryFor returns the pool of host's current identity.
func (s *Selector) entryFor(ctx context.Context, host string) (*poolEntry, error) {
	if s.pool.closed.Load() {
		return nil, errClosed
	}
	var h parsedHost
	key, err := parseRequestHost(host, &h)
	if err != nil {
		return nil, err
	}
	r, err := s.resolveParsed(ctx, key, &h)
	if err != nil {
		return nil, err
	}
	return s.pool.get(&r)
}

// RoundTripper returns the selector's one shared http.RoundTripper, for
// httputil.ReverseProxy or http.Client. It resolves every https request's
// host again, fails closed before any connection when the host's
// certificate cannot be presented, and sends the request through the pool
// of the host's TLS identity. http:// requests go through a plain transport
// untouched. It also has CloseIdleConnections.
func (s *Selector) RoundTripper() http.RoundTripper { return s.rt }

type roundTripper struct{ s *Selector }

// RoundTrip implements http.RoundTripper.
func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("mtls: request has no URL")
	}
	if rt.s.pool.closed.Load() {
		closeBody(req)
		return nil, errClosed
	}
	if req.URL.Scheme != "https" {
		return rt.s.c.plain.RoundTrip(req)
	}
	e, err := rt.s.entryFor(req.Context(), req.URL.Host)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := e.t.RoundTrip(req)
	// A request that took its pool just before the pool retired may have
	// put a connection back; close it now, or when the body ends.
	e.closeIfRetired()
	if err != nil {
		return nil, err
	}
	if resp.Body != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = &retiringBody{ReadCloser: resp.Body, e: e}
	}
	return resp, nil
}

// CloseIdleConnections closes the idle connections of every pool.
func (rt *roundTripper) CloseIdleConnections() {
	rt.s.pool.closeIdle()
	rt.s.c.plain.CloseIdleConnections()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// retiringBody closes the connection under a response body of a retired
// pool once the body is done.
type retiringBody struct {
	io.ReadCloser
	e *poolEntry
}

func (b *retiringBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.e.closeIfRetired()
	}
	return n, err
}

func (b *retiringBody) Close() error {
	err := b.ReadCloser.Close()
	b.e.closeIfRetired()
	return err
}

// TransportFor returns the transport of host's current TLS identity: the
// same *http.Transport for the same normalised host while that identity
// holds. It fails closed like [Selector.RoundTripper]. The transport
// refuses requests for other hosts, and requests made after host's
// identity changed (call TransportFor again then). Prefer RoundTripper,
// which follows changes by itself.
func (s *Selector) TransportFor(host string) (*http.Transport, error) {
	e, err := s.entryFor(context.Background(), host)
	if err != nil {
		return nil, err
	}
	return e.public(), nil
}

// TLSConfigFor returns a client tls.Config for host: it presents host's
// client certificate through GetClientCertificate, verifies the chain
// against the policy's roots and checks host's pins. Its callbacks consult
// the selector's state at each handshake, so a config that a caller holds
// follows store, file and pin changes; a change of RootCAs or
// InsecureSkipVerify fails its handshakes (ask for a new config then).
// It fails closed like [Selector.RoundTripper]. Its NextProtos is empty,
// whatever the base transport's config holds (net/http adds "h2" to the
// default transport's): set the protocols of the client that uses it.
func (s *Selector) TLSConfigFor(host string) (*tls.Config, error) {
	e, err := s.entryFor(context.Background(), host)
	if err != nil {
		return nil, err
	}
	snap := e.r
	current := func() (resolved, error) { return s.resolve(context.Background(), snap.host) }
	var cache tls.ClientSessionCache // nil: resumption is off
	if e.cache != nil {
		cache = guardedCache{e.cache, &snap, current}
	}
	cfg := s.tlsConfig(&snap, current, cache)
	cfg.ServerName = snap.host.name
	cfg.NextProtos = nil
	return cfg, nil
}

// tlsConfig returns the client config of the identity snap. Its callbacks
// act on current(): snap itself for a pooled transport, the selector's
// state at the handshake for TLSConfigFor.
func (s *Selector) tlsConfig(snap *resolved, current func() (resolved, error), cache tls.ClientSessionCache) *tls.Config {
	cfg := &tls.Config{}
	if base := s.c.opts.base.TLSClientConfig; base != nil {
		cfg = base.Clone()
	}
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	cfg.RootCAs = snap.roots
	cfg.InsecureSkipVerify = snap.insecure // pins are still checked below
	cfg.ClientSessionCache = cache
	host := snap.host.String()
	// The chosen certificate is always offered through GetClientCertificate,
	// whatever CAs the server names as acceptable.
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		r, err := current()
		if err != nil {
			return nil, err
		}
		s.event(Event{Kind: CertificateChosen, Host: host, CertificateID: r.certID})
		if r.cert == nil {
			return &tls.Certificate{}, nil
		}
		return r.cert, nil
	}
	cfg.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
		r, err := current()
		if err != nil || r.pins == nil {
			return err
		}
		var leaf *x509.Certificate
		switch {
		case len(chains) > 0 && len(chains[0]) > 0:
			leaf = chains[0][0]
		case len(raw) > 0:
			if leaf, err = x509.ParseCertificate(raw[0]); err != nil {
				return fmt.Errorf("mtls: host %s: leaf certificate: %w", host, err)
			}
		}
		return s.checkPins(host, r.pins, leaf)
	}
	// VerifyConnection also runs on resumed sessions.
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		r, err := current()
		if err != nil {
			return err
		}
		if r.roots != snap.roots || r.insecure != snap.insecure {
			return fmt.Errorf("mtls: host %s: RootCAs or InsecureSkipVerify changed since this config was made", host)
		}
		if cs.DidResume && r.identity != snap.identity {
			return fmt.Errorf("mtls: host %s: the session resumed belongs to an earlier TLS identity", host)
		}
		if r.pins == nil {
			return nil
		}
		var leaf *x509.Certificate
		if len(cs.PeerCertificates) > 0 {
			leaf = cs.PeerCertificates[0]
		}
		return s.checkPins(host, r.pins, leaf)
	}
	return cfg
}

func (s *Selector) checkPins(host string, pins *pinState, leaf *x509.Certificate) error {
	err := pins.verifyLeaf(host, leaf)
	if err != nil {
		s.event(Event{Kind: PinMismatch, Host: host, Err: err})
	}
	return err
}

func (s *Selector) event(e Event) {
	if fn := s.c.opts.onEvent; fn != nil {
		fn(e)
	}
}

// guardedCache keeps the sessions of one TLS identity: it neither gives nor
// takes a session once the host's identity has changed, so a change of
// certificate or pins never resumes an older session.
type guardedCache struct {
	inner   tls.ClientSessionCache
	snap    *resolved
	current func() (resolved, error)
}

func (c guardedCache) holds() bool {
	r, err := c.current()
	return err == nil && r.identity == c.snap.identity
}

func (c guardedCache) Get(key string) (*tls.ClientSessionState, bool) {
	if !c.holds() {
		return nil, false
	}
	return c.inner.Get(key)
}

func (c guardedCache) Put(key string, cs *tls.ClientSessionState) {
	if c.holds() {
		c.inner.Put(key, cs)
	}
}

// pool keeps one poolEntry per host: the transport of the host's current
// identity. It is bounded: past max hosts, the least recently used retires.
type pool struct {
	s      *Selector
	max    int
	clock  atomic.Uint64
	closed atomic.Bool

	mu sync.RWMutex
	m  map[hostKey]*poolEntry
}

func newPool(s *Selector, max int) *pool {
	return &pool{s: s, max: max, m: make(map[hostKey]*poolEntry)}
}

// poolEntry is the connection pool of one TLS identity.
type poolEntry struct {
	r       resolved
	cache   tls.ClientSessionCache // nil: no resumption
	t       *http.Transport        // the RoundTripper's
	used    atomic.Uint64
	retired atomic.Bool

	pubOnce sync.Once
	pub     atomic.Pointer[http.Transport] // TransportFor's, made on first use
	s       *Selector
}

// get returns the entry of r's identity, retiring the host's entry of
// another identity.
func (p *pool) get(r *resolved) (*poolEntry, error) {
	p.mu.RLock()
	e := p.m[r.host]
	p.mu.RUnlock()
	if e == nil || e.r.identity != r.identity {
		var err error
		if e, err = p.replace(r); err != nil {
			return nil, err
		}
	}
	e.used.Store(p.clock.Add(1))
	return e, nil
}

func (p *pool) replace(r *resolved) (*poolEntry, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return nil, errClosed
	}
	old := p.m[r.host]
	if old != nil {
		if old.r.identity == r.identity {
			return old, nil
		}
		p.retire(old)
	}
	e := p.s.newEntry(r)
	p.m[r.host] = e
	if len(p.m) > p.max {
		var lru *poolEntry
		for _, o := range p.m {
			if o != e && (lru == nil || o.used.Load() < lru.used.Load()) {
				lru = o
			}
		}
		p.retire(lru)
	}
	return e, nil
}

// retire removes e from the pool and closes its idle connections; busy
// ones close after their response. p.mu is held.
func (p *pool) retire(e *poolEntry) {
	delete(p.m, e.r.host)
	e.retired.Store(true)
	e.closeIfRetired()
	p.s.event(Event{Kind: PoolRetired, Host: e.r.host.String(), CertificateID: e.r.certID})
}

// retireIf retires e if it is still the host's entry.
func (p *pool) retireIf(e *poolEntry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m[e.r.host] == e {
		p.retire(e)
	}
}

func (p *pool) retireAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed.Store(true)
	for _, e := range p.m {
		p.retire(e)
	}
}

func (p *pool) entries() []*poolEntry {
	p.mu.RLock()
	defer p.mu.RUnlock()
	es := make([]*poolEntry, 0, len(p.m))
	for _, e := range p.m {
		es = append(es, e)
	}
	return es
}

func (p *pool) closeIdle() {
	for _, e := range p.entries() {
		e.closeIdle()
	}
}

// sweep retires the pools whose host's identity is no longer the current
// one, or whose host now fails closed.
func (s *Selector) sweep() {
	for _, e := range s.pool.entries() {
		r, err := s.resolve(context.Background(), e.r.host)
		if err != nil || r.identity != e.r.identity {
			s.pool.retireIf(e)
		}
	}
}

func (e *poolEntry) closeIdle() {
	e.t.CloseIdleConnections()
	if pub := e.pub.Load(); pub != nil {
		pub.CloseIdleConnections()
	}
}

// closeIfRetired closes the idle connections of a retired entry. Once
// closed, an http.Transport also closes the connections that go idle
// later, until its next request.
func (e *poolEntry) closeIfRetired() {
	if e.retired.Load() {
		e.closeIdle()
	}
}

// newEntry makes the pool of r's identity.
func (s *Selector) newEntry(r *resolved) *poolEntry {
	e := &poolEntry{r: *r, s: s}
	if n := s.c.opts.sessionCache; n >= 0 {
		e.cache = tls.NewLRUClientSessionCache(n)
	}
	e.t = s.c.opts.base.Clone()
	fixed := func() (resolved, error) { return e.r, nil }
	e.t.TLSClientConfig = s.tlsConfig(&e.r, fixed, e.cache)
	return e
}

// public returns the transport that TransportFor hands out. Before each
// request it checks that the request is for its host and that the host's
// identity still holds.
func (e *poolEntry) public() *http.Transport {
	e.pubOnce.Do(func() {
		t := e.t.Clone()
		baseProxy := t.Proxy
		s, want := e.s, e.r.host
		t.Proxy = func(req *http.Request) (*url.URL, error) {
			name, port, err := normalizeHost(req.URL.Host)
			if err != nil || (hostKey{name, port}) != want {
				return nil, fmt.Errorf("mtls: the transport for %s refuses a request for %q", want, req.URL.Host)
			}
			r, err := s.resolve(req.Context(), want)
			if err != nil {
				return nil, err
			}
			if r.identity != e.r.identity {
				s.pool.get(&r) // retires this entry
				return nil, fmt.Errorf("mtls: the TLS identity of %s changed; get a new transport from TransportFor", want)
			}
			if baseProxy != nil {
				return baseProxy(req)
			}
			return nil, nil
		}
		e.pub.Store(t)
	})
	return e.pub.Load()
}
