// Package mtls decides, for every upstream host a Go proxy talks to, which
// client certificate to present and which server keys to trust, and hands
// back a ready *tls.Config, *http.Transport or http.RoundTripper.
//
// A [Selector] holds a gateway-level [Policy]; [Selector.ForAPI] derives the
// selector of one API, whose patterns take precedence. Policies map host
// patterns (see [NewResolver]) to certificates and pins, which live in a
// [CertStore] ([MemoryStore], [FileStore]), in files, or inline:
//
//	store, _ := mtls.NewFileStore("/var/lib/proxy/certs", secret)
//	sel, _ := mtls.New(store, mtls.Policy{
//		Certificates:     mtls.Map{"*.internal.example.com": clientCertID},
//		PinnedPublicKeys: mtls.Map{"payments.example.com": "sha256//r8udi/Mxd6pLO7y7hZyUMWq8YnFnIWXCqeHsTDRqy8c="},
//	})
//	proxy := &httputil.ReverseProxy{Rewrite: rewrite, Transport: sel.RoundTripper()}
//
// Every request is resolved again, from memory: a host whose certificate
// is missing, expired or has no key fails closed before any connection is
// opened. Connections are pooled per TLS identity (server name, client
// certificate, pins, roots), so one host's certificate is never sent to
// another, and a change of certificate or pins retires the old pool.
// Pins restrict chain verification, never replace it.
//
// The file names say where each rule of the behaviour contract lives:
// resolver.go and wildcard.go (host patterns and precedence), clientcert.go
// (client certificates, fail closed), pinning.go (public key pins),
// store.go, store_memory.go, store_file.go, store_crypt.go (the stores and
// keys at rest), transport.go (TLS identities, pools, tls.Config, the
// RoundTripper), and this file (Policy, options, Selector and its
// lifecycle).
package mtls

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
)

// Errors reported by this package, matched with errors.Is. Errors returned
// by the package wrap one of them where one applies, and name the host,
// pattern or value concerned.
var (
	// ErrNotFound: no certificate, key or file with that ID or path.
	ErrNotFound = errors.New("mtls: not found")
	// ErrPinMismatch: the upstream's leaf key matches none of the host's pins,
	// or the host has no usable pin left.
	ErrPinMismatch = errors.New("mtls: public key pin mismatch")
	// ErrNoPrivateKey: a client certificate was mapped that has no private key.
	ErrNoPrivateKey = errors.New("mtls: certificate has no private key")
	// ErrExpired: a certificate is outside its validity period.
	ErrExpired = errors.New("mtls: certificate expired")
	// ErrInvalidPattern: a host pattern of a Map is malformed.
	ErrInvalidPattern = errors.New("mtls: invalid host pattern")
	// ErrDecrypt: a stored private key could not be decrypted, most often
	// because the store was opened with another secret.
	ErrDecrypt = errors.New("mtls: cannot decrypt private key")
)

// Map maps host patterns to values: certificate references or pin lists.
// See [NewResolver] for the pattern syntax.
type Map map[string]string

// Fingerprint returns the lowercase hex SHA-256 of der, without separators:
// what `openssl x509 -noout -fingerprint -sha256` prints, colons removed.
// It is the ID of a certificate; the ID of a bare public key is the
// Fingerprint of its SubjectPublicKeyInfo DER.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Policy is what one level says about its upstreams: the gateway level
// (every API), given to [New], or one API's level, given to
// [Selector.ForAPI].
//
// Values of both maps may be a store ID (64 lowercase hex digits, optionally
// behind an organisation prefix of letters and digits), inline PEM (a value
// containing "-----BEGIN"), or otherwise a file path.
type Policy struct {
	// Certificates maps host patterns to the client certificate presented
	// to hosts that match: a store ID, a file path or inline PEM holding
	// the chain and its private key. Nil: no client certificates at this
	// level. A host no pattern matches (at either level) gets none.
	Certificates Map

	// PinnedPublicKeys maps host patterns to comma-separated pins: store
	// IDs of certificates or public keys, "sha256//<base64>" (curl's
	// --pinnedpubkey form), file paths or inline PEM. The leaf of a host
	// that matches must carry one of its pins, in addition to chain
	// verification. Nil: no pins at this level.
	PinnedPublicKeys Map

	// InsecureSkipVerify skips chain and hostname verification of the
	// upstream; pins are still enforced. Set at either level, it holds
	// for that API. It is for tests and non-production use only.
	// Default false.
	InsecureSkipVerify bool

	// RootCAs verifies upstream chains. Nil at the API level inherits the
	// gateway's; nil at both uses the system pool.
	RootCAs *x509.CertPool
}

