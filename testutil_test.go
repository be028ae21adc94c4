package mtls

// Shared helpers of transport_test.go, pinning_test.go and change_test.go:
// throw-away PKIs, real TLS upstreams on loopback that report what they saw,
// a counting CertStore and an event recorder. Nothing here is a mock of the
// package: every request below makes real TLS handshakes.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/require"
)

// waitFor bounds the polling loops of the tests: they poll for a condition
// until it holds or this much time has passed. It is a deadline, not a
// timing assertion.
const waitFor = 15 * time.Second

// --- PKI ---------------------------------------------------------------------

func newCA(t testing.TB, name string) *mtlstest.CA {
	t.Helper()
	ca, err := mtlstest.NewCA(name)
	require.NoError(t, err)
	return ca
}

func issue(t testing.TB, ca *mtlstest.CA, o mtlstest.Options) *mtlstest.Leaf {
	t.Helper()
	leaf, err := ca.Issue(o)
	require.NoError(t, err)
	return leaf
}

// serverLeaf issues a server certificate valid for 127.0.0.1, ::1 and
// localhost.
func serverLeaf(t testing.TB, ca *mtlstest.CA, cn string) *mtlstest.Leaf {
	t.Helper()
	return issue(t, ca, mtlstest.Options{
		CommonName: cn,
		DNSNames:   []string{"localhost"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	})
}

// clientLeaf issues a client certificate named cn.
func clientLeaf(t testing.TB, ca *mtlstest.CA, cn string) *mtlstest.Leaf {
	t.Helper()
	return issue(t, ca, mtlstest.Options{CommonName: cn})
}

// expiredLeaf issues a certificate whose validity ended an hour ago.
func expiredLeaf(t testing.TB, ca *mtlstest.CA, cn string) *mtlstest.Leaf {
	t.Helper()
	return issue(t, ca, mtlstest.Options{
		CommonName: cn,
		NotBefore:  time.Now().Add(-48 * time.Hour),
		NotAfter:   time.Now().Add(-time.Hour),
	})
}

// pinFor computes the curl/Envoy pin of a certificate's key independently of
// the package: "sha256//" + base64(SHA-256(SPKI DER)).
func pinFor(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256//" + base64.StdEncoding.EncodeToString(sum[:])
}

// publicKeyPEM returns the leaf's public key as a PEM PUBLIC KEY block.
func publicKeyPEM(t testing.TB, leaf *mtlstest.Leaf) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(leaf.Key.Public())
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// --- files -------------------------------------------------------------------

// writeFile writes data to dir/name and returns the path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// replaceFile replaces path atomically: a temp file in the same directory,
// renamed over it (what a certificate rotation tool does).
func replaceFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	require.NoError(t, err)
	_, err = tmp.Write(data)
	require.NoError(t, err)
	require.NoError(t, tmp.Close())
	require.NoError(t, os.Rename(tmp.Name(), path))
}

// --- stores ------------------------------------------------------------------

// newStore returns an empty in-memory store that can hold private keys.
func newStore(t testing.TB) *MemoryStore {
	t.Helper()
	return NewMemoryStore([]byte("test secret of transport tests"))
}

// add stores pemData and returns its ID.
func add(t testing.TB, s CertStore, pemData []byte) string {
	t.Helper()
	id, err := s.Add(context.Background(), pemData)
	require.NoError(t, err)
	return id
}

func del(t testing.TB, s CertStore, id string) {
	t.Helper()
	require.NoError(t, s.Delete(context.Background(), id))
}

// countingStore counts the calls that reach the store it wraps, and
// forwards Notify: it is a Notifier exactly when the wrapped store is not
// hidden behind silentStore.
type countingStore struct {
	inner                     CertStore
	gets, lists, adds, delets atomic.Int64
}

func (c *countingStore) Add(ctx context.Context, p []byte) (string, error) {
	c.adds.Add(1)
	return c.inner.Add(ctx, p)
}

func (c *countingStore) Get(ctx context.Context, id string) (*Certificate, error) {
	c.gets.Add(1)
	return c.inner.Get(ctx, id)
}

func (c *countingStore) Delete(ctx context.Context, id string) error {
	c.delets.Add(1)
	return c.inner.Delete(ctx, id)
}

func (c *countingStore) List(ctx context.Context) ([]string, error) {
	c.lists.Add(1)
	return c.inner.List(ctx)
}

func (c *countingStore) Notify(fn func(id string)) func() {
	return c.inner.(Notifier).Notify(fn)
}

