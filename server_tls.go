package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/mtlsgo/mtls/internal/hostmatch"
)

// This file holds a Server's handshakes (semantics §7): the server
// certificate per SNI, whether a handshake asks for a client certificate,
// and the TLS level's verdict on it, which also runs on resumed sessions,
// so that a session made before a change never resumes a client refused
// after it.

// TLSConfig returns a tls.Config for http.Server.TLSConfig or tls.Listen:
// it presents the certificate of each handshake's SNI, asks for a client
// certificate where the policy needs one (requiring it where the TLS level
// can tell), and checks it. Its callbacks consult the server's policy at
// each handshake. Set NextProtos, versions or session settings on it
// before use; http.Server adds "h2" and "http/1.1". Each call returns a new
// config.
func (s *Server) TLSConfig() *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	cfg.GetCertificate = s.getCertificate
	cfg.VerifyConnection = s.verifyConnection
	modes := &clientModes{outer: cfg}
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if !s.usable() {
			return nil, ErrClosed
		}
		return modes.config(s.state.Load().asks(hello.ServerName)), nil
	}
	return cfg
}

// clientModes are the configs a handshake may get: the outer one, which
// asks for no client certificate, and its clone that asks for one. The
// clone is made at the first handshake that needs it, once http.Server has
// set the outer config's NextProtos.
type clientModes struct {
	outer *tls.Config
	once  sync.Once
	ask   *tls.Config
}

func (m *clientModes) config(ask bool) *tls.Config {
	if !ask {
		return nil // the outer config
	}
	m.once.Do(func() {
		m.ask = m.outer.Clone()
		m.ask.GetConfigForClient = nil
		m.ask.ClientAuth = tls.RequestClientCert
		if len(m.ask.NextProtos) > 0 && !slices.Contains(m.ask.NextProtos, "http/1.1") {
			m.ask.NextProtos = append(m.ask.NextProtos, "http/1.1") // as http.Server adds to its own clone
		}
	})
	return m.ask
}

// getCertificate returns the certificate of the handshake's SNI, on the
// listener's port: the "*" default when the client sent none.
func (s *Server) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if !s.usable() {
		return nil, ErrClosed
	}
	st := s.state.Load()
	port := localPort(hello.Conn)
	i := st.certs.Default()
	var h hostmatch.Host
	if hello.ServerName != "" {
		if h.Parse(hello.ServerName) != "" {
			return nil, errorf("no server certificate for the SNI %s: not a host name", quotePattern(hello.ServerName))
		}
		i = st.certs.Find(&h, port)
	}
	if i < 0 {
		return nil, errorf("no server certificate for the SNI %s on port %d", quotePattern(hello.ServerName), port)
	}
	cs, err := s.slots.certificate(context.Background(), st.certSlots[i], time.Now())
	if err != nil {
		p := st.certs.Patterns()[i]
		err = errorf("SNI %s: server certificate %s: %w", quotePattern(hello.ServerName), describe(p.Value), err)
		s.event(Event{Kind: FailedClosed, Host: hello.ServerName, Pattern: p.Text, Value: name(p.Value), Err: err, Reason: reasonOf(err)})
		return nil, err
	}
	if s.opts.onEvent != nil {
		s.event(Event{Kind: ServerCertificateChosen, Host: hello.ServerName, CertificateID: cs.id})
	}
	return cs.cert, nil
}

// localPort returns the port the connection was accepted on, or 443 when
// it is not known.
func localPort(c net.Conn) uint16 {
	if c != nil {
		if a, ok := c.LocalAddr().(*net.TCPAddr); ok && a.Port > 0 {
			return uint16(a.Port)
		}
	}
	return 443
}

// verifyConnection is the TLS level's verdict on the client, on full and
// resumed handshakes alike: the policy's rules, and those of the one API
// that owns the SNI's domain, if one does.
func (s *Server) verifyConnection(cs tls.ConnectionState) error {
	if !s.usable() {
		return ErrClosed
	}
	st := s.state.Load()
	chain := cs.PeerCertificates
	rules := []*clientRules{&st.global}
	api := ""
	if owner := st.owner(cs.ServerName); owner != nil {
		rules, api = append(rules, &owner.rules), owner.name
	}
	for _, r := range rules {
		if !r.active() {
			continue
		}
		// Not from the verdict cache: every handshake has certificates of
		// its own, which no later request would find there.
		if err := r.check(context.Background(), s.slots, chain, time.Now(), nil, nil); err != nil {
			s.refused(cs.ServerName, api, chain, err)
			return err
		}
	}
	return nil
}

// asks reports whether a handshake for sni asks for a client certificate:
// when the policy's rules do, or an API with MutualTLS may answer on the
// domain.
func (st *serverState) asks(sni string) bool {
	if st.global.active() {
		return true
	}
	mtls := func(a *apiState) bool { return a.mtls }
	if sni == "" { // any API may be the one asked for
		return slices.ContainsFunc(st.groups, func(g []*apiState) bool { return slices.ContainsFunc(g, mtls) }) ||
			slices.ContainsFunc(st.anyDomain, mtls)
	}
	return slices.ContainsFunc(st.apisOn(sni), mtls) || slices.ContainsFunc(st.anyDomain, mtls)
}

// apisOn returns the APIs whose domain pattern is the one that sni
// matches, without those on every domain.
func (st *serverState) apisOn(sni string) []*apiState {
	var h hostmatch.Host
	if sni == "" || h.Parse(sni) != "" {
		return nil
	}
	if i := st.domains.Find(&h, 0); i >= 0 {
		return st.groups[i]
	}
	return nil
}

// owner returns the API with MutualTLS that alone answers on sni's domain
// (an API on every domain answers on it too), or nil: the TLS level then
// enforces its rules too. A handshake without SNI has no owner.
func (st *serverState) owner(sni string) *apiState {
	if sni == "" {
		return nil
	}
	on := st.apisOn(sni)
	var only *apiState
	switch {
	case len(on) == 1 && len(st.anyDomain) == 0:
		only = on[0]
	case len(on) == 0 && len(st.anyDomain) == 1:
		only = st.anyDomain[0]
	}
	if only == nil || !only.mtls {
		return nil
	}
	return only
}

// refused reports a client refused.
func (s *Server) refused(sni, api string, chain []*x509.Certificate, err error) {
	e := Event{Kind: ClientRefused, Host: sni, API: api, Err: err, Reason: reasonOf(err)}
	if len(chain) > 0 {
		e.CertificateID = Fingerprint(chain[0].Raw)
	}
	s.event(e)
}
