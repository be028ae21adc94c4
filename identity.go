package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"strings"
	"time"

	"github.com/mtlsgo/mtls/internal/hostmatch"
)

// This file holds the TLS identity of a connection (semantics §1, §3):
// what a host resolves to, from memory, for each request.

// tlsID is the TLS identity of one TLS connection: connections are pooled
// per identity, and a session is resumed only by the identity that made it.
type tlsID struct {
	host     hostKey
	certID   string   // "" when no client certificate is presented
	chain    [32]byte // SHA-256 of the chain presented with it
	pins     string   // "" when the host is not pinned
	roots    *x509.CertPool
	insecure bool
}

// hop is a host's TLS identity now, with what it takes to act on it.
type hop struct {
	tlsID
	cert    *tls.Certificate // nil: none is presented
	pins    *pinState        // nil: the host is not pinned
	pattern int              // the index of the certificate's pattern; -1: none
}

// identity is what a pool is made for: the identity of its host and, when
// it reaches the host through an https proxy, the proxy's URL and identity
// (a proxy is a host of its own).
type identity struct {
	target tlsID
	proxy  string
	via    tlsID
}

// route is what one request resolves to: its host's hop and, through an
// https proxy, the proxy's.
type route struct {
	target   hop
	proxyURL *url.URL // nil: direct, or through a plain http:// proxy
	proxy    hop      // set when proxyURL is an https proxy
}

func (r *route) identity() identity {
	id := identity{target: r.target.tlsID}
	if r.proxyURL != nil {
		id.proxy, id.via = r.proxyURL.String(), r.proxy.tlsID
	}
	return id
}

// resolveHop works out the TLS identity of host from memory, failing closed
// when the host's certificate cannot be presented. It reads a store only
// after a change notification (or always, for a store without them) and a
// file only when its version changed. With report set, a refusal is an
// event.
func (s *Selector) resolveHop(ctx context.Context, st *compiled, h *requestHost, report bool) (hop, error) {
	r := hop{tlsID: tlsID{host: h.key, roots: st.roots, insecure: st.insecure}, pattern: -1}
	if i := st.certs.Find(&h.parsed, h.key.port); i >= 0 {
		r.pattern = i
		cs, err := s.c.certificate(ctx, st.certSlots[i], time.Now())
		if err != nil {
			return r, s.refuse(st.certs.Patterns()[i], h.key, err, report)
		}
		r.certID, r.chain, r.cert = cs.id, cs.chain, cs.cert
	}
	if i := st.pins.Find(&h.parsed, h.key.port); i >= 0 {
		r.pins = s.c.pinSet(ctx, st.pinSlots[i])
		r.tlsID.pins = r.pins.key
	}
	return r, nil
}

// resolveKey is resolveHop for a normalised host.
func (s *Selector) resolveKey(ctx context.Context, st *compiled, key hostKey) (hop, error) {
	var h requestHost
	if err := parseRequestHost(key.String(), &h); err != nil {
		return hop{}, err // a normalised host always parses
	}
	return s.resolveHop(ctx, st, &h, false)
}

// refuse returns the error of a mapping that fails closed, reporting it as
// an event when report is set.
func (s *Selector) refuse(p hostmatch.Pattern, host hostKey, err error, report bool) error {
	if strings.Contains(err.Error(), name(p.Value)) {
		err = errorf("host %s: client certificate: %w", host, err) // the cause names the value
	} else {
		err = errorf("host %s: client certificate %s: %w", host, describe(p.Value), err)
	}
	if report {
		s.event(Event{Kind: FailedClosed, Host: host.String(), Level: Level(p.Level), Pattern: p.Text,
			Value: name(p.Value), Err: err, Reason: reasonOf(err)})
	}
	return err
}