// reads is the number of read calls (Get, List) so far.
func (c *countingStore) reads() int64 { return c.gets.Load() + c.lists.Load() }

// silentStore hides the Notifier of a store: the selector must read it
// through.
type silentStore struct{ CertStore }

// --- selectors and clients ---------------------------------------------------

// newSelector makes a gateway selector that is closed at the end of the test.
func newSelector(t testing.TB, store CertStore, p Policy, opts ...Option) *Selector {
	t.Helper()
	s, err := New(store, p, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// forAPI derives an API selector that is closed at the end of the test.
func forAPI(t testing.TB, gw *Selector, p Policy) *Selector {
	t.Helper()
	a, err := gw.ForAPI(p)
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	return a
}

// reply is what an upstream answered.
type reply struct {
	status  int
	certID  string // the client certificate's ID the upstream saw, "none" if none
	conn    int    // the upstream's number of the connection that served it
	resumed bool   // the client's resp.TLS.DidResume
	body    string
}

// get sends GET url through rt and reads the whole response.
func get(rt http.RoundTripper, url string) (reply, error) {
	return getCtx(context.Background(), rt, url)
}

func getCtx(ctx context.Context, rt http.RoundTripper, url string) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return reply{}, err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	r := reply{status: resp.StatusCode, certID: resp.Header.Get("X-Client-Cert"), body: string(body)}
	r.conn, _ = strconv.Atoi(resp.Header.Get("X-Conn"))
	if resp.TLS != nil {
		r.resumed = resp.TLS.DidResume
	}
	return r, nil
}

// mustGet is get that requires a 200.
func mustGet(t testing.TB, rt http.RoundTripper, url string) reply {
	t.Helper()
	r, err := get(rt, url)
	require.NoError(t, err, "GET %s", url)
	require.Equal(t, http.StatusOK, r.status, "GET %s: %s", url, r.body)
	return r
}

// closeIdle closes the idle connections of rt.
func closeIdle(t testing.TB, rt http.RoundTripper) {
	t.Helper()
	ci, ok := rt.(interface{ CloseIdleConnections() })
	require.True(t, ok, "%T has no CloseIdleConnections", rt)
	ci.CloseIdleConnections()
}

// dialGet makes one TLS connection with cfg to addr, sends a GET over it
// and returns the reply with the connection's resumption state.
func dialGet(addr string, cfg *tls.Config) (reply, error) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return reply{}, err
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: "+addr+"\r\nConnection: close\r\n\r\n"); err != nil {
		return reply{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return reply{}, err
	}
	body, err := io.ReadAll(resp.Body) // also reads the session tickets
	resp.Body.Close()
	if err != nil {
		return reply{}, err
	}
	r := reply{status: resp.StatusCode, certID: resp.Header.Get("X-Client-Cert"), body: string(body),
		resumed: conn.ConnectionState().DidResume}
	r.conn, _ = strconv.Atoi(resp.Header.Get("X-Conn"))
	return r, nil
}

// --- upstreams ---------------------------------------------------------------

// upstreamConfig describes a test upstream.
type upstreamConfig struct {
	// cert is what the server presents.
	cert tls.Certificate
	// clientAuth is the server's ClientAuth. When verifyClients is set it is
	// RequireAnyClientCert whatever this says, so that the upstream records
	// every certificate it is offered, even one it then refuses.
	clientAuth tls.ClientAuthType
	// acceptableCAs is the server's ClientCAs: the CA names it sends in its
	// CertificateRequest (and nothing else, since verification is ours).
	acceptableCAs *x509.CertPool
	// verifyClients: when set, the client must present a chain that
	// verifies to this pool for client authentication.
	verifyClients *x509.CertPool
	// maxVersion caps the server's TLS version; 0: TLS 1.3.
	maxVersion uint16
	// http2 serves HTTP/2 (ALPN h2) as well as HTTP/1.1.
	http2 bool
	// handler, if set, serves the request after the reporting headers
	// are set.
	handler http.HandlerFunc
}

// upstream is a TLS server on 127.0.0.1 that answers with the ID of the
// client certificate it saw (header X-Client-Cert, "none" for none) and the
// number of the connection (X-Conn), and keeps count of what it saw.
type upstream struct {
	*httptest.Server
	Host string // 127.0.0.1:port, as req.URL.Host
	Addr string

	requests atomic.Int64

	mu         sync.Mutex
	conns      map[net.Conn]int
	states     map[int]http.ConnState
	handshakes []string // client certificate IDs presented, "none" for none
}

