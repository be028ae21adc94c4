package mtls

// Security regression tests: one test per defect found in review, each
// asserting the rule of semantics.md that the defect breaks. They make real
// TLS handshakes on loopback and use only the package's exported API and
// the helpers of testutil_test.go, plus the sec* helpers below.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// secHung bounds anything that could block: past it, the test fails and
// says what hung. It is a deadline, not a timing assertion.
const secHung = 20 * time.Second

// --- helpers -------------------------------------------------------------------

// secWithin runs fn on its own goroutine and fails the test, naming what
// hung, if fn has not returned within secHung.
func secWithin[T any](t *testing.T, what string, fn func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- fn() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(secHung):
		t.Fatalf("%s hung: no answer after %v", what, secHung)
		panic("unreachable")
	}
}

// secReply is what one request gave: the upstream's reply and the HTTP
// major version it was served over.
type secReply struct {
	reply
	proto int
}

// secGet sends GET https://host/path through rt, with URL.Host set to host
// exactly as given (no parsing), and reads the whole response. The request
// has a deadline, so that net/http cannot block on it forever.
func secGet(rt http.RoundTripper, host, path string) (secReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), secHung)
	defer cancel()
	return secGetCtx(ctx, rt, host, path)
}

func secGetCtx(ctx context.Context, rt http.RoundTripper, host, path string) (secReply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://placeholder.invalid"+path, nil)
	if err != nil {
		return secReply{}, err
	}
	req.URL.Host, req.Host = host, host
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return secReply{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return secReply{}, err
	}
	r := secReply{reply: reply{status: resp.StatusCode, certID: resp.Header.Get("X-Client-Cert"), body: string(body)}, proto: resp.ProtoMajor}
	fmt.Sscan(resp.Header.Get("X-Conn"), &r.conn)
	if resp.TLS != nil {
		r.resumed = resp.TLS.DidResume
	}
	return r, nil
}

// secPool trusts the roots of every CA given.
func secPool(cas ...*mtlstest.CA) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca.Cert)
	}
	return pool
}

// secWorld is a server CA, a client CA, a server certificate and two client
// certificates in a MemoryStore, and an upstream that requires a client
// certificate of the client CA.
type secWorld struct {
	srvCA, cliCA *mtlstest.CA
	server       *mtlstest.Leaf
	a, b         *mtlstest.Leaf
	store        *MemoryStore
	idA, idB     string
	up           *upstream
}

func secNewWorld(t *testing.T, c upstreamConfig) *secWorld {
	t.Helper()
	w := &secWorld{srvCA: newCA(t, "servers"), cliCA: newCA(t, "clients"), store: newStore(t)}
	w.server = serverLeaf(t, w.srvCA, "server")
	w.a, w.b = clientLeaf(t, w.cliCA, "a"), clientLeaf(t, w.cliCA, "b")
	w.idA, w.idB = add(t, w.store, w.a.PEM()), add(t, w.store, w.b.PEM())
	c.cert = w.server.TLS
	c.verifyClients = w.cliCA.Pool
	w.up = startUpstream(t, c)
	return w
}

// secNamer returns a function that names a certificate ID for failure
// messages: by names, "none" as itself, anything else by its ID.
func secNamer(names map[string]string) func(id string) string {
	return func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		return id
	}
}

// secNames names each ID of ids.
func secNames(name func(string) string, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = name(id)
	}
	return out
}

// name names a client certificate ID of the world in failure messages.
func (w *secWorld) name(id string) string {
	return secNamer(map[string]string{w.idA: "A", w.idB: "B"})(id)
}

// secPresentedSince returns the client certificate IDs the upstream was
// offered at its handshakes after the first n.
func secPresentedSince(u *upstream, n int) []string {
	return u.presented()[n:]
}

// --- 1. an https proxy is a host of its own ----------------------------------------

