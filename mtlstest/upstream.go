package mtlstest

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// ClientCertHeader is the response header in which an [Upstream] names the
// client certificate of the request, by its ID ([Leaf.ID]). It is set on
// every response, before the handler runs.
const ClientCertHeader = "X-Client-Cert"

// Client is what an [Upstream] recorded of one request: the client
// certificate presented on its connection, and how the request came.
type Client struct {
	// ID is the lowercase hex SHA-256 of the leaf's DER, as [Leaf.ID] and
	// package mtls's Fingerprint compute it.
	ID string
	// Subject is the leaf's subject as [crypto/x509/pkix.Name.String]
	// formats it: "CN=leaf,O=mtlstest" for a leaf of this package.
	Subject string
	// CommonName is the subject's common name.
	CommonName string
	// DNSNames are the leaf's DNS subject alternative names; nil if none.
	DNSNames []string
	// URIs are the leaf's URI subject alternative names, as strings; nil if
	// none.
	URIs []string
	// ServerName is the server name (SNI) the client sent; "" when the
	// client dialled an IP address, for which clients send none.
	ServerName string
	// Proto is the request's protocol: "HTTP/1.1" or "HTTP/2.0".
	Proto string
	// Cert is the leaf certificate as presented. Do not modify it.
	Cert *x509.Certificate
}

// Upstream is an HTTPS server on loopback that requires mTLS and records the
// client certificate of every request, to test which certificate a proxy
// presents to its upstreams. Make one with [NewUpstream], [NewUpstreamWith]
// or [StartUpstream].
//
// Its server certificate is issued by the CA it is made with, for
// localhost, 127.0.0.1 and ::1; it requires a client certificate that
// chains to that CA's root (the CA's Pool) and refuses the handshake of a
// client without one. It serves HTTP/1.1 and HTTP/2 (by ALPN), with TLS 1.2
// as the minimum version. Its methods are safe for concurrent use.
//
// The exported fields are set when it starts; do not modify them.
type Upstream struct {
	// URL is the base URL of the upstream, "https://127.0.0.1:PORT"
	// ("https://[::1]:PORT" on a machine without IPv4 loopback).
	URL string
	// Host is URL's host and port, "127.0.0.1:PORT": the req.URL.Host of
	// requests to URL, and a Map pattern of package mtls that matches this
	// upstream alone.
	Host string
	// Port is Host's port, to reach the upstream by another of its names:
	// "https://localhost:" + u.Port.
	Port string
	// Pool trusts the upstream's certificate: give it to clients as their
	// RootCAs. It is the CA's Pool.
	Pool *x509.CertPool
	// Leaf is the upstream's server certificate and key. u.Leaf.Pin() is the
	// pin of its public key.
	Leaf *Leaf

	srv   *httptest.Server
	conns atomic.Int64
	mu    sync.Mutex
	seen  []Client
}

// NewUpstream starts an [Upstream] whose certificate is issued by ca, and
// that requires client certificates issued under ca's root. Its handler
// answers every request with 200 OK, the client certificate's ID (with a
// newline) as the body and the ID in the [ClientCertHeader] header. It fails
// tb (with tb.Fatalf) if the upstream cannot start, and closes it when the
// test ends (with tb.Cleanup). The server's own errors, such as refused
// handshakes, are logged with tb.Logf.
func NewUpstream(tb testing.TB, ca *CA) *Upstream {
	tb.Helper()
	return NewUpstreamWith(tb, ca, nil)
}

// NewUpstreamWith is [NewUpstream] with the handler h, which runs after the
// request is recorded and [ClientCertHeader] set. A nil h is NewUpstream's
// handler.
func NewUpstreamWith(tb testing.TB, ca *CA, h http.Handler) *Upstream {
	tb.Helper()
	u, err := startUpstream(ca, h, tb.Logf)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(u.Close)
	return u
}

// StartUpstream is [NewUpstreamWith] for programs that have no testing.TB,
// such as demonstrations: it returns an error if the upstream cannot start,
// discards the server's own errors, and must be closed with
// [Upstream.Close]. A nil h is NewUpstream's handler.
func StartUpstream(ca *CA, h http.Handler) (*Upstream, error) {
	return startUpstream(ca, h, nil)
}

