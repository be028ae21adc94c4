package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"sync"
	"time"

	"github.com/mtlsgo/mtls/internal/hostmatch"
)

// This file holds a Server's HTTP level (semantics §7): the middleware that
// refuses a request whose Host is not its connection's SNI (421) and, for
// an API with MutualTLS, a client certificate that the API does not accept
// (403), and the verdicts it caches.

// Middleware returns next behind the checks of the API named api, an
// APIPolicy's Name ("" for none: only the checks that apply to every
// request). A request whose Host names another host than the SNI of its
// connection gets 421 Misdirected Request: a client authorised on one
// domain must not reach another domain's API over the same connection. A
// request to an API with MutualTLS whose client certificate is missing,
// does not chain to the API's CAs or is not allowed gets 403 Forbidden
// with a short reason; so does a request for an API the policy does not
// have (after an Update removed it). After Close, requests get 503. The
// verified client is given to next: see [VerifiedClient].
func (s *Server) Middleware(api string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.usable() {
			http.Error(w, "mtls: server closed", http.StatusServiceUnavailable)
			return
		}
		st := s.state.Load()
		if r.TLS != nil && r.TLS.ServerName != "" && !sameHost(r.Host, r.TLS.ServerName) {
			http.Error(w, "mtls: the Host of the request is not the server name of its connection", http.StatusMisdirectedRequest)
			return
		}
		var chain []*x509.Certificate
		sni := ""
		if r.TLS != nil {
			chain, sni = r.TLS.PeerCertificates, r.TLS.ServerName
		}
		verified, err := s.allowed(st, api, sni, r.TLS, chain)
		if err != nil {
			http.Error(w, unprefixed(err).Error(), http.StatusForbidden)
			return
		}
		if verified && len(chain) > 0 {
			c := ClientFromCert(chain[0])
			r = r.WithContext(context.WithValue(r.Context(), clientKey{}, &c))
		}
		next.ServeHTTP(w, r)
	})
}

// allowed is the HTTP level's verdict: the policy's rules, then the API's.
// It reports whether some rules verified the client's certificate: only
// then is it a verified client.
func (s *Server) allowed(st *serverState, api, sni string, conn *tls.ConnectionState, chain []*x509.Certificate) (verified bool, err error) {
	if st.global.active() {
		if err := st.global.check(context.Background(), s.slots, chain, time.Now(), &st.chains, conn); err != nil {
			s.refused(sni, "", chain, err)
			return false, err
		}
		verified = true
	}
	if api == "" {
		return verified, nil
	}
	a := st.apis[api]
	if a == nil {
		err := withReason("unknown_api", errorf("%w: no API %q", ErrClientRefused, api))
		s.refused(sni, api, chain, err)
		return false, err
	}
	if !a.mtls {
		return verified, nil
	}
	if err := a.rules.check(context.Background(), s.slots, chain, time.Now(), &st.chains, conn); err != nil {
		s.refused(sni, api, chain, err)
		return false, err
	}
	return true, nil
}

// sameHost reports whether host, a request's Host with an optional port,
// names the same host as sni.
func sameHost(host, sni string) bool {
	var h, n hostmatch.Host
	if h.Parse(host) != "" || n.Parse(sni) != "" {
		return false
	}
	return h.Name() == n.Name()
}

// chainCache keeps, per connection, the verification of its client's chain
// against client CAs, the costly part of a verdict, so that the requests of
// a keep-alive connection pay for it once. It is part of one policy's
// state; a verification holds until the earliest expiry in the chain it
// verified. The rest of a verdict (validity, the allowlist, an Authorizer)
// runs on every request, so that a removal reaches the next request.
type chainCache struct {
	mu sync.Mutex // guards m
	m  map[chainKey]chainResult
}

type chainKey struct {
	conn  *tls.ConnectionState // net/http's, one per connection (resumed or not)
	rules *clientRules
}

type chainResult struct {
	err   error
	until time.Time
}

// maxChains bounds a cache; past it, the cache starts again.
const maxChains = 4096

// verify returns the verification of chain by rules for the connection
// conn (nil: not cached), from the cache while it holds.
func (c *chainCache) verify(conn *tls.ConnectionState, rules *clientRules, chain []*x509.Certificate, now time.Time) error {
	if c == nil || conn == nil {
		_, err := rules.verifyChain(chain, now)
		return err
	}
	key := chainKey{conn, rules}
	c.mu.Lock()
	got, ok := c.m[key]
	c.mu.Unlock()
	if ok && now.Before(got.until) {
		return got.err
	}
	until, err := rules.verifyChain(chain, now)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxChains {
		c.m = make(map[chainKey]chainResult)
	}
	c.m[key] = chainResult{err: err, until: until}
	c.mu.Unlock()
	return err
}