// secProxy is an https:// CONNECT proxy on 127.0.0.1: it asks for a client
// certificate without requiring one, records which certificate each TLS
// handshake offered, and splices each CONNECT to its target.
type secProxy struct {
	Host string // 127.0.0.1:port
	URL  *url.URL

	mu       sync.Mutex
	offered  []string // client certificate IDs offered, "none" for none
	connects []string // targets of the CONNECT requests
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

func secStartProxy(t *testing.T, leaf *mtlstest.Leaf) *secProxy {
	t.Helper()
	p := &secProxy{conns: map[net.Conn]struct{}{}}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{leaf.TLS},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			id := "none"
			if len(cs.PeerCertificates) > 0 {
				id = Fingerprint(cs.PeerCertificates[0].Raw)
			}
			p.mu.Lock()
			p.offered = append(p.offered, id)
			p.mu.Unlock()
			return nil
		},
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	p.Host = ln.Addr().String()
	p.URL = &url.URL{Scheme: "https", Host: p.Host}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !p.track(c) {
				c.Close()
				return
			}
			p.wg.Add(1)
			go p.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.conns = nil
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// track registers c to be closed at cleanup; false once cleanup began.
func (p *secProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *secProxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br) // the TLS handshake happens here
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	p.mu.Lock()
	p.connects = append(p.connects, req.Host)
	p.mu.Unlock()
	up, err := net.DialTimeout("tcp", req.Host, secHung)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	defer up.Close()
	if !p.track(up) {
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, br); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
}

func (p *secProxy) seen() (offered, connects []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.offered), slices.Clone(p.connects)
}

// Rule (§3 "A proxy is a host of its own"): through an https:// proxy, the
// TLS connection to the proxy gets the certificate the proxy's own host
// maps to, or none, and is verified as that host: the target's certificate
// is never offered to the proxy and the target's pins never apply to it.
// The target still gets its own certificate.
func TestSecurity1ProxyIsAHostOfItsOwn(t *testing.T) {
	for _, tc := range []struct {
		name      string
		proxyCert bool // the proxy's host maps to certificate P
		pinTarget bool // the target host is pinned to its own key
	}{
		{name: "proxy maps to P", proxyCert: true},
		{name: "proxy maps to nothing"},
		{name: "proxy maps to P, target pinned", proxyCert: true, pinTarget: true},
		{name: "proxy maps to nothing, target pinned", pinTarget: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := secNewWorld(t, upstreamConfig{})
			target := fmt.Sprintf("localhost:%d", w.up.Listener.Addr().(*net.TCPAddr).Port)
			proxyCA := newCA(t, "proxies")
			proxy := secStartProxy(t, serverLeaf(t, proxyCA, "proxy"))
			pCert := clientLeaf(t, w.cliCA, "proxy client")
			idP := add(t, w.store, pCert.PEM())

			p := Policy{Certificates: Map{target: w.idA}, RootCAs: secPool(w.srvCA, proxyCA)}
			wantOffered := "none"
			if tc.proxyCert {
				p.Certificates[proxy.Host] = idP
				wantOffered = idP
			}
			if tc.pinTarget {
				p.PinnedPublicKeys = Map{target: pinFor(w.server.Cert)}
			}
			base := &http.Transport{
				Proxy:             func(*http.Request) (*url.URL, error) { return proxy.URL, nil },
				ForceAttemptHTTP2: true,
			}
			sel := newSelector(t, w.store, p, WithBaseTransport(base))

			r, err := secGet(sel.RoundTripper(), target, "/")
			offered, connects := proxy.seen()
			name := secNamer(map[string]string{w.idA: "T", idP: "P"})
			if assert.NoError(t, err, "request through the https proxy to %s", target) {
				assert.Equal(t, http.StatusOK, r.status)
				assert.Equal(t, "T", name(r.certID), "the target saw the wrong certificate")
				assert.Contains(t, connects, target, "the request did not go through the proxy")
				assert.NotEmpty(t, offered, "no TLS handshake with the proxy")
			}
			for _, id := range offered {
				if id != wantOffered {
					assert.Fail(t, "the proxy was offered another certificate than its own host's",
						"offered %v, want only %s", secNames(name, offered), name(wantOffered))
					break
				}
			}
		})
	}
}

