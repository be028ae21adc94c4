package mtls

import (
	"context"
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
		verified, err := s.allowed(st, api, sni, chain)
		if err != nil {
			http.Error(w, unprefixed{err}.Error(), http.StatusForbidden)
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
func (s *Server) allowed(st *serverState, api, sni string, chain []*x509.Certificate) (verified bool, err error) {
	if st.global.active() {
		if err := st.verdicts.check(s.slots, &st.global, chain); err != nil {
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
	if err := st.verdicts.check(s.slots, &a.rules, chain); err != nil {
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

// verdictCache keeps the verdicts on the certificates of connections, so
// that the requests of a keep-alive connection pay for one verdict. It is
// part of one policy's state, and a store change (which may remove a
// client) makes its verdicts stale.
type verdictCache struct {
	mu sync.Mutex // guards m
	m  map[verdictKey]verdict
}

type verdictKey struct {
	leaf  *x509.Certificate // the connection's: net/http keeps it per connection
	rules *clientRules
}

type verdict struct {
	err     error
	changes uint64 // slots.changes when it was made
	until   time.Time
}

// maxVerdicts bounds a cache; past it, the cache starts again.
const maxVerdicts = 4096

// check returns rules' verdict on chain, from the cache when it holds one
// made since the last store change, within the leaf's validity.
func (c *verdictCache) check(v *slots, rules *clientRules, chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return rules.check(context.Background(), v, chain, time.Now())
	}
	now, changes := time.Now(), v.changes.Load()
	key := verdictKey{chain[0], rules}
	c.mu.Lock()
	got, ok := c.m[key]
	c.mu.Unlock()
	if ok && got.changes == changes && now.Before(got.until) {
		return got.err
	}
	err := rules.check(context.Background(), v, chain, now)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxVerdicts {
		c.m = make(map[verdictKey]verdict)
	}
	c.m[key] = verdict{err: err, changes: changes, until: chain[0].NotAfter}
	c.mu.Unlock()
	return err
}
