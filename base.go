package mtls

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The base transport (semantics §3, §6 "Options"): what New accepts of it,
// which protocols a pool speaks, and the transport of a pool.

// checkBase rejects a base transport whose settings would bypass the TLS
// this package configures, naming the fields.
func checkBase(base *http.Transport) error {
	var bad []string
	if base.DialTLSContext != nil {
		bad = append(bad, "DialTLSContext")
	}
	if base.DialTLS != nil { //nolint:staticcheck // rejected, not used
		bad = append(bad, "DialTLS")
	}
	if tc := base.TLSClientConfig; tc != nil {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"Certificates", len(tc.Certificates) > 0},
			{"GetClientCertificate", tc.GetClientCertificate != nil},
			{"RootCAs", tc.RootCAs != nil},
			{"InsecureSkipVerify", tc.InsecureSkipVerify},
			{"VerifyPeerCertificate", tc.VerifyPeerCertificate != nil},
			{"VerifyConnection", tc.VerifyConnection != nil},
			{"ClientSessionCache", tc.ClientSessionCache != nil},
			{"ServerName", tc.ServerName != ""},
			{"Time", tc.Time != nil},
			{"EncryptedClientHelloRejectionVerify", tc.EncryptedClientHelloRejectionVerify != nil},
		} {
			if f.set {
				bad = append(bad, "TLSClientConfig."+f.name)
			}
		}
	}
	if len(bad) > 0 {
		return errorf("the base transport sets %s, which would bypass or replace the TLS this package configures: "+
			"certificates, roots, verification and sessions come from the Policy", strings.Join(bad, ", "))
	}
	return nil
}

// poolProtocols returns the protocols of the pools of base: what net/http
// would speak with base itself, narrowed to what base's NextProtos allow
// when it sets them. It must run before base is first cloned, which runs
// net/http's HTTP/2 set-up on base and so rewrites its NextProtos.
func poolProtocols(base *http.Transport) (http.Protocols, error) {
	var p http.Protocols
	p.SetHTTP1(true)
	switch {
	case base.Protocols != nil:
		p = *base.Protocols
	case base.TLSNextProto != nil:
		// An empty map is the documented way to turn HTTP/2 off.
		p.SetHTTP2(base.TLSNextProto["h2"] != nil)
	case !base.ForceAttemptHTTP2 && (base.TLSClientConfig != nil || base.Dial != nil || base.DialContext != nil): //nolint:staticcheck // as net/http decides
		// net/http does not use HTTP/2 with a custom TLS config or dialer
		// unless asked to.
	default:
		p.SetHTTP2(true)
	}
	if tc := base.TLSClientConfig; tc != nil && len(tc.NextProtos) > 0 {
		p.SetHTTP1(p.HTTP1() && slices.Contains(tc.NextProtos, "http/1.1"))
		p.SetHTTP2(p.HTTP2() && slices.Contains(tc.NextProtos, "h2"))
	}
	if !p.HTTP1() && !p.HTTP2() {
		return p, errorf("the base transport allows neither HTTP/1.1 nor HTTP/2 over TLS (Protocols or TLSClientConfig.NextProtos)")
	}
	return p, nil
}

// alpn returns the application protocols a pool offers: exactly those it
// speaks.
func alpn(p http.Protocols) []string {
	var protos []string
	if p.HTTP2() {
		protos = append(protos, "h2")
	}
	if p.HTTP1() {
		protos = append(protos, "http/1.1")
	}
	return protos
}

// poolTransport returns the transport of one pool: a clone of the base
// with cfg as its TLS config, speaking the pools' protocols, through proxy
// (nil: none). dialTLS, set for an https proxy, makes the TLS connection to
// the proxy. Each pool speaks HTTP/2 with connections of its own: the
// base's TLSNextProto, which could hand them to a transport that other
// pools share, is not used.
func (c *core) poolTransport(cfg *tls.Config, proxy *url.URL, dialTLS dialFunc) *http.Transport {
	t := c.opts.base.Clone()
	cfg.NextProtos = alpn(c.protocols)
	t.TLSClientConfig = cfg
	t.TLSNextProto = nil
	protocols := c.protocols
	t.Protocols = &protocols
	if t.MaxIdleConnsPerHost == 0 {
		t.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	t.Proxy = nil
	if proxy != nil {
		t.Proxy = http.ProxyURL(proxy)
	}
	t.DialTLSContext = dialTLS
	return t
}