// --- 2. a deleted certificate or pin stays deleted ---------------------------

// secBlockingStore is a MemoryStore whose Get, once armed, reads its entry
// and then waits before returning it: a read in flight across a Delete.
// Notify is the MemoryStore's, so the Selector follows its changes.
type secBlockingStore struct {
	*MemoryStore

	mu      sync.Mutex
	armedID string
	entered chan struct{} // closed when the armed Get has read its entry
	release chan struct{} // closed to let it return
}

var _ Notifier = (*secBlockingStore)(nil)

func secNewBlockingStore(t *testing.T) *secBlockingStore {
	s := &secBlockingStore{MemoryStore: newStore(t)}
	t.Cleanup(s.releaseNow)
	return s
}

// arm makes the next Get of id block after reading, until releaseNow.
func (s *secBlockingStore) arm(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armedID, s.entered, s.release = id, make(chan struct{}), make(chan struct{})
}

func (s *secBlockingStore) releaseNow() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.release != nil {
		select {
		case <-s.release:
		default:
			close(s.release)
		}
	}
}

func (s *secBlockingStore) Get(ctx context.Context, id string) (*Certificate, error) {
	c, err := s.MemoryStore.Get(ctx, id)
	s.mu.Lock()
	block := s.armedID != "" && s.armedID == id
	entered, release := s.entered, s.release
	if block {
		s.armedID = ""
	}
	s.mu.Unlock()
	if block {
		close(entered)
		select {
		case <-release:
		case <-time.After(2 * secHung): // never block forever
		}
	}
	return c, err
}

// secDeleteCase is a store entry that a policy uses, and how requests must
// fail once it is deleted.
type secDeleteCase struct {
	name    string
	entry   func(t *testing.T, w *secWorld) []byte // the PEM stored, then deleted
	policy  func(w *secWorld, id string) Policy    // the policy that uses it
	wantErr error                                  // what requests fail with after the Delete
	isCert  bool                                   // the entry is the client certificate: never presented after
}

var secDeleteCases = []secDeleteCase{
	{
		name:  "client certificate",
		entry: func(_ *testing.T, w *secWorld) []byte { return w.a.PEM() },
		policy: func(w *secWorld, id string) Policy {
			return Policy{Certificates: Map{w.up.Host: id}, RootCAs: w.srvCA.Pool}
		},
		wantErr: ErrNotFound,
		isCert:  true,
	},
	{
		name:  "pinned public key",
		entry: func(t *testing.T, w *secWorld) []byte { return publicKeyPEM(t, w.server) },
		policy: func(w *secWorld, id string) Policy {
			// The client certificate is inline: only the pin is read from the store.
			return Policy{
				Certificates:     Map{w.up.Host: string(w.b.PEM())},
				PinnedPublicKeys: Map{w.up.Host: id},
				RootCAs:          w.srvCA.Pool,
			}
		},
		wantErr: ErrPinMismatch,
	},
}

// secRequireDeleted checks that requests now fail with wantErr and, when
// no other request is running (quiet), that the upstream serves none of
// them and is offered no deleted certificate.
func secRequireDeleted(t *testing.T, w *secWorld, sel *Selector, tc secDeleteCase, id, when string, quiet bool) {
	t.Helper()
	served, shakes := w.up.requests.Load(), len(w.up.presented())
	for i := range 3 {
		r, err := secGet(sel.RoundTripper(), w.up.Host, "/")
		if !assert.ErrorIs(t, err, tc.wantErr, "%s: request %d (upstream saw certificate %s on its connection %d)", when, i+1, w.name(r.certID), r.conn) {
			break
		}
	}
	if !quiet {
		return
	}
	assert.Equal(t, served, w.up.requests.Load(), "%s: the upstream served requests", when)
	if tc.isCert {
		assert.NotContains(t, secPresentedSince(w.up, shakes), id, "%s: the deleted certificate was presented", when)
	}
}

