package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
)

// This file holds the tls.Config of a hop (semantics §3, §4): the callbacks
// that present the client certificate and check the pins, each built by a
// named constructor, and TLSConfigFor.

// hopFunc says what a hop is at a handshake: fixed for a pool, the
// selector's state for a config of TLSConfigFor. It fails after Close.
type hopFunc func() (*hop, error)

// clientConfig returns the client config of the hop snap: it presents the
// hop's client certificate through GetClientCertificate, verifies the chain
// against snap's roots (or not, with InsecureSkipVerify: pins are still
// checked) and checks the hop's pins, with what current says at each
// handshake. Versions, cipher suites and curves come from the base
// transport; NextProtos are the caller's to set.
func (s *Selector) clientConfig(snap *hop, current hopFunc, sessions tls.ClientSessionCache) *tls.Config {
	cfg := &tls.Config{}
	if base := s.c.opts.base.TLSClientConfig; base != nil {
		cfg = base.Clone()
	}
	cfg.NextProtos = nil
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	cfg.RootCAs = snap.roots
	cfg.InsecureSkipVerify = snap.insecure
	cfg.ClientSessionCache = sessions
	host := snap.host.String()
	chosen := func(h *hop) { s.event(Event{Kind: CertificateChosen, Host: host, CertificateID: h.certID}) }
	mismatch := func(err error) { s.event(Event{Kind: PinMismatch, Host: host, Err: err, Reason: "pin_mismatch"}) }
	cfg.GetClientCertificate = getClientCertificate(current, chosen)
	cfg.VerifyPeerCertificate = verifyPeerPins(current, mismatch)
	cfg.VerifyConnection = verifyConnection(snap, current, mismatch)
	return cfg
}

// getClientCertificate returns a GetClientCertificate that presents the
// hop's certificate, or none, whatever CAs the server names as acceptable
// (the Certificates field would send nothing when none matched). It accepts
// a nil request info.
func getClientCertificate(current hopFunc, chosen func(*hop)) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		h, err := current()
		if err != nil {
			return nil, err
		}
		chosen(h)
		if h.cert == nil {
			return &tls.Certificate{}, nil
		}
		return h.cert, nil
	}
}

// verifyPeerPins returns a VerifyPeerCertificate that checks the leaf the
// server sent against the hop's pins, after chain verification.
func verifyPeerPins(current hopFunc, mismatch func(error)) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, chains [][]*x509.Certificate) error {
		h, err := current()
		if err != nil || h.pins == nil {
			return err
		}
		var leaf *x509.Certificate
		switch {
		case len(chains) > 0 && len(chains[0]) > 0:
			leaf = chains[0][0]
		case len(raw) > 0:
			if leaf, err = x509.ParseCertificate(raw[0]); err != nil {
				return errorf("host %s: leaf certificate: %w", h.host, err)
			}
		}
		return checkPins(h, leaf, mismatch)
	}
}

// verifyConnection returns a VerifyConnection, which crypto/tls also runs
// on resumed sessions: it refuses a connection made after the roots or the
// skip-verify flag of snap changed, a session resumed by another identity
// than snap's, and a leaf that matches none of the pins.
func verifyConnection(snap *hop, current hopFunc, mismatch func(error)) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		h, err := current()
		switch {
		case err != nil:
			return err
		case h.roots != snap.roots || h.insecure != snap.insecure:
			return errorf("host %s: RootCAs or InsecureSkipVerify changed since this config was made", snap.host)
		case cs.DidResume && h.tlsID != snap.tlsID:
			return errorf("host %s: the session resumed belongs to an earlier TLS identity", snap.host)
		case h.pins == nil:
			return nil
		}
		var leaf *x509.Certificate
		if len(cs.PeerCertificates) > 0 {
			leaf = cs.PeerCertificates[0]
		}
		return checkPins(h, leaf, mismatch)
	}
}

func checkPins(h *hop, leaf *x509.Certificate, mismatch func(error)) error {
	err := h.pins.verify(h.host.String(), leaf)
	if err != nil {
		mismatch(err)
	}
	return err
}

// TLSConfigFor returns a client tls.Config for host: it presents host's
// client certificate through GetClientCertificate, verifies the chain
// against the policy's roots and checks host's pins. Its callbacks consult
// the selector's state at each handshake, so a config that a caller holds
// follows store, file and pin changes; a change of RootCAs or
// InsecureSkipVerify fails its handshakes (ask for a new config then), and
// so does Close, with [ErrClosed]. Sessions are resumed only while every
// handshake of the config has had the identity it was made with: a config
// held across a change of certificate or pins no longer resumes. It fails
// closed like [Selector.RoundTripper]. Its NextProtos is empty: set the
// protocols of the client that uses it. The config is for host alone.
func (s *Selector) TLSConfigFor(host string) (*tls.Config, error) {
	if !s.usable() {
		return nil, ErrClosed
	}
	var h requestHost
	if err := parseRequestHost(host, &h); err != nil {
		return nil, err
	}
	snap, err := s.resolveHop(context.Background(), s.state.Load(), &h, true)
	if err != nil {
		return nil, err
	}
	sessions := newConfigSessions(snap.tlsID, s.c.opts.sessionCache)
	current := func() (*hop, error) {
		if !s.usable() {
			return nil, ErrClosed
		}
		r, err := s.resolveHop(context.Background(), s.state.Load(), &h, true)
		if err != nil {
			return nil, err
		}
		sessions.observe(&r)
		return &r, nil
	}
	var cache tls.ClientSessionCache // nil: resumption is off
	if sessions != nil {
		sessions.current = current
		cache = sessions
	}
	cfg := s.clientConfig(&snap, current, cache)
	cfg.ServerName = h.key.name
	return cfg, nil
}