type connKey struct{}

func startUpstream(t testing.TB, c upstreamConfig) *upstream {
	t.Helper()
	u := &upstream{conns: map[net.Conn]int{}, states: map[int]http.ConnState{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		id := "none"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			id = Fingerprint(r.TLS.PeerCertificates[0].Raw)
		}
		w.Header().Set("X-Client-Cert", id)
		if n, ok := r.Context().Value(connKey{}).(int); ok {
			w.Header().Set("X-Conn", strconv.Itoa(n))
		}
		if r.TLS != nil {
			w.Header().Set("X-Resumed", strconv.FormatBool(r.TLS.DidResume))
		}
		if c.handler != nil {
			c.handler(w, r)
			return
		}
		io.WriteString(w, id)
	}))
	// Handshakes that the tests make fail on purpose would fill the log.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Config.ConnContext = func(ctx context.Context, conn net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, u.connID(conn))
	}
	srv.Config.ConnState = func(conn net.Conn, st http.ConnState) {
		n := u.connID(conn)
		u.mu.Lock()
		u.states[n] = st
		u.mu.Unlock()
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{c.cert},
		ClientAuth:   c.clientAuth,
		ClientCAs:    c.acceptableCAs,
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   c.maxVersion,
		NextProtos:   []string{"http/1.1"},
	}
	if c.verifyClients != nil {
		cfg.ClientAuth = tls.RequireAnyClientCert
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		id := "none"
		if len(cs.PeerCertificates) > 0 {
			id = Fingerprint(cs.PeerCertificates[0].Raw)
		}
		u.mu.Lock()
		u.handshakes = append(u.handshakes, id)
		u.mu.Unlock()
		if c.verifyClients == nil {
			return nil
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("upstream: no client certificate")
		}
		inter := x509.NewCertPool()
		for _, ic := range cs.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots: c.verifyClients, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		return err
	}
	if c.http2 {
		cfg.NextProtos = []string{"h2", "http/1.1"}
		srv.EnableHTTP2 = true
	}
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u.Server = srv
	u.Addr = srv.Listener.Addr().String()
	u.Host = u.Addr
	return u
}

// connID returns the number of conn, numbering it on first sight (from 1).
func (u *upstream) connID(conn net.Conn) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n, ok := u.conns[conn]
	if !ok {
		n = len(u.conns) + 1
		u.conns[conn] = n
	}
	return n
}

// newConns is the number of connections the upstream has accepted.
func (u *upstream) newConns() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.conns)
}

// presented returns the client certificate IDs offered at each handshake.
func (u *upstream) presented() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.handshakes...)
}

func (u *upstream) state(n int) http.ConnState {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.states[n]
}

// requireClosed polls until the upstream's connection n has closed.
func (u *upstream) requireClosed(t testing.TB, n int, why string) {
	t.Helper()
	require.NotZero(t, n, "no connection number")
	deadline := time.Now().Add(waitFor)
	for u.state(n) != http.StateClosed {
		if time.Now().After(deadline) {
			t.Fatalf("%s: connection %d of %s is %v, not closed, after %v", why, n, u.Host, u.state(n), waitFor)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// URLPath returns the upstream's https URL for path.
func (u *upstream) URLPath(path string) string { return "https://" + u.Host + path }

// tlsUpstream starts an upstream presenting leaf, with client certificates
// verified against clients (nil: no client authentication).
func tlsUpstream(t testing.TB, leaf *mtlstest.Leaf, clients *mtlstest.CA) *upstream {
	t.Helper()
	c := upstreamConfig{cert: leaf.TLS}
	if clients != nil {
		c.verifyClients = clients.Pool
	}
	return startUpstream(t, c)
}

// --- events ------------------------------------------------------------------

type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) hook(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

// of returns the events of kind for host.
func (l *eventLog) of(kind EventKind, host string) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for _, e := range l.events {
		if e.Kind == kind && e.Host == host {
			out = append(out, e)
		}
	}
	return out
}

func (l *eventLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.events {
		fmt.Fprintf(&b, "%v host=%s cert=%s err=%v\n", e.Kind, e.Host, e.CertificateID, e.Err)
	}
	return b.String()
}

// requireNoConnection checks that u never saw a connection nor a request.
func requireNoConnection(t testing.TB, u *upstream) {
	t.Helper()
	require.Zero(t, u.newConns(), "the upstream accepted a connection")
	require.Zero(t, u.requests.Load(), "the upstream saw a request")
}