// Rule (§6): a store read that began before a change notification is never
// cached after it, for certificates and pins alike: once Delete has
// returned, every request for the host fails closed (ErrNotFound for a
// deleted client certificate, ErrPinMismatch for a host whose only pin was
// deleted), even when a request was reading the entry as it was deleted.
func TestSecurity2DeleteDuringReadStaysDeleted(t *testing.T) {
	for _, tc := range secDeleteCases {
		t.Run(tc.name, func(t *testing.T) {
			w := secNewWorld(t, upstreamConfig{})
			store := secNewBlockingStore(t)
			pemData := tc.entry(t, w)
			id := add(t, store, pemData)
			sel := newSelector(t, store, tc.policy(w, id))
			// A change of the entry, so that whatever the selector read
			// so far is stale and the next request reads the store.
			del(t, store, id)
			add(t, store, pemData)

			store.arm(id)
			inflight := make(chan error, 1)
			go func() {
				_, err := secGet(sel.RoundTripper(), w.up.Host, "/")
				inflight <- err
			}()
			select {
			case <-store.entered:
			case err := <-inflight:
				t.Fatalf("the request did not read the store (it returned %v): nothing to race the Delete against", err)
			case <-time.After(secHung):
				t.Fatalf("the request did not read the store within %v", secHung)
			}

			// Delete while the read is in flight. A library may make Delete
			// wait for the read; give it a moment, then let the read finish.
			deleted := make(chan error, 1)
			go func() { deleted <- store.Delete(context.Background(), id) }()
			var delErr error
			select {
			case delErr = <-deleted:
				store.releaseNow()
			case <-time.After(2 * time.Second):
				store.releaseNow()
				delErr = secWithin(t, "Delete", func() error { return <-deleted })
			}
			require.NoError(t, delErr)
			secWithin(t, "the request in flight", func() error { return <-inflight }) // may succeed or fail

			secRequireDeleted(t, w, sel, tc, id, "after Delete returned", true)
		})
	}
}

// Rule (§6), as TestSecurity2DeleteDuringReadStaysDeleted, with the race
// left to the scheduler: requests run while the entry is deleted, over and
// over. It may pass on a defective library by luck; the deterministic test
// above does not.
func TestSecurity2DeleteRaceStress(t *testing.T) {
	const iterations, clients = 50, 4
	for _, tc := range secDeleteCases {
		t.Run(tc.name, func(t *testing.T) {
			w := secNewWorld(t, upstreamConfig{})
			pemData := tc.entry(t, w)
			id := add(t, w.store, pemData)
			sel := newSelector(t, w.store, tc.policy(w, id))
			for i := range iterations {
				if i > 0 {
					add(t, w.store, pemData)
				}
				var stop atomic.Bool
				var wg sync.WaitGroup
				for range clients {
					wg.Go(func() {
						for !stop.Load() {
							secGet(sel.RoundTripper(), w.up.Host, "/") // results do not matter
						}
					})
				}
				del(t, w.store, id)
				secRequireDeleted(t, w, sel, tc, id, fmt.Sprintf("iteration %d, just after Delete", i), false)
				stop.Store(true)
				secWithin(t, "the racing requests", func() struct{} { wg.Wait(); return struct{}{} })
				secRequireDeleted(t, w, sel, tc, id, fmt.Sprintf("iteration %d, after the racing requests", i), true)
				if t.Failed() {
					return
				}
			}
		})
	}
}

// --- 3. TransportFor checks every request, HTTP/2 included ------------------