// Option configures a [Selector] made by [New].
type Option func(*options)

type options struct {
	base          *http.Transport
	maxTransports int
	sessionCache  int
	onEvent       func(Event)
}

// DefaultMaxTransports is the default bound of a Selector's transport cache:
// how many upstream hosts keep a pool of connections at once.
const DefaultMaxTransports = 1024

// DefaultSessionCacheSize is the default number of TLS sessions kept for
// resumption per TLS identity.
const DefaultSessionCacheSize = 64

// WithBaseTransport makes every transport a clone of base: its timeouts,
// proxy, dialer, HTTP/2 and connection limits apply. Its TLSClientConfig
// may set versions, cipher suites, curves and protocols, but not
// certificates, roots, verification callbacks or InsecureSkipVerify: those
// come from the Policy, and New rejects a base that sets them.
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

// WithEventHook calls fn on each [Event]. fn runs on the connection's or
// the change's goroutine: it must be quick and must not call the Selector.
// Default: none.
func WithEventHook(fn func(Event)) Option {
	return func(o *options) { o.onEvent = fn }
}

// EventKind says what an [Event] reports.
type EventKind uint8

const (
	// CertificateChosen: a handshake presented the host's client
	// certificate (CertificateID is empty when the host has none).
	CertificateChosen EventKind = iota + 1
	// PinMismatch: an upstream's leaf matched none of its pins (Err says
	// which key it presented).
	PinMismatch
	// PoolRetired: a host's connection pool was retired because its TLS
	// identity changed, the cache bound was reached, or the selector closed.
	PoolRetired
)

// String returns the kind's name.
func (k EventKind) String() string {
	switch k {
	case CertificateChosen:
		return "certificate chosen"
	case PinMismatch:
		return "pin mismatch"
	case PoolRetired:
		return "pool retired"
	}
	return "unknown event"
}

// Event reports something a Selector did, for logs and metrics.
type Event struct {
	Kind          EventKind
	Host          string // normalised host:port
	CertificateID string // the client certificate's ID, if any
	Err           error  // for PinMismatch
}

// Selector chooses, for each upstream host, the client certificate to
// present and the keys to trust, and gives transports that do so. A
// Selector made by [New] is the gateway level; [Selector.ForAPI] derives
// API levels from it. A Selector is safe for concurrent use.
type Selector struct {
	c      *core
	parent *Selector // nil at the gateway level
	state  atomic.Pointer[compiled]
	pool   *pool
	rt     *roundTripper

	mu       sync.Mutex // guards own, children and closed
	own      Policy
	children map[*Selector]struct{}
	closed   bool
}

// core is what the selectors of one gateway share: the store, the options
// and the loaded certificates and pins.
type core struct {
	store     CertStore
	notifying bool
	stop      func()
	opts      options
	plain     *http.Transport // for http:// requests
	gateway   *Selector

	mu    sync.Mutex // guards certs, pins and live, and installs states
	certs map[string]*certSlot
	pins  map[string]*pinSlot
	live  map[*Selector]struct{} // selectors not closed
}

// compiled is a level's policy ready for lookups: both levels merged.
type compiled struct {
	certs     *Resolver
	pins      *Resolver
	certSlots map[string]*certSlot
	pinSlots  map[string]*pinSlot
	roots     *x509.CertPool
	insecure  bool
}