func startUpstream(ca *CA, h http.Handler, logf func(format string, args ...any)) (*Upstream, error) {
	if ca == nil {
		return nil, errors.New("mtlstest: upstream: nil CA")
	}
	leaf, err := ca.Issue(Options{
		CommonName: "upstream",
		DNSNames:   []string{"localhost"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	})
	if err != nil {
		return nil, fmt.Errorf("mtlstest: upstream certificate: %w", err)
	}
	ln, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	u := &Upstream{Pool: ca.Pool, Leaf: leaf}
	if h == nil {
		h = http.HandlerFunc(answerID)
	}
	errorLog := log.New(io.Discard, "", 0)
	if logf != nil {
		errorLog = log.New(logfWriter(logf), "", 0)
	}
	cfg := ServerConfig(leaf, ca)
	cfg.NextProtos = []string{"h2", "http/1.1"}
	u.srv = &httptest.Server{
		Listener:    ln,
		EnableHTTP2: true,
		TLS:         cfg,
		Config: &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c := clientOf(r)
				u.mu.Lock()
				u.seen = append(u.seen, c)
				u.mu.Unlock()
				w.Header().Set(ClientCertHeader, c.ID)
				h.ServeHTTP(w, r)
			}),
			ConnState: func(_ net.Conn, state http.ConnState) {
				if state == http.StateNew {
					u.conns.Add(1)
				}
			},
			ErrorLog: errorLog,
		},
	}
	u.srv.StartTLS()
	u.URL = u.srv.URL
	u.Host = ln.Addr().String()
	_, u.Port, _ = net.SplitHostPort(u.Host)
	return u, nil
}

// listenLoopback listens on a random port of 127.0.0.1, or of ::1 where
// IPv4 is missing, as httptest does.
func listenLoopback() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err == nil {
		return ln, nil
	}
	if ln, err6 := net.Listen("tcp6", "[::1]:0"); err6 == nil {
		return ln, nil
	}
	return nil, fmt.Errorf("mtlstest: upstream: listen on loopback: %w", err)
}

// answerID is the default handler: the ID of the client certificate.
func answerID(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprintln(w, w.Header().Get(ClientCertHeader))
}

// clientOf describes the client certificate of r's connection.
func clientOf(r *http.Request) Client {
	c := Client{Proto: r.Proto}
	if r.TLS == nil {
		return c
	}
	c.ServerName = r.TLS.ServerName
	if len(r.TLS.PeerCertificates) == 0 {
		return c // not with this package's config, which requires one
	}
	leaf := r.TLS.PeerCertificates[0]
	c.Cert = leaf
	c.ID = fingerprint(leaf.Raw)
	c.Subject = leaf.Subject.String()
	c.CommonName = leaf.Subject.CommonName
	c.DNSNames = leaf.DNSNames
	for _, uri := range leaf.URIs {
		c.URIs = append(c.URIs, uri.String())
	}
	return c
}

// Seen returns a copy of what the upstream recorded of each request it has
// received, in the order their handlers started. A request whose handshake
// failed never reaches the handler and is not recorded.
func (u *Upstream) Seen() []Client {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.seen)
}

// Conns returns how many connections the upstream has accepted, those whose
// handshake then failed included. A connection counts before the upstream
// sends its first handshake message, so a client that got any answer, even
// a failed handshake, has been counted; one that failed before connecting
// leaves the count unchanged.
func (u *Upstream) Conns() int {
	return int(u.conns.Load())
}

// Close shuts the upstream down: it stops listening, closes idle
// connections and waits for the requests in progress. Closing twice is
// harmless.
func (u *Upstream) Close() {
	u.srv.Close()
}

// logfWriter sends a log.Logger's lines to a testing.TB's Logf.
type logfWriter func(format string, args ...any)

func (f logfWriter) Write(p []byte) (int, error) {
	f("mtlstest: upstream: %s", bytes.TrimSuffix(p, []byte("\n")))
	return len(p), nil
}