// Rule (§3, README "TransportFor"): the transport that TransportFor(h)
// returns refuses requests for other hosts, and refuses requests once h's
// TLS identity has changed or h fails closed, over HTTP/2 as over
// HTTP/1.1: an HTTP/2 connection it already holds must not carry them.
func TestSecurity3TransportForChecksOverHTTP2(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy func(w *secWorld, file string) Map
		change func(t *testing.T, w *secWorld, sel *Selector, file string)
	}{
		{
			name:   "certificate replaced and deleted",
			policy: func(w *secWorld, _ string) Map { return Map{w.up.Host: w.idA} },
			change: func(t *testing.T, w *secWorld, sel *Selector, _ string) {
				require.NoError(t, sel.Update(Policy{Certificates: Map{w.up.Host: w.idB}, RootCAs: w.srvCA.Pool}))
				del(t, w.store, w.idA)
			},
		},
		{
			name:   "certificate file removed",
			policy: func(w *secWorld, file string) Map { return Map{w.up.Host: file} },
			change: func(t *testing.T, _ *secWorld, _ *Selector, file string) {
				require.NoError(t, os.Remove(file))
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started, release := make(chan struct{}, 1), make(chan struct{})
			var once sync.Once
			unblock := func() { once.Do(func() { close(release) }) }
			w := secNewWorld(t, upstreamConfig{http2: true, handler: func(rw http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/slow" {
					rw.WriteHeader(http.StatusOK)
					rw.(http.Flusher).Flush()
					started <- struct{}{}
					select {
					case <-release:
					case <-r.Context().Done():
					}
				}
				io.WriteString(rw, "done")
			}})
			t.Cleanup(unblock) // before the server's Close, which waits for handlers
			file := writeFile(t, t.TempDir(), "client.pem", w.a.PEM())
			sel := newSelector(t, w.store, Policy{Certificates: tc.policy(w, file), RootCAs: w.srvCA.Pool})

			tr, err := sel.TransportFor(w.up.Host)
			require.NoError(t, err)
			first, err := secGet(tr, w.up.Host, "/")
			require.NoError(t, err)
			require.Equal(t, 2, first.proto, "the upstream did not serve HTTP/2: the test needs it")
			require.Equal(t, "A", w.name(first.certID))

			// Another host, same upstream, while tr holds an HTTP/2 connection.
			port := w.up.Listener.Addr().(*net.TCPAddr).Port
			other := fmt.Sprintf("localhost:%d", port)
			r, err := secGet(tr, other, "/")
			assert.Error(t, err, "the transport for %s served a request for %s (certificate %s, HTTP/%d)", w.up.Host, other, w.name(r.certID), r.proto)

			// A request in flight keeps the HTTP/2 connection busy.
			slow := make(chan error, 1)
			go func() { _, err := secGet(tr, w.up.Host, "/slow"); slow <- err }()
			select {
			case <-started:
			case err := <-slow:
				t.Fatalf("the slow request ended early: %v", err)
			case <-time.After(secHung):
				t.Fatal("the slow request did not start")
			}

			tc.change(t, w, sel, file)
			r, err = secGet(tr, w.up.Host, "/")
			assert.Error(t, err, "after the change, the transport still served a request (certificate %s, HTTP/%d, upstream connection %d; first connection %d)",
				w.name(r.certID), r.proto, r.conn, first.conn)

			unblock()
			secWithin(t, "the request in flight", func() error { return <-slow })
		})
	}
}

// --- 4. the host resolved is the host dialled --------------------------------

// secCountingListener counts the connections it accepts.
type secCountingListener struct {
	net.Listener
	accepts atomic.Int64
}

func (l *secCountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepts.Add(1)
	}
	return c, err
}

// secListenIPv6Port4 listens on [::1] on a free port of four digits, so
// that "::1:PORT" also reads as an IPv6 address. It skips the test when
// IPv6 loopback is unavailable.
func secListenIPv6Port4(t *testing.T) (net.Listener, int) {
	t.Helper()
	probe, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("IPv6 loopback unavailable: %v", err)
	}
	probe.Close()
	for range 1000 {
		port := 1024 + rand.IntN(9999-1024+1)
		if ln, err := net.Listen("tcp", fmt.Sprintf("[::1]:%d", port)); err == nil {
			return ln, port
		}
	}
	t.Fatal("no free port of four digits on [::1]")
	return nil, 0
}

