package mtls

import (
	"net/http"
	"time"
)

// Option configures a [Selector] made by [New].
type Option func(*options)

type options struct {
	base          *http.Transport
	maxTransports int
	sessionCache  int
	onEvent       func(Event)
	expiryWarning time.Duration
}

// DefaultMaxTransports is the default bound of a Selector's transport cache:
// how many upstream hosts keep a pool of connections at once.
const DefaultMaxTransports = 1024

// DefaultSessionCacheSize is the default number of TLS sessions kept for
// resumption per TLS identity.
const DefaultSessionCacheSize = 64

// DefaultMaxIdleConnsPerHost is how many idle connections a pool keeps when
// the base transport leaves MaxIdleConnsPerHost at zero (net/http's default
// of 2 would make most requests of a loaded proxy a new handshake). A base's
// own setting wins.
const DefaultMaxIdleConnsPerHost = 100

// WithBaseTransport makes every transport a clone of base: its timeouts,
// proxy, dialer, HTTP/2 settings and connection limits apply. New rejects a
// base whose settings would bypass or replace the TLS this package
// configures: DialTLSContext or DialTLS, and a TLSClientConfig that sets
// certificates, roots, verification callbacks, InsecureSkipVerify, a
// session cache, a server name or a clock; versions, cipher suites, curves
// and NextProtos are kept. A pool speaks HTTP/2 when net/http would with
// base (ForceAttemptHTTP2, Protocols, or no custom TLS config or dialer)
// and base's NextProtos, if set, allow "h2"; its TLSNextProto is not used.
// Cloning runs net/http's lazy HTTP/2 set-up on base, as any Clone does.
// Default: a clone of http.DefaultTransport.
func WithBaseTransport(base *http.Transport) Option {
	return func(o *options) { o.base = base }
}

// WithMaxTransports bounds the transport cache: past n hosts, the least
// recently used host's pool is retired and its idle connections closed.
// Default [DefaultMaxTransports]; n < 1 keeps the default.
func WithMaxTransports(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxTransports = n
		}
	}
}

// WithSessionCacheSize sets how many TLS sessions are kept for resumption
// per TLS identity; n < 0 turns resumption off. Default
// [DefaultSessionCacheSize].
func WithSessionCacheSize(n int) Option {
	return func(o *options) { o.sessionCache = n }
}

// WithEventHook calls fn on each [Event]. fn runs on the request's, the
// connection's or the change's goroutine: it must be quick and must not
// call the Selector. Default: none.
func WithEventHook(fn func(Event)) Option {
	return func(o *options) { o.onEvent = fn }
}
