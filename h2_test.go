package mtls

// End-to-end tests of HTTP/2 under every kind of base transport: a pool
// offers in ALPN exactly the protocols it can speak. It speaks h2 when the
// base would (what net/http itself does with that base: ForceAttemptHTTP2,
// no custom TLS config nor dialers as in http.DefaultTransport, or
// Protocols), and never a protocol that the base's own
// TLSClientConfig.NextProtos leave out.

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/require"
)

// h2Upstream is an mTLS upstream on 127.0.0.1 that serves the application
// protocols it is told to, answers with the ID of the client certificate
// it saw (header X-Client-Cert) and the HTTP version it served (X-Proto),
// and records what each ClientHello offered in ALPN and which client
// certificate each handshake presented.
type h2Upstream struct {
	*httptest.Server
	Host string // 127.0.0.1:port, as req.URL.Host

	requests atomic.Int64

	mu        sync.Mutex
	offered   [][]string // ALPN protocols of each ClientHello
	presented []string   // client certificate IDs, one per completed handshake
}

// h2StartUpstream starts an upstream presenting leaf, requiring a client
// certificate that verifies to clients, and negotiating protos in ALPN.
// With protos ["h2"] it speaks HTTP/2 only, as gRPC servers and h2-only
// proxies do: a ClientHello that does not offer h2 fails the handshake
// (with no_application_protocol when the client offers other protocols,
// with a handshake error when it offers none), so that no client can fall
// back to HTTP/1.1 over it.
func h2StartUpstream(t *testing.T, leaf *mtlstest.Leaf, clients *mtlstest.CA, protos ...string) *h2Upstream {
	t.Helper()
	u := &h2Upstream{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		id := "none"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			id = Fingerprint(r.TLS.PeerCertificates[0].Raw)
		}
		w.Header().Set("X-Client-Cert", id)
		w.Header().Set("X-Proto", strconv.Itoa(r.ProtoMajor))
		io.WriteString(w, id)
	}))
	// Handshakes that fail on purpose would fill the log.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.EnableHTTP2 = slices.Contains(protos, "h2")
	h2Only := slices.Equal(protos, []string{"h2"})
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{leaf.TLS},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clients.Pool,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   protos,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			u.mu.Lock()
			u.offered = append(u.offered, slices.Clone(hello.SupportedProtos))
			u.mu.Unlock()
			if h2Only && !slices.Contains(hello.SupportedProtos, "h2") {
				// crypto/tls negotiates no protocol when the client
				// offers none; an h2-only server refuses instead.
				return nil, errH2NotOffered
			}
			return nil, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			id := "none"
			if len(cs.PeerCertificates) > 0 {
				id = Fingerprint(cs.PeerCertificates[0].Raw)
			}
			u.mu.Lock()
			u.presented = append(u.presented, id)
			u.mu.Unlock()
			return nil
		},
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u.Server = srv
	u.Host = srv.Listener.Addr().String()
	return u
}

var errH2NotOffered = errors.New("h2-only upstream: the client did not offer h2")

func (u *h2Upstream) offers() [][]string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.offered)
}

func (u *h2Upstream) certs() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.presented)
}