// Rule (§3 "The host is what is dialled"): the host the library resolves
// is exactly the one net/http dials, for every spelling of URL.Host; where
// the two could differ, the request is refused. URL.Host "::1:PORT" is
// dialled by net/http as [::1]:PORT; the library must not resolve it as
// another address (the IPv6 address ::1:PORT on port 443, which only "*"
// matches) and send that host's certificate to [::1]:PORT.
func TestSecurity4BareIPv6HostWithPort(t *testing.T) {
	for _, tc := range []struct {
		name string
		rt   func(sel *Selector, host string) (http.RoundTripper, error)
	}{
		{"RoundTripper", func(sel *Selector, _ string) (http.RoundTripper, error) { return sel.RoundTripper(), nil }},
		{"TransportFor", func(sel *Selector, host string) (http.RoundTripper, error) { return sel.TransportFor(host) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srvCA, cliCA := newCA(t, "servers"), newCA(t, "clients")
			server := serverLeaf(t, srvCA, "server")
			a, b := clientLeaf(t, cliCA, "a"), clientLeaf(t, cliCA, "b")
			store := newStore(t)
			idA, idB := add(t, store, a.PEM()), add(t, store, b.PEM())

			ln, port := secListenIPv6Port4(t)
			cl := &secCountingListener{Listener: ln}
			var mu sync.Mutex
			var presented []string
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "ok")
			}))
			srv.Listener.Close()
			srv.Listener = cl
			srv.TLS = &tls.Config{
				Certificates: []tls.Certificate{server.TLS},
				ClientAuth:   tls.RequireAnyClientCert,
				MinVersion:   tls.VersionTLS12,
				VerifyConnection: func(cs tls.ConnectionState) error {
					mu.Lock()
					defer mu.Unlock()
					if len(cs.PeerCertificates) > 0 {
						presented = append(presented, Fingerprint(cs.PeerCertificates[0].Raw))
					}
					return nil
				},
			}
			srv.StartTLS()
			t.Cleanup(srv.Close)

			bare := fmt.Sprintf("::1:%d", port)
			sel := newSelector(t, store, Policy{
				Certificates: Map{fmt.Sprintf("[::1]:%d", port): idA, "*": idB},
				RootCAs:      srvCA.Pool,
			})
			rt, err := tc.rt(sel, bare)
			if err == nil {
				_, err = secGet(rt, bare, "/")
			}
			assert.Error(t, err, "a request for URL.Host %q was sent", bare)
			mu.Lock()
			defer mu.Unlock()
			name := secNamer(map[string]string{idA: "A", idB: "B"})
			assert.NotContains(t, secNames(name, presented), "B", "[::1]:%d was offered the certificate of \"*\"", port)
			assert.Zero(t, cl.accepts.Load(), "[::1]:%d accepted a connection (certificates offered: %v)", port, secNames(name, presented))
		})
	}
}

// --- 5. a base transport that bypasses the TLS config -------------------------

// Rule (§3): a base transport whose settings bypass the TLS config
// (DialTLSContext, DialTLS) is rejected by New, with an error naming the
// field.
func TestSecurity5BaseDialTLSRejected(t *testing.T) {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return tls.Dial(network, addr, &tls.Config{})
	}
	for _, tc := range []struct {
		field string
		base  *http.Transport
	}{
		{"DialTLSContext", &http.Transport{DialTLSContext: dial}},
		{"DialTLS", &http.Transport{DialTLS: func(network, addr string) (net.Conn, error) {
			return dial(context.Background(), network, addr)
		}}},
	} {
		t.Run(tc.field, func(t *testing.T) {
			sel, err := New(nil, Policy{}, WithBaseTransport(tc.base))
			if sel != nil {
				sel.Close()
			}
			require.Error(t, err, "New accepted a base transport that sets %s", tc.field)
			assert.Regexp(t, regexp.MustCompile(`\b`+tc.field+`\b`), err.Error(), "the error does not name the field")
		})
	}
}

// --- 6. a closed selector refuses --------------------------------------------

