// Package mtls configures the TLS of a Go proxy's upstream connections: for
// every host the proxy talks to, it decides which client certificate to
// present and which server keys to trust, and hands back a ready
// http.RoundTripper, *http.Transport or *tls.Config.
//
// A [Selector] holds a gateway-level [Policy]; [Selector.ForAPI] derives
// the selector of one API, whose patterns take precedence. A Policy maps
// host patterns (see [NewResolver]) to certificates and pins, named by a
// [CertStore] ID ([MemoryStore], [FileStore]), a file path, or inline PEM:
//
//	store, err := mtls.NewFileStore("/var/lib/proxy/certs", secret)
//	...
//	sel, err := mtls.New(store, mtls.Policy{
//		Certificates:     mtls.Map{"*.internal.example.com": clientCertID},
//		PinnedPublicKeys: mtls.Map{"payments.example.com": "sha256//r8udi/Mxd6pLO7y7hZyUMWq8YnFnIWXCqeHsTDRqy8c="},
//	})
//	...
//	proxy := &httputil.ReverseProxy{Rewrite: rewrite, Transport: sel.RoundTripper()}
//
// New, ForAPI and Update check every value of a policy when it is set and
// list every problem in one [*PolicyError]. After that, every request is
// resolved again, from memory: a host whose certificate is missing,
// expired or has no key fails closed before any connection is opened.
// Connections are pooled per TLS identity (server name, client certificate,
// pins, roots), so one host's certificate is never sent to another, and a
// change of certificate or pins retires the old pool. Pins restrict chain
// verification, never replace it.
//
// Package mtlstest makes throw-away certificate authorities and mTLS
// upstreams for tests; package storetest checks a CertStore implementation.
package mtls