// New returns the gateway-level Selector for the policy. Certificates and
// pins given as store IDs are read from store, which may be nil when the
// policy names none. It fails when a pattern is invalid, when inline PEM
// cannot be parsed, or when a pin cannot be resolved.
//
// If store implements [Notifier], the Selector follows its changes; other
// stores are read on every request that needs them.
func New(store CertStore, gateway Policy, opts ...Option) (*Selector, error) {
	o := options{maxTransports: DefaultMaxTransports, sessionCache: DefaultSessionCacheSize}
	for _, opt := range opts {
		opt(&o)
	}
	if o.base == nil {
		o.base = http.DefaultTransport.(*http.Transport)
	}
	if err := checkBase(o.base); err != nil {
		return nil, err
	}
	c := &core{
		store: store,
		opts:  o,
		plain: o.base.Clone(),
		certs: make(map[string]*certSlot),
		pins:  make(map[string]*pinSlot),
		live:  make(map[*Selector]struct{}),
	}
	s := c.newSelector(nil)
	if err := s.set(gateway); err != nil {
		return nil, err
	}
	c.gateway = s
	if n, ok := store.(Notifier); ok {
		c.notifying = true
		c.stop = n.Notify(c.changed)
	}
	return s, nil
}

func checkBase(base *http.Transport) error {
	tc := base.TLSClientConfig
	if tc == nil {
		return nil
	}
	if len(tc.Certificates) > 0 || tc.GetClientCertificate != nil || tc.RootCAs != nil ||
		tc.InsecureSkipVerify || tc.VerifyPeerCertificate != nil || tc.VerifyConnection != nil ||
		tc.ClientSessionCache != nil || tc.ServerName != "" {
		return errors.New("mtls: the base transport's TLSClientConfig sets certificates, roots, verification, sessions or a server name; set them through the Policy")
	}
	return nil
}

func (c *core) newSelector(parent *Selector) *Selector {
	s := &Selector{c: c, parent: parent, children: make(map[*Selector]struct{})}
	s.pool = newPool(s, c.opts.maxTransports)
	s.rt = &roundTripper{s: s}
	return s
}

// ForAPI returns the Selector of one API: api's patterns take precedence
// over the gateway's (see [NewResolver]), its nil RootCAs inherits the
// gateway's, and InsecureSkipVerify set at either level holds. The API
// selector follows the gateway's updates until it is closed; close it when
// the API goes away.
func (s *Selector) ForAPI(api Policy) (*Selector, error) {
	gw := s.c.gateway
	if s != gw {
		return nil, errors.New("mtls: ForAPI is called on the gateway-level selector")
	}
	a := s.c.newSelector(gw)
	// a is a child before its policy is set: an Update of the gateway that
	// runs meanwhile either comes before a's set, which then reads the new
	// gateway policy, or sets a again itself.
	gw.mu.Lock()
	closed := gw.closed
	if !closed {
		gw.children[a] = struct{}{}
	}
	gw.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	if err := a.set(api); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

var errClosed = errors.New("mtls: selector is closed")

// Update replaces the selector's own policy atomically: the next request
// resolves with it, and pools whose TLS identity it changes are retired
// (idle connections are closed before Update returns, busy ones after
// their response). A gateway's update reaches its API selectors. On error
// the old policy stays. To rotate a store certificate: Add the new one,
// Update, then Delete the old one.
func (s *Selector) Update(p Policy) error {
	if err := s.set(p); err != nil {
		return err
	}
	s.mu.Lock()
	children := slices.Collect(maps.Keys(s.children))
	s.mu.Unlock()
	for _, a := range children {
		a.refresh()
	}
	s.sweep()
	for _, a := range children {
		a.sweep()
	}
	return nil
}

// set compiles p as this selector's own policy and installs it. The pins
// of p are resolved anew: they must resolve when a policy is set.
func (s *Selector) set(p Policy) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	return s.install(p, true)
}

// refresh recompiles an API selector with its own policy and the gateway's
// current one, after the gateway's update. Both were checked when they were
// set, so it cannot fail. An API selector whose first set has not run yet
// is left alone: that set reads the gateway's policy itself.
func (s *Selector) refresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed && s.state.Load() != nil {
		_ = s.install(s.own, false)
	}
}

// install compiles own, this selector's policy, with the gateway's and
// makes it the state. s.mu is held.
func (s *Selector) install(own Policy, resolvePins bool) error {
	api, gw := own, own
	if s.parent != nil {
		s.parent.mu.Lock()
		gw = s.parent.own
		s.parent.mu.Unlock()
	} else {
		api = Policy{}
	}
	var fresh Map
	if resolvePins {
		fresh = own.PinnedPublicKeys
	}
	if err := s.c.compile(s, api, gw, fresh); err != nil {
		return err
	}
	s.own = own
	return nil
}