// Rule (§6): after Close, every transport, config and the RoundTripper
// refuse with ErrClosed and present no certificate, including those
// obtained before the Close.
func TestSecurity6ClosedSelectorRefuses(t *testing.T) {
	w := secNewWorld(t, upstreamConfig{})
	sel := newSelector(t, w.store, Policy{Certificates: Map{w.up.Host: w.idA}, RootCAs: w.srvCA.Pool})
	tr, err := sel.TransportFor(w.up.Host)
	require.NoError(t, err)
	r, err := secGet(tr, w.up.Host, "/")
	require.NoError(t, err)
	require.Equal(t, "A", w.name(r.certID))
	cfg, err := sel.TLSConfigFor(w.up.Host)
	require.NoError(t, err)
	r.reply, err = dialGet(w.up.Addr, cfg)
	require.NoError(t, err)
	require.Equal(t, "A", w.name(r.certID))
	rt := sel.RoundTripper()

	shakes := len(w.up.presented())
	require.NoError(t, sel.Close())
	for _, tc := range []struct {
		name string
		use  func() error
	}{
		{"TransportFor", func() error {
			_, err := secGet(tr, w.up.Host, "/")
			return err
		}},
		{"TLSConfigFor", func() error {
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: secHung}, Config: cfg}
			ctx, cancel := context.WithTimeout(context.Background(), secHung)
			defer cancel()
			conn, err := d.DialContext(ctx, "tcp", w.up.Addr)
			if err == nil {
				conn.Close()
			}
			return err
		}},
		{"RoundTripper", func() error {
			_, err := secGet(rt, w.up.Host, "/")
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.use()
			require.Error(t, err, "the %s of a closed selector still works", tc.name)
			assert.ErrorIs(t, err, ErrClosed)
		})
	}
	var after []string
	for _, id := range secPresentedSince(w.up, shakes) {
		if id != "none" {
			after = append(after, id)
		}
	}
	assert.Empty(t, secNames(w.name, after), "client certificates presented after Close")
}

// --- 7. a session is resumed only by the identity that made it ---------------

// Rule (§4, §6): a session ticket is stored under the TLS identity of the
// handshake that made it, never under a later one; a change of certificate
// never resumes a session made under another. The ticket of a TLS 1.3
// handshake that presented B arrives (on the first Read) after the policy
// changed back to A: a later connection must not resume it.
func TestSecurity7SessionNotResumedAcrossIdentity(t *testing.T) {
	w := secNewWorld(t, upstreamConfig{})
	policy := func(id string) Policy {
		return Policy{Certificates: Map{w.up.Host: id}, RootCAs: w.srvCA.Pool}
	}
	sel := newSelector(t, w.store, policy(w.idA))
	cfg, err := sel.TLSConfigFor(w.up.Host)
	require.NoError(t, err)
	require.NoError(t, sel.Update(policy(w.idB)))

	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: secHung}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), secHung)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", w.up.Addr)
	require.NoError(t, err)
	conn := c.(*tls.Conn)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(secHung)))
	require.Equal(t, uint16(tls.VersionTLS13), conn.ConnectionState().Version, "the test needs TLS 1.3")

	require.NoError(t, sel.Update(policy(w.idA)))
	_, err = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: "+w.up.Addr+"\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil) // the session ticket is taken here
	require.NoError(t, err)
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, "B", w.name(resp.Header.Get("X-Client-Cert")), "the first connection should have presented B")
	conn.Close()

	var r reply
	err = secWithin(t, "the second connection", func() (err error) {
		r, err = dialGet(w.up.Addr, cfg)
		return err
	})
	require.NoError(t, err)
	assert.Equal(t, "A", w.name(r.certID), "the connection made under A presented another certificate (resumed=%v)", r.resumed)
}

// --- 8. a FIFO in a FileStore does not hang requests -------------------------

// secMkfifo makes a FIFO at path with the mkfifo program: syscall.Mkfifo
// exists on Unix only, and this file builds everywhere.
func secMkfifo(t *testing.T, path string) {
	t.Helper()
	prog, err := exec.LookPath("mkfifo")
	if err != nil {
		t.Skipf("no mkfifo program: %v", err)
	}
	out, err := exec.Command(prog, "-m", "600", path).CombinedOutput()
	require.NoError(t, err, "mkfifo: %s", out)
}

