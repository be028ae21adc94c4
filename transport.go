package mtls

import (
	"context"
	"io"
	"net/http"
)

// This file holds what a request meets first (semantics §3, §6): the
// RoundTripper, which resolves the request's route and sends it through the
// pool of its TLS identity, and the pools' making.

// RoundTripper returns the selector's one shared http.RoundTripper, for
// httputil.ReverseProxy or http.Client. It resolves every https request's
// host again, fails closed before any connection when the host's
// certificate cannot be presented, and sends the request through the pool
// of the host's TLS identity. http:// requests go through a plain clone of
// the base transport, untouched. It also has CloseIdleConnections. After
// Close, and for the zero Selector, it fails every request with
// [ErrClosed].
func (s *Selector) RoundTripper() http.RoundTripper {
	if s == nil || s.rt == nil {
		return &roundTripper{}
	}
	return s.rt
}

type roundTripper struct{ s *Selector }

// RoundTrip implements http.RoundTripper.
func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	s := rt.s
	switch {
	case req.URL == nil:
		closeBody(req)
		return nil, errorf("request has no URL")
	case !s.usable():
		closeBody(req)
		return nil, ErrClosed
	case req.URL.Scheme != "https":
		return s.plainRoundTrip(req)
	}
	e, err := s.entryFor(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	return e.roundTrip(req)
}

// Trace is what the RoundTripper chose for one request, for logs: give a
// request's context one with [WithTrace], and the RoundTripper fills it in
// before it sends the request.
type Trace struct {
	Host          string // the host, normalised as host:port
	CertificateID string // the client certificate presented; "" for none
	Pattern       string // the pattern of Policy.Certificates that chose it
	Level         Level  // and its level
	Proxy         string // the proxy the request goes through; "" for none
}

type traceKey struct{}

// WithTrace returns ctx carrying t, which the RoundTripper of a Selector
// fills in for a request made with it. It costs a request that carries no
// Trace nothing.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// trace fills the Trace of req, if any, with the route that state st
// resolved for it.
func trace(req *http.Request, st *compiled, r *route) {
	t, ok := req.Context().Value(traceKey{}).(*Trace)
	if !ok || t == nil {
		return
	}
	*t = Trace{Host: r.target.host.String(), CertificateID: r.target.certID}
	if r.proxyURL != nil {
		t.Proxy = r.proxyURL.String()
	}
	if i := r.target.pattern; i >= 0 {
		p := st.certs.Patterns()[i]
		t.Pattern, t.Level = p.Text, Level(p.Level)
	}
}

// CloseIdleConnections closes the idle connections of every pool.
func (rt *roundTripper) CloseIdleConnections() {
	if rt.s.usable() {
		rt.s.pool.closeIdle()
		rt.s.c.plain.CloseIdleConnections()
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// entryFor returns the pool of req's route now: its host's TLS identity
// and, through an https proxy, the proxy's.
func (s *Selector) entryFor(req *http.Request) (*poolEntry, error) {
	var h requestHost
	if err := parseRequestHost(req.URL.Host, &h); err != nil {
		return nil, err
	}
	seen := s.pool.sweeps.Load() // before the state is read: see pool.sweeps
	st := s.state.Load()
	target, err := s.resolveHop(req.Context(), st, &h, true)
	if err != nil {
		return nil, err
	}
	r := route{target: target}
	if r.proxyURL, err = s.proxyFor(req); err != nil {
		return nil, err
	}
	if err := s.resolveProxy(req.Context(), st, &r); err != nil {
		return nil, err
	}
	trace(req, st, &r)
	key := poolKey{host: h.key}
	if r.proxyURL != nil {
		key.proxy = r.proxyURL.String()
	}
	return s.pool.get(key, r.identity(), seen, func() *poolEntry { return s.newEntry(key, &r) })
}

// plainRoundTrip sends an http:// request through a plain clone of the
// base, or, through an https:// proxy, through the pool of the proxy,
// whose connection to the proxy is a TLS connection of the proxy's own
// host (a proxy is a host of its own, whatever the request's scheme).
func (s *Selector) plainRoundTrip(req *http.Request) (*http.Response, error) {
	seen := s.pool.sweeps.Load()
	proxy, err := s.proxyFor(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	if proxy == nil || proxy.Scheme != "https" {
		return s.c.plain.RoundTrip(req)
	}
	r := route{proxyURL: proxy} // no TLS to the target
	if err := s.resolveProxy(req.Context(), s.state.Load(), &r); err != nil {
		closeBody(req)
		return nil, err
	}
	key := poolKey{proxy: proxy.String()}
	e, err := s.pool.get(key, r.identity(), seen, func() *poolEntry { return s.newEntry(key, &r) })
	if err != nil {
		closeBody(req)
		return nil, err
	}
	return e.roundTrip(req)
}

// reroute resolves a pool's route again, as it is now. The pool of plain
// requests through a proxy has no target hop.
func (s *Selector) reroute(st *compiled, old *route) (route, error) {
	ctx := context.Background()
	r := route{proxyURL: old.proxyURL}
	if old.target.host != (hostKey{}) {
		var err error
		if r.target, err = s.resolveKey(ctx, st, old.target.host); err != nil {
			return route{}, err
		}
	}
	return r, s.resolveProxy(ctx, st, &r)
}

// newEntry makes the pool of r: a transport whose TLS config presents and
// checks r's target hop as it is, whatever changes later (a change makes a
// new pool), and refuses after Close.
func (s *Selector) newEntry(key poolKey, r *route) *poolEntry {
	e := &poolEntry{key: key, id: r.identity(), route: *r}
	target := &e.route.target
	cfg := s.clientConfig(target, s.fixed(target), newPoolSessions(s.c.opts.sessionCache, &s.closed))
	var dialTLS dialFunc
	if r.proxyURL != nil && r.proxyURL.Scheme == "https" {
		proxy := &e.route.proxy
		pcfg := s.clientConfig(proxy, s.fixed(proxy), nil)
		pcfg.ServerName = proxy.host.name
		dialTLS = s.dialProxyTLS(pcfg)
	}
	e.t = s.c.poolTransport(cfg, r.proxyURL, dialTLS)
	return e
}

// fixed returns the hopFunc of a pool's hop: h, until the selector closes.
func (s *Selector) fixed(h *hop) hopFunc {
	return func() (*hop, error) {
		if s.closed.Load() {
			return nil, ErrClosed
		}
		return h, nil
	}
}

// roundTrip sends req through the entry's transport.
func (e *poolEntry) roundTrip(req *http.Request) (*http.Response, error) {
	resp, err := e.t.RoundTrip(req)
	// A request that took its pool just before the pool retired may have
	// put a connection back; close it now, or when the body ends.
	e.closeIfRetired()
	if err != nil {
		return nil, err
	}
	if resp.ProtoMajor == 2 && resp.Body != nil {
		resp.Body = &retiringBody{ReadCloser: resp.Body, e: e}
	}
	return resp, nil
}

// retiringBody closes the HTTP/2 connection under a response body of a
// retired pool once the body is done. (An HTTP/1 connection needs none: once
// its transport's CloseIdleConnections ran, net/http closes the connections
// that go idle later.)
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