// h2Get sends GET url through rt with an http.Client. It returns the
// response with its body read and closed.
func h2Get(t *testing.T, rt http.RoundTripper, url string) (*http.Response, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// h2CloseIdle closes rt's idle connections, so that a test's upstream can
// close without waiting for them.
func h2CloseIdle(rt http.RoundTripper) {
	if ci, ok := rt.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// TestHTTP2WithAnyBase requests an mTLS upstream that speaks h2 only,
// HTTP/1.1 only or both, through RoundTripper and through TransportFor,
// over every kind of base transport. An HTTP/1.1-only upstream always
// works over HTTP/1.1. When the base would use h2, an h2-only upstream
// works over h2 and a dual one uses h2; otherwise the pool offers no h2,
// so a dual upstream is spoken to over HTTP/1.1 and an h2-only one fails
// the TLS handshake cleanly, never with a pool that offered h2 and then
// read its frames as HTTP/1.1 ("malformed HTTP response").
func TestHTTP2WithAnyBase(t *testing.T) {
	srvCA, cliCA := newCA(t, "h2 servers"), newCA(t, "h2 clients")
	srvLeaf := serverLeaf(t, srvCA, "h2 upstream")
	cliLeaf := clientLeaf(t, cliCA, "h2 client")

	// Each case gets a base of its own: net/http's lazy HTTP/2 set-up,
	// which New's first Clone runs, writes into the base.
	bases := []struct {
		name   string
		base   func() *http.Transport // nil: no WithBaseTransport
		wantH2 bool                   // what net/http would do with this base
	}{
		{"default", nil, true},
		{"ResponseHeaderTimeout", func() *http.Transport {
			return &http.Transport{ResponseHeaderTimeout: 5 * time.Second}
		}, true},
		{"ForceAttemptHTTP2", func() *http.Transport {
			return &http.Transport{ForceAttemptHTTP2: true}
		}, true},
		{"TLSClientConfig without ForceAttemptHTTP2", func() *http.Transport {
			return &http.Transport{ForceAttemptHTTP2: false, TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
		}, false},
		{"NextProtos http/1.1 with ForceAttemptHTTP2", func() *http.Transport {
			return &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{NextProtos: []string{"http/1.1"}}}
		}, false},
	}
	upstreams := []struct {
		name   string
		protos []string
	}{
		{"h2-only", []string{"h2"}},
		{"h1-only", []string{"http/1.1"}},
		{"dual", []string{"h2", "http/1.1"}},
	}
	paths := []struct {
		name string
		rt   func(t *testing.T, sel *Selector, host string) http.RoundTripper
	}{
		{"RoundTripper", func(t *testing.T, sel *Selector, host string) http.RoundTripper {
			return sel.RoundTripper()
		}},
		{"TransportFor", func(t *testing.T, sel *Selector, host string) http.RoundTripper {
			tr, err := sel.TransportFor(host)
			require.NoError(t, err)
			return tr
		}},
	}

	for _, b := range bases {
		for _, up := range upstreams {
			for _, p := range paths {
				t.Run(b.name+"/"+up.name+"/"+p.name, func(t *testing.T) {
					u := h2StartUpstream(t, srvLeaf, cliCA, up.protos...)
					store := newStore(t)
					id := add(t, store, cliLeaf.PEM())
					var opts []Option
					if b.base != nil {
						opts = append(opts, WithBaseTransport(b.base()))
					}
					sel := newSelector(t, store, Policy{Certificates: Map{u.Host: id}, RootCAs: srvCA.Pool}, opts...)
					rt := p.rt(t, sel, u.Host)
					t.Cleanup(func() { h2CloseIdle(rt) })

					resp, body, err := h2Get(t, rt, u.URL+"/")

					wantOK := up.name != "h2-only" || b.wantH2
					if !wantOK {
						// h2-only upstream, base that would not use h2.
						require.Error(t, err, "an h2-only upstream answered a pool whose base does not use h2 (offered %q)", u.offers())
						require.NotContains(t, err.Error(), "malformed HTTP response", "the pool offered h2 and read h2 frames as HTTP/1.1")
						require.Contains(t, err.Error(), "tls: ", "the failure is not a TLS handshake failure")
						require.Zero(t, u.requests.Load(), "the upstream served a request")
						t.Logf("failed as it must: %v", err)
					} else {
						require.NoError(t, err, "the pool offered %q", u.offers())
						require.Equal(t, http.StatusOK, resp.StatusCode, body)
						wantProto := 1
						if up.name != "h1-only" && b.wantH2 {
							wantProto = 2
						}
						require.Equal(t, wantProto, resp.ProtoMajor, "protocol used (the pool offered %q)", u.offers())
						require.Equal(t, strconv.Itoa(wantProto), resp.Header.Get("X-Proto"), "protocol the upstream served")
						require.Equal(t, id, resp.Header.Get("X-Client-Cert"), "the upstream did not see the mapped client certificate")
						require.NotEmpty(t, u.certs())
						for _, seen := range u.certs() {
							require.Equal(t, id, seen, "a handshake presented something else than the mapped certificate")
						}
					}
					// A pool offers exactly what it can speak.
					require.NotEmpty(t, u.offers(), "no ClientHello reached the upstream")
					for _, offer := range u.offers() {
						require.Equal(t, b.wantH2, slices.Contains(offer, "h2"), "ALPN offer %q", offer)
					}
				})
			}
		}
	}
}

// TestHTTP2PoolsDoNotShareTheBaseHTTP2Connections: a base configured for
// HTTP/2 the way golang.org/x/net/http2.ConfigureTransport does it (an
// "h2" entry in TLSNextProto that hands each new connection to one HTTP/2
// client pool, and NextProtos offering h2) must not make the pools of
// different TLS identities share HTTP/2 connections. net/http's Clone
// copies TLSNextProto, so without care every pool's h2 connections land in
// that one pool, keyed by host:port alone, and a request of one identity
// goes out on a connection that presented another identity's certificate.
//
// The base is built with the standard library alone: the "h2" entry comes
// from a donor transport whose lazy HTTP/2 set-up has run, which is what
// ConfigureTransport leaves in a transport's TLSNextProto.
func TestHTTP2PoolsDoNotShareTheBaseHTTP2Connections(t *testing.T) {
	srvCA, cliCA := newCA(t, "h2 servers"), newCA(t, "h2 clients")
	u := h2StartUpstream(t, serverLeaf(t, srvCA, "h2 upstream"), cliCA, "h2", "http/1.1")
	store := newStore(t)
	idA := add(t, store, clientLeaf(t, cliCA, "api A").PEM())
	idB := add(t, store, clientLeaf(t, cliCA, "api B").PEM())

	donor := &http.Transport{ForceAttemptHTTP2: true}
	donor.Clone() // runs the donor's HTTP/2 set-up: TLSNextProto["h2"] now feeds its HTTP/2 pool
	require.Contains(t, donor.TLSNextProto, "h2")
	t.Cleanup(donor.CloseIdleConnections)
	base := &http.Transport{
		ForceAttemptHTTP2: true,
		TLSClientConfig:   &tls.Config{NextProtos: []string{"h2", "http/1.1"}},
		TLSNextProto:      donor.TLSNextProto,
	}

	// Two APIs of one gateway route to the same upstream with different
	// client certificates.
	gw := newSelector(t, store, Policy{Certificates: Map{u.Host: idA}, RootCAs: srvCA.Pool}, WithBaseTransport(base))
	api := forAPI(t, gw, Policy{Certificates: Map{u.Host: idB}})
	t.Cleanup(func() { h2CloseIdle(gw.RoundTripper()); h2CloseIdle(api.RoundTripper()) })

	for _, step := range []struct {
		name string
		sel  *Selector
		want string
	}{{"gateway", gw, idA}, {"API", api, idB}, {"gateway again", gw, idA}} {
		resp, body, err := h2Get(t, step.sel.RoundTripper(), u.URL+"/")
		require.NoError(t, err, step.name)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, step.want, resp.Header.Get("X-Client-Cert"),
			"%s: the request went out on a connection that presented another identity's certificate (proto %s; handshakes presented %q)",
			step.name, resp.Proto, u.certs())
	}
}
