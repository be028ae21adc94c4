package mtls

import (
	"cmp"
	"context"
	"crypto/x509"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mtlsgo/mtls/internal/hostmatch"
)

// Policy is what one level says about its upstreams: the gateway level
// (every API), given to [New], or one API's level, given to
// [Selector.ForAPI]. The zero Policy presents no certificate, pins nothing
// and verifies upstreams against the system roots.
//
// A value of either map is a store ID (64 lowercase hex digits, optionally
// behind an organisation prefix of letters and digits, passed to the store
// as written), inline PEM (a value containing "-----BEGIN"), or otherwise a
// file path. A value that looks like an ID or a pin written the wrong way
// (upper case, colons as openssl prints fingerprints, "SHA256//") is an
// error that says what was meant, never a path.
type Policy struct {
	// Certificates maps host patterns (see [NewResolver]) to the client
	// certificate presented to hosts that match: a store ID, a file path or
	// inline PEM holding the chain and its private key. Nil: no client
	// certificates at this level. A host no pattern matches (at either
	// level) gets none.
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

// Selector chooses, for each upstream host, the client certificate to
// present and the keys to trust, and gives transports that do so. A
// Selector made by [New] is the gateway level; [Selector.ForAPI] derives
// API levels from it. A Selector is safe for concurrent use. The zero
// Selector, like a nil *Selector, is closed: it refuses every request with
// [ErrClosed].
type Selector struct {
	c      *core
	parent *Selector // nil at the gateway level
	state  atomic.Pointer[compiled]
	own    atomic.Pointer[Policy] // this level's policy, as last set
	closed atomic.Bool
	pool   *pool
	rt     *roundTripper

	// mu serialises the changes of this selector (set, Close) and guards
	// children. Lock order: a Selector's mu, then slots.mu; a selector
	// never holds two selectors' mu at once.
	mu       sync.Mutex
	children map[*Selector]struct{}
}

// core is what the selectors of one gateway share: the store and the
// slots of the values they map, the options and the plain transport.
type core struct {
	*slots
	stop      func() // stops the store's notifications
	opts      options
	protocols http.Protocols         // of every pool
	plain     *http.Transport        // for http:// requests
	gateway   *Selector              // set once New has set its policy
	expiry    *expiryWatch           // nil without an event hook
	live      map[*Selector]struct{} // selectors not closed; under slots.mu
}

// compiled is a level's policy ready for lookups: both levels merged, and
// the slot of each pattern, by the pattern's index in its table.
type compiled struct {
	certs     *hostmatch.Table
	pins      *hostmatch.Table
	certSlots []*certSlot
	pinSlots  []*pinSlot
	roots     *x509.CertPool
	insecure  bool
}

// New returns the gateway-level Selector for the policy. Certificates and
// pins given as store IDs are read from store, which may be nil when the
// policy names none. New checks the base transport (see
// [WithBaseTransport]) and every value of the policy: it returns an error
// wrapping [ErrInvalidPattern] for a malformed pattern, and a
// [*PolicyError] listing every value that cannot be used now (missing,
// unreadable, expired, without a key, a wrong store secret, a pin that
// does not resolve).
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
	protocols, err := poolProtocols(o.base) // before the first clone of the base
	if err != nil {
		return nil, err
	}
	// A snapshot: a change of the caller's base (or of the process-wide
	// http.DefaultTransport) after New never reaches the pools.
	o.base = o.base.Clone()
	o.expiryWarning = cmp.Or(o.expiryWarning, DefaultExpiryWarning)
	c := &core{slots: newSlots(store), opts: o, protocols: protocols, plain: o.base.Clone(), live: map[*Selector]struct{}{}}
	s := c.newSelector(nil)
	if err := s.set(gateway); err != nil {
		return nil, err
	}
	c.gateway = s
	if n, ok := c.store.(Notifier); ok {
		c.stop = n.Notify(c.changed)
	}
	c.expiry = newExpiryWatch(o, s.Inventory)
	c.expiry.check()
	return s, nil
}

func (c *core) newSelector(parent *Selector) *Selector {
	s := &Selector{c: c, parent: parent, children: map[*Selector]struct{}{}}
	s.pool = newPool(c.opts.maxTransports, s.retired)
	s.rt = &roundTripper{s: s}
	return s
}

// usable reports whether s is a Selector made by New or ForAPI and not
// closed.
func (s *Selector) usable() bool {
	return s != nil && s.c != nil && !s.closed.Load()
}