// Rule (§3 fail closed, §5): an entry file of a FileStore that is not a
// regular file (here a FIFO, which blocks whoever opens it for reading)
// fails the request promptly with an error naming the entry, instead of
// blocking it.
func TestSecurity8FIFOEntryFailsFast(t *testing.T) {
	w := secNewWorld(t, upstreamConfig{})
	dir := t.TempDir()
	secret := []byte("secret of the FIFO test")
	fs1, err := NewFileStore(dir, secret)
	require.NoError(t, err)
	t.Cleanup(func() { fs1.Close() })
	id := add(t, fs1, w.a.PEM())
	entry := filepath.Join(dir, id+".pem")
	sel := newSelector(t, fs1, Policy{Certificates: Map{w.up.Host: id}, RootCAs: w.srvCA.Pool})
	require.NoError(t, os.Remove(entry))
	secMkfifo(t, entry)
	t.Cleanup(func() {
		// Open the FIFO for writing while readers block on it, so that
		// they return: a blocked test leaves no goroutine stuck.
		for range 100 {
			f, err := os.OpenFile(entry, os.O_WRONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				return // no reader left
			}
			f.Close()
			time.Sleep(10 * time.Millisecond)
		}
	})

	// A policy set now fails fast, naming the entry.
	fs2, err := NewFileStore(dir, secret)
	require.NoError(t, err)
	t.Cleanup(func() { fs2.Close() })
	err = secWithin(t, "New on a store whose entry is a FIFO", func() error {
		_, err := New(fs2, Policy{Certificates: Map{w.up.Host: id}, RootCAs: w.srvCA.Pool})
		return err
	})
	require.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), id, "the error does not name the entry")

	// The selector set before sees the change within the poll bound; no
	// request blocks meanwhile, and then they fail closed naming the entry.
	deadline := time.Now().Add(5 * FileStorePollInterval)
	for {
		err = secWithin(t, "the request for a host whose entry is a FIFO", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), secHung/2)
			defer cancel()
			_, err := secGetCtx(ctx, sel.RoundTripper(), w.up.Host, "/")
			return err
		})
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Error(t, err, "the store never saw its entry replaced by a FIFO")
	assert.NotErrorIs(t, err, context.DeadlineExceeded, "the request waited until its deadline")
	assert.Contains(t, err.Error(), id, "the error does not name the entry")
}

// --- 9. no key material in pattern errors ------------------------------------

// Rule (§3, README "Inline PEM is named ... never by its text: keys must
// not reach logs"): an invalid pattern is named in the error without its
// text when it holds PEM, and cut when long: the error holds no line of
// the PEM and is shorter than 300 bytes.
func TestSecurity9NoKeyMaterialInPatternErrors(t *testing.T) {
	key := string(clientLeaf(t, newCA(t, "keys"), "k").KeyPEM)
	for _, tc := range []struct {
		name    string
		policy  Policy
		secrets string // text none of whose lines may appear in the error
	}{
		{"private key as a certificate pattern", Policy{Certificates: Map{key: "x"}}, key},
		{"private key as a pin pattern", Policy{PinnedPublicKeys: Map{key: "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}, key},
		{"key lines around a host", Policy{Certificates: Map{"api.example.com/" + key: "x"}}, key},
		{"very long pattern", Policy{Certificates: Map{strings.Repeat("abcdefghij.", 1000) + "com/": "x"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := New(nil, tc.policy)
			if sel != nil {
				sel.Close()
			}
			require.Error(t, err)
			msg := err.Error()
			var leaked []string
			for line := range strings.Lines(tc.secrets) {
				if line = strings.TrimSpace(line); line != "" && strings.Contains(msg, line) {
					leaked = append(leaked, line[:min(len(line), 12)]+"...")
				}
			}
			assert.Empty(t, leaked, "lines of the PEM in the error")
			assert.Less(t, len(msg), 300, "the error is %d bytes long: %.60q...", len(msg), msg)
		})
	}
}
