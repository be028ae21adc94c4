package mtls

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
)

// TransportFor's transports (semantics §3): one *http.Transport per host
// while the host's identity holds, which checks every request, over HTTP/1
// and HTTP/2 alike. net/http calls a transport's Proxy hook only for
// requests that open or take a connection of its own; a request served by
// a cached HTTP/2 connection skips it. So the transport given out makes no
// connection of its own for https: its https (and http) requests go to its
// registered protocol, which checks them and sends them through the
// selector's pools. Only WebSocket upgrades, which net/http keeps on
// HTTP/1 connections of the transport itself, go past the registered
// protocol; its Proxy hook checks those.

// TransportFor returns the transport of host's current TLS identity: the
// same *http.Transport for the same normalised host while that identity
// holds. It fails closed like [Selector.RoundTripper]. The transport checks
// every request: it refuses requests for other hosts, http:// requests,
// requests made after host's identity changed (call TransportFor again
// then) and, after Close, every request, with [ErrClosed]. Its own
// connections, for WebSocket upgrades, go to host only, never through a
// proxy; its TLSClientConfig names host and fails once host's identity
// changed. Prefer RoundTripper, which follows changes by itself.
func (s *Selector) TransportFor(host string) (*http.Transport, error) {
	if !s.usable() {
		return nil, ErrClosed
	}
	var h requestHost
	if err := parseRequestHost(host, &h); err != nil {
		return nil, err
	}
	target, err := s.resolveHop(context.Background(), s.state.Load(), &h, true)
	if err != nil {
		return nil, err
	}
	pub, err := s.pool.public(h.key, target.tlsID, func() *publicTransport { return s.newPublic(&target) })
	if err != nil {
		return nil, err
	}
	return pub.t, nil
}

// publicTransport is a transport TransportFor gives out, for one host and
// identity.
type publicTransport struct {
	s       *Selector
	host    hostKey
	id      tlsID
	t       *http.Transport
	used    atomic.Uint64
	retired atomic.Bool
}

// registered is what publicTransport registers with its transport. Its one
// exported field that has CloseIdleConnections makes net/http take it for
// an HTTP/2 transport of golang.org/x/net/http2's, so that the transport's
// CloseIdleConnections reaches the pools it sends requests through.
type registered struct{ P *publicTransport }

func (r registered) RoundTrip(req *http.Request) (*http.Response, error) { return r.P.roundTrip(req) }

// newPublic makes the transport of target's host and identity.
func (s *Selector) newPublic(target *hop) *publicTransport {
	p := &publicTransport{s: s, host: target.host, id: target.tlsID}
	// The config follows the host, and fails once its identity changed: it
	// may be taken from the transport and used on its own (by a WebSocket
	// dialer, say). It names the host, so that no other host verifies.
	cfg := s.clientConfig(target, p.current, newPoolSessions(s.c.opts.sessionCache, &s.closed))
	cfg.NextProtos = []string{"http/1.1"}
	cfg.ServerName = target.host.name
	t := s.c.opts.base.Clone()
	t.DialContext = p.dial(t.DialContext)
	t.TLSClientConfig = cfg
	t.TLSNextProto = nil
	var http1 http.Protocols
	http1.SetHTTP1(true)
	t.Protocols = &http1 // its own connections carry WebSocket upgrades only
	t.Proxy = p.upgradeProxy
	t.RegisterProtocol("https", registered{p})
	t.RegisterProtocol("http", registered{p})
	p.t = t
	return p
}

// check refuses a request the transport must not send.
func (p *publicTransport) check(req *http.Request) error {
	switch {
	case !p.s.usable():
		return ErrClosed
	case req.URL.Scheme != "https":
		return errorf("the transport for %s carries https requests only, not %s: use RoundTripper", p.host, req.URL.Scheme)
	}
	var h requestHost
	if err := parseRequestHost(req.URL.Host, &h); err != nil || h.key != p.host {
		return errorf("the transport for %s refuses a request for %s", p.host, quotePattern(req.URL.Host))
	}
	if p.retired.Load() {
		return p.changed()
	}
	return nil
}

func (p *publicTransport) changed() error {
	return errorf("the TLS identity of %s changed: get a new transport from TransportFor", p.host)
}

// roundTrip checks req and sends it through the pool of its route, which
// must still have the transport's identity.
func (p *publicTransport) roundTrip(req *http.Request) (*http.Response, error) {
	if err := p.check(req); err != nil {
		closeBody(req)
		return nil, err
	}
	e, err := p.s.entryFor(req)
	if err == nil && e.id.target != p.id {
		p.s.pool.retirePublicIf(p)
		err = p.changed()
	}
	if err != nil {
		closeBody(req)
		return nil, err
	}
	return e.roundTrip(req)
}

// current is the hop of the transport's TLS config: the host's, while its
// identity is the transport's.
func (p *publicTransport) current() (*hop, error) {
	if !p.s.usable() {
		return nil, ErrClosed
	}
	h, err := p.s.resolveKey(context.Background(), p.s.state.Load(), p.host)
	if err != nil {
		return nil, err
	}
	if h.tlsID != p.id {
		return nil, p.changed()
	}
	return &h, nil
}

// dial is the DialContext of the transport's own connections: to its host,
// never another address (net/http's NewClientConn names the address
// itself).
func (p *publicTransport) dial(dial dialFunc) dialFunc {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var h requestHost
		if err := parseRequestHost(addr, &h); err != nil || h.key != p.host {
			return nil, errorf("the transport for %s refuses to connect to %s", p.host, quotePattern(addr))
		}
		return dial(ctx, network, addr)
	}
}

// upgradeProxy is the Proxy hook of the transport, which net/http calls
// for the requests it sends itself: WebSocket upgrades.
func (p *publicTransport) upgradeProxy(req *http.Request) (*url.URL, error) {
	if err := p.check(req); err != nil {
		return nil, err
	}
	h, err := p.s.resolveKey(req.Context(), p.s.state.Load(), p.host)
	if err != nil {
		return nil, err
	}
	if h.tlsID != p.id {
		p.s.pool.retirePublicIf(p)
		return nil, p.changed()
	}
	proxy, err := p.s.proxyFor(req)
	if err == nil && proxy != nil {
		err = errorf("a WebSocket upgrade through a proxy is not supported by TransportFor's transport: use RoundTripper")
	}
	return nil, err
}

// CloseIdleConnections closes the idle connections of the pools of the
// transport's host. net/http calls it from the transport's own.
func (p *publicTransport) CloseIdleConnections() {
	es, _ := p.s.pool.snapshot()
	for _, e := range es {
		if e.key.host == p.host {
			e.t.CloseIdleConnections()
		}
	}
}