// ForAPI returns the Selector of one API: api's patterns take precedence
// over the gateway's (see [NewResolver]), its nil RootCAs inherits the
// gateway's, and InsecureSkipVerify set at either level holds. It checks
// api's values as [New] does. The API selector follows the gateway's
// updates until it is closed; close it when the API goes away.
func (s *Selector) ForAPI(api Policy) (*Selector, error) {
	if !s.usable() {
		return nil, ErrClosed
	}
	if s.parent != nil {
		return nil, errorf("ForAPI is called on the gateway-level selector, not on an API's")
	}
	a := s.c.newSelector(s)
	// a is a child before its policy is set: an Update of the gateway that
	// runs meanwhile either comes before a's set, which then reads the new
	// gateway policy, or refreshes a after it.
	s.mu.Lock()
	closed := s.closed.Load()
	if !closed {
		s.children[a] = struct{}{}
	}
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if err := a.set(api); err != nil {
		a.Close()
		return nil, err
	}
	s.c.expiry.check()
	return a, nil
}

// Update replaces the selector's own policy atomically: the next request
// resolves with it, and pools whose TLS identity it changes are retired
// (idle connections are closed before Update returns, busy ones after
// their response). A gateway's update reaches its API selectors. Update
// checks p as [New] does; on error the old policy stays. To rotate a store
// certificate: Add the new one, Update, then Delete the old one.
func (s *Selector) Update(p Policy) error {
	if !s.usable() {
		return ErrClosed
	}
	if err := s.set(p); err != nil {
		return err
	}
	children := s.childList()
	for _, a := range children {
		a.refresh()
	}
	s.sweep()
	for _, a := range children {
		a.sweep()
	}
	s.c.expiry.check()
	return nil
}

func (s *Selector) childList() []*Selector {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.children))
}

// level is the level of the selector's own policy.
func (s *Selector) level() Level {
	if s.parent == nil {
		return LevelGateway
	}
	return LevelAPI
}

// maps returns the API and the gateway policy to compile with own, this
// selector's policy.
func (s *Selector) maps(own Policy) (api, gw Policy) {
	if s.parent == nil {
		return Policy{}, own
	}
	if p := s.parent.own.Load(); p != nil {
		gw = *p
	}
	return own, gw
}

// set compiles, checks and installs p as this selector's own policy.
func (s *Selector) set(p Policy) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	api, gw := s.maps(p)
	pl, problems, err := compile(api, gw)
	if err != nil {
		return err
	}
	if err := policyError(append(problems, s.c.check(pl, s.level())...)); err != nil {
		return err
	}
	s.c.install(s, pl)
	s.own.Store(&p)
	return nil
}

// refresh recompiles an API selector with its own policy and the gateway's
// current one, after the gateway's update. Both were checked when they were
// set, so it is not checked again. An API selector whose first set has not
// run yet is left alone: that set reads the gateway's policy itself.
func (s *Selector) refresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	own := s.own.Load()
	if s.closed.Load() || own == nil {
		return
	}
	api, gw := s.maps(*own)
	if pl, problems, err := compile(api, gw); err == nil && len(problems) == 0 {
		s.c.install(s, pl)
	}
}

// install makes pl the state of s, with the gateway's slot of each value.
func (c *core) install(s *Selector, pl *plan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &compiled{certs: pl.certs, pins: pl.pins, roots: pl.roots, insecure: pl.insecure}
	for _, src := range pl.certSrcs {
		st.certSlots = append(st.certSlots, c.certSlot(src))
	}
	for i, items := range pl.pinItems {
		st.pinSlots = append(st.pinSlots, c.pinSlot(pl.pins.Patterns()[i].Value, items))
	}
	s.state.Store(st)
	c.live[s] = struct{}{}
	c.prune()
}

// prune forgets the certificates and pins that no live selector maps any
// more. slots.mu is held.
func (c *core) prune() {
	keep := newSlotSet()
	for s := range c.live {
		st := s.state.Load()
		for _, slot := range st.certSlots {
			keep.certs[slot] = true
		}
		for _, slot := range st.pinSlots {
			keep.pins[slot] = true
		}
	}
	c.keep(keep)
}

// changed is the store's notification: the entry id was added, replaced or
// deleted. Certificates and pins that name it are read again, and pools
// whose identity changes are retired before the store's call returns.
func (c *core) changed(id string) {
	c.invalidate(id)
	gw := c.gateway
	gw.sweep()
	for _, a := range gw.childList() {
		a.sweep()
	}
}

// Close retires the selector's pools; closing the gateway-level selector
// also closes the API selectors derived from it and stops following the
// store. After Close, every request, transport and config of the selector
// fails with [ErrClosed] and no handshake presents a certificate. Close is
// idempotent and returns nil.
func (s *Selector) Close() error {
	if s == nil || s.c == nil {
		return nil
	}
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return nil
	}
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
	} else {
		if s.c.stop != nil {
			s.c.stop()
		}
		s.c.expiry.close()
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

// event reports e to the hook, if any.
func (s *Selector) event(e Event) {
	if fn := s.c.opts.onEvent; fn != nil {
		fn(e)
	}
}

// ctxOrBackground returns ctx, or the background context for a nil one.
func ctxOrBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}
