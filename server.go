package mtls

import (
	"cmp"
	"crypto/x509"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlsgo/mtls/internal/hostmatch"
)

// This file holds the client-facing side (semantics §7): a Server's
// policy, how it is checked and installed, and its lifecycle. The TLS
// callbacks are in server_tls.go, the HTTP middleware in server_http.go,
// the verdict on a client certificate in clients.go.

// ServerPolicy is what a [Server] presents to its clients and which client
// certificates it accepts. The zero ServerPolicy presents no certificate
// (every handshake fails) and accepts any client.
//
// Values of Certificates, AllowedClients and APIClients are map values as
// in [Policy]: a store ID, a file path or inline PEM. An allowed store ID
// counts while the store holds it.
type ServerPolicy struct {
	// Certificates maps SNI patterns (see [NewResolver]) to the server
	// certificate presented to clients that ask for a matching name: the
	// chain and its private key. The SNI has no port: a pattern with a port
	// matches on that listener port only. A client that sends no SNI (one
	// that dials an IP address) gets the "*" default. No default and no
	// match: the handshake fails, naming the SNI.
	Certificates Map

	// ClientCAs, when set, makes every handshake present a client
	// certificate that chains to one of these CAs, for client
	// authentication, within VerifyDepth certificates above the leaf.
	// Nil: no CA check at the TLS level.
	ClientCAs *x509.CertPool

	// VerifyDepth is the most intermediate certificates between the
	// client's leaf and a CA of ClientCAs, as nginx's ssl_verify_depth
	// (OpenSSL's verify depth) counts them: neither the leaf nor the
	// trusted CA count. 0 means 1, nginx's default.
	VerifyDepth int

	// AllowedClients, when set, makes every handshake present one of these
	// client certificates (or one Authorize allows). A self-signed
	// certificate listed here passes without ClientCAs; with ClientCAs,
	// both must pass.
	AllowedClients []string

	// Authorize, when set, also allows a client certificate that chains to
	// ClientCAs, which must be set, and that it authorises (by name, SAN or
	// SPIFFE ID). Nil: only AllowedClients allow.
	Authorize Authorizer

	// APIClients are client certificates that every API with MutualTLS
	// accepts, besides its own (Tyk's security.certificates.apis).
	APIClients []string

	// APIs are checked at the HTTP level by [Server.Middleware]. Where TLS
	// cannot tell the API (several APIs share the SNI's domain, or the
	// client sent no SNI), a handshake asks for a client certificate
	// without requiring one; where one API with MutualTLS owns the
	// domain, the handshake requires what it does.
	APIs []APIPolicy
}

// APIPolicy is one API of a [ServerPolicy], checked at the HTTP level.
type APIPolicy struct {
	// Name names the API in [Server.Middleware], in errors and events.
	// Required, and unique within the policy.
	Name string

	// Domain is the host pattern the API answers on, without a port (see
	// [NewResolver]); "" answers on every domain.
	Domain string

	// MutualTLS makes the API require a client certificate: chaining to
	// ClientCAs within VerifyDepth, when ClientCAs is set; and in
	// AllowedClients or the policy's APIClients, or allowed by Authorize,
	// when the API has AllowedClients, Authorize or no ClientCAs (the
	// policy's APIClients widen an API's allowlist, never narrow an API
	// that takes its CAs' clients). False: the API takes any client; only
	// the SNI and Host check applies.
	MutualTLS bool

	AllowedClients []string
	ClientCAs      *x509.CertPool
	VerifyDepth    int // as ServerPolicy.VerifyDepth
	Authorize      Authorizer
}

// Server gives a tls.Config for a listener that presents a certificate per
// SNI and checks client certificates, and a middleware that checks them per
// API. It follows its store and files: a change reaches the next
// handshake. A Server is safe for concurrent use. The zero Server, like a
// nil *Server, is closed: its handshakes fail with [ErrClosed].
type Server struct {
	slots  *slots
	opts   options
	stop   func()
	expiry *expiryWatch // nil without an event hook
	state  atomic.Pointer[serverState]
	closed atomic.Bool
	mu     sync.Mutex // serialises Update and Close
}

// serverState is a ServerPolicy ready for handshakes and requests.
type serverState struct {
	certs     *hostmatch.Table
	certSlots []*certSlot // by pattern of certs
	global    clientRules // the TLS level's, for every handshake
	apis      map[string]*apiState
	domains   *hostmatch.Table // API domains, by pattern: the API group
	groups    [][]*apiState    // APIs by domain pattern of domains
	anyDomain []*apiState      // APIs on every domain
	chains    chainCache
	held      slotSet
	policy    ServerPolicy // as given, for Inventory
}

// apiState is one API ready for requests.
type apiState struct {
	name  string
	mtls  bool
	rules clientRules
}

// NewServer returns the Server of the policy. Certificates and clients
// given as store IDs are read from store, which may be nil when the policy
// names none. NewServer checks every value of the policy as [New] does and
// returns a [*PolicyError] listing every problem; it also refuses an
// Authorize without ClientCAs, an API without a name or with a name
// already used, and an API with MutualTLS that accepts no client. Of the
// options, [WithEventHook] applies.
func NewServer(store CertStore, p ServerPolicy, opts ...Option) (*Server, error) {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	o.expiryWarning = cmp.Or(o.expiryWarning, DefaultExpiryWarning)
	s := &Server{slots: newSlots(store), opts: o}
	if err := s.set(p); err != nil {
		return nil, err
	}
	if n, ok := s.slots.store.(Notifier); ok {
		s.stop = n.Notify(s.slots.invalidate)
	}
	s.expiry = newExpiryWatch(o, s.Inventory)
	s.expiry.check()
	return s, nil
}

func (s *Server) usable() bool { return s != nil && s.slots != nil && !s.closed.Load() }

// Update replaces the server's policy atomically: the next handshake and
// the next request use it; a session made before never resumes a client
// the new policy refuses. Update checks p as [NewServer] does; on error the
// old policy stays.
func (s *Server) Update(p ServerPolicy) error {
	if !s.usable() {
		return ErrClosed
	}
	if err := s.set(p); err != nil {
		return err
	}
	s.expiry.check()
	return nil
}

func (s *Server) set(p ServerPolicy) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	pl, err := compileServer(p)
	if err != nil {
		return err
	}
	if err := policyError(append(pl.problems, s.slots.checkServer(pl, time.Now())...)); err != nil {
		return err
	}
	pl.policy = p
	s.install(pl)
	return nil
}

// Close stops following the store; after it, every handshake fails with
// [ErrClosed] and the middleware answers 503. Close is idempotent and
// returns nil.
func (s *Server) Close() error {
	if s == nil || s.slots == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	if s.stop != nil {
		s.stop()
	}
	s.expiry.close()
	s.slots.mu.Lock()
	s.slots.keep(newSlotSet())
	s.slots.mu.Unlock()
	return nil
}

// event reports e to the hook, if any.
func (s *Server) event(e Event) {
	if fn := s.opts.onEvent; fn != nil {
		fn(e)
	}
}