// compile merges an API policy (empty at the gateway level) with the
// gateway's and installs the result as s's state. The pins of fresh, the map
// being set, are resolved anew: a pin that cannot be resolved when its
// policy is set is an error.
func (c *core) compile(s *Selector, api, gw Policy, fresh Map) error {
	certs, err := NewResolver(api.Certificates, gw.Certificates)
	if err != nil {
		return fmt.Errorf("mtls: Certificates: %w", err)
	}
	pins, err := NewResolver(api.PinnedPublicKeys, gw.PinnedPublicKeys)
	if err != nil {
		return fmt.Errorf("mtls: PinnedPublicKeys: %w", err)
	}
	comp := &compiled{
		certs:     certs,
		pins:      pins,
		certSlots: make(map[string]*certSlot),
		pinSlots:  make(map[string]*pinSlot),
		roots:     cmp.Or(api.RootCAs, gw.RootCAs),
		insecure:  api.InsecureSkipVerify || gw.InsecureSkipVerify,
	}
	freshValues := make(map[string]bool, len(fresh))
	for _, v := range fresh {
		freshValues[v] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range []Map{api.Certificates, gw.Certificates} {
		for _, v := range m {
			slot := c.certs[v]
			if slot == nil {
				slot = newCertSlot(v)
				if err := slot.check(); err != nil {
					return fmt.Errorf("mtls: certificate %s: %w", describe(v), err)
				}
				c.certs[v] = slot
			}
			comp.certSlots[v] = slot
		}
	}
	for _, m := range []Map{api.PinnedPublicKeys, gw.PinnedPublicKeys} {
		for _, v := range m {
			slot := c.pins[v]
			if slot == nil || freshValues[v] {
				parsed, err := newPinSlot(context.Background(), v, c.store)
				if err != nil {
					return err
				}
				if slot == nil {
					slot = parsed
					c.pins[v] = slot
				}
			}
			comp.pinSlots[v] = slot
		}
	}
	s.state.Store(comp)
	c.live[s] = struct{}{}
	c.prune()
	return nil
}

// prune forgets the certificates and pins that no live selector maps any
// more, so that a retired private key does not stay in memory. c.mu is held.
func (c *core) prune() {
	keepCerts := make(map[*certSlot]bool)
	keepPins := make(map[*pinSlot]bool)
	for s := range c.live {
		st := s.state.Load()
		for _, slot := range st.certSlots {
			keepCerts[slot] = true
		}
		for _, slot := range st.pinSlots {
			keepPins[slot] = true
		}
	}
	maps.DeleteFunc(c.certs, func(_ string, slot *certSlot) bool { return !keepCerts[slot] })
	maps.DeleteFunc(c.pins, func(_ string, slot *pinSlot) bool { return !keepPins[slot] })
}

// changed is the store's notification: the entry id was added, replaced or
// deleted. Certificates and pins that name it are read again, and pools
// whose identity changes are retired before the store's call returns.
func (c *core) changed(id string) {
	c.mu.Lock()
	for _, slot := range c.certs {
		if slot.kind == kindStoreID && slot.ref == id {
			slot.invalidate()
		}
	}
	for _, slot := range c.pins {
		for _, item := range slot.items {
			if item.kind == kindStoreID && item.ref == id {
				slot.invalidate()
				break
			}
		}
	}
	c.mu.Unlock()
	gw := c.gateway
	gw.sweep()
	gw.mu.Lock()
	children := slices.Collect(maps.Keys(gw.children))
	gw.mu.Unlock()
	for _, a := range children {
		a.sweep()
	}
}

// Close retires the selector's pools; closing the gateway-level selector
// also closes the API selectors derived from it and stops following the
// store. Requests through a closed selector fail. Close is idempotent.
func (s *Selector) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	children := slices.Collect(maps.Keys(s.children))
	s.children = nil
	s.mu.Unlock()
	for _, a := range children {
		a.Close()
	}
	if s.parent != nil {
		s.parent.mu.Lock()
		delete(s.parent.children, s)
		s.parent.mu.Unlock()
	} else if s.c.stop != nil {
		s.c.stop()
	}
	s.pool.retireAll()
	if s.parent == nil {
		s.c.plain.CloseIdleConnections()
	}
	s.c.mu.Lock()
	delete(s.c.live, s)
	s.c.prune()
	s.c.mu.Unlock()
	return nil
}
