package mtls

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
)

// A proxy is a host of its own (semantics §3). With an https:// proxy,
// net/http makes the TLS connection to the proxy with the pool's TLS
// config, meant for the target. So a pool that reaches its host through an
// https proxy makes the connection to the proxy itself, in DialTLSContext,
// with the TLS config of the proxy's own host: the certificate the proxy's
// host maps to, or none, verified as that host, with its pins; net/http
// then sends CONNECT over it, and makes the target's TLS connection inside
// with the pool's config. Plain http:// and socks5:// proxies carry the
// target's TLS untouched, as net/http does.

// dialFunc is the type of http.Transport.DialTLSContext.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// proxyFor returns the proxy of req, as the base transport's Proxy says
// (nil: none).
func (s *Selector) proxyFor(req *http.Request) (*url.URL, error) {
	proxy := s.c.opts.base.Proxy
	if proxy == nil {
		return nil, nil
	}
	u, err := proxy(req)
	if err != nil {
		return nil, errorf("the base transport's Proxy: %w", err)
	}
	return u, nil
}

// resolveProxy resolves the hop of an https proxy into r.
func (s *Selector) resolveProxy(ctx context.Context, st *compiled, r *route) error {
	if r.proxyURL == nil || r.proxyURL.Scheme != "https" {
		return nil
	}
	var h requestHost
	if err := parseRequestHost(r.proxyURL.Host, &h); err != nil {
		return errorf("proxy: %w", err)
	}
	var err error
	r.proxy, err = s.resolveHop(ctx, st, &h, true)
	return err
}

// dialProxyTLS returns the DialTLSContext of a pool that goes through an
// https proxy: net/http calls it for the connection to the proxy only. It
// dials with the base transport's dialer and makes the TLS connection with
// cfg, the proxy's, within the base's TLSHandshakeTimeout.
func (s *Selector) dialProxyTLS(cfg *tls.Config) dialFunc {
	base := s.c.opts.base
	dial := base.DialContext
	if dial == nil && base.Dial != nil { //nolint:staticcheck // the base's deprecated dialer is honoured
		dial = func(_ context.Context, network, addr string) (net.Conn, error) { return base.Dial(network, addr) } //nolint:staticcheck
	}
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if base.TLSHandshakeTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, base.TLSHandshakeTimeout)
			defer cancel()
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, errorf("TLS handshake with the proxy %s: %w", addr, err)
		}
		return tc, nil
	}
}
