package mtls

// Hostile review of the restructured package: each Test below shows a
// defect (it fails on the commit reviewed) unless its comment says
// "coverage", in which case it checks a rule that holds today and that no
// other test covers. Every test makes real TLS handshakes on loopback with
// the package's exported API; none mocks the package. Bounded waits only.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reviewHung bounds anything that could block. A deadline, not a timing
// assertion.
const reviewHung = 10 * time.Second

// reviewWithin runs fn on its own goroutine and reports whether it
// returned within reviewHung; the goroutine is left behind if not.
func reviewWithin(fn func()) bool {
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
		return true
	case <-time.After(reviewHung):
		return false
	}
}

// --- R1: an http:// request through an https:// proxy -----------------------

// reviewChildEnv marks the child process of a test that must run alone in
// its own process (it changes the system roots, which a process loads once).
const reviewChildEnv = "MTLS_REVIEW_CHILD"

// reviewInChild re-runs the test named name alone in a child process and
// fails if it fails there; it reports whether the caller is that child.
func reviewInChild(t *testing.T, name string) bool {
	t.Helper()
	if os.Getenv(reviewChildEnv) == name {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*reviewHung)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), reviewChildEnv+"="+name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in a process of its own, %s failed (%v):\n%s", name, err, out)
	}
	return false
}

// Rule (§3 "A proxy is a host of its own"): with an https:// proxy, the TLS
// connection to the proxy gets the certificate the proxy's host maps to and
// is verified as that host, pins included. That holds for the TLS
// connection to the proxy whatever the scheme of the request it carries:
// an http:// request sent through an https:// proxy still crosses a TLS
// connection to the proxy. Here the proxy's host is pinned to a key the
// proxy does not have and mapped to client certificate P; its server
// certificate chains to a root the system trusts (the child process sets
// SSL_CERT_FILE). An https:// request is refused with ErrPinMismatch; an
// http:// request goes to the proxy over an unpinned connection, through
// the plain clone of the base, which offers no certificate either.
func TestReviewPlainHTTPThroughHTTPSProxyBypassesProxyPolicy(t *testing.T) {
	const name = "TestReviewPlainHTTPThroughHTTPSProxyBypassesProxyPolicy"
	if !reviewInChild(t, name) {
		return
	}
	proxyCA := newCA(t, "system-trusted proxies")
	roots := writeFile(t, t.TempDir(), "roots.pem", proxyCA.CertPEM)
	t.Setenv("SSL_CERT_FILE", roots) // before anything in this process loads the system roots
	t.Setenv("SSL_CERT_DIR", t.TempDir())

	proxy := secStartProxy(t, serverLeaf(t, proxyCA, "proxy"))
	cliCA := newCA(t, "clients")
	store := newStore(t)
	idP := add(t, store, clientLeaf(t, cliCA, "proxy client").PEM())
	elsewhere := clientLeaf(t, cliCA, "some other key")
	base := &http.Transport{Proxy: func(*http.Request) (*url.URL, error) { return proxy.URL, nil }}
	sel := newSelector(t, store, Policy{
		Certificates:     Map{proxy.Host: idP},
		PinnedPublicKeys: Map{proxy.Host: pinFor(elsewhere.Cert)}, // the proxy does not have this key
	}, WithBaseTransport(base))

	// Control: an https:// request meets the proxy's pin.
	_, err := secGet(sel.RoundTripper(), "target.example:443", "/")
	require.ErrorIs(t, err, ErrPinMismatch, "control: the https:// request should fail on the proxy's pin")

	// An http:// request crosses a TLS connection to the same proxy.
	req, err := http.NewRequest(http.MethodGet, "http://target.example/", nil)
	require.NoError(t, err)
	resp, err := sel.RoundTripper().RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	offered, _ := proxy.seen()
	assert.ErrorIs(t, err, ErrPinMismatch,
		"the http:// request reached the pinned proxy over a TLS connection that did not check its pin (proxy answered %v)", statusOf(resp))
	for _, id := range offered {
		assert.Equal(t, idP, id, "the proxy was offered %q, not the certificate its host maps to", id)
	}
}

func statusOf(resp *http.Response) any {
	if resp == nil {
		return "nothing"
	}
	return resp.Status
}

// --- R2: organisation-scoped notifying stores --------------------------------

// reviewOrgStore is a CertStore scoped to one organisation, as §5 describes
// (and as a store shared by a fleet would be): its IDs are the
// organisation's prefix and the fingerprint, it finds only its own
// organisation's IDs (the bare fingerprint meaning its own), and it
// notifies changes with the IDs it gives out, as storetest's Notify check
// expects (the ID Add returned). It keeps its entries in a MemoryStore.
type reviewOrgStore struct {
	inner *MemoryStore
	org   string
}

func (s *reviewOrgStore) scope(id string) (string, error) {
	plain, ok := strings.CutPrefix(id, s.org)
	if !ok && len(id) == 64 {
		plain, ok = id, true
	}
	if !ok || len(plain) != 64 {
		return "", fmt.Errorf("%w: %s is not an ID of organisation %s", ErrNotFound, id, s.org)
	}
	return plain, nil
}

func (s *reviewOrgStore) Add(ctx context.Context, p []byte) (string, error) {
	id, err := s.inner.Add(ctx, p)
	if err != nil {
		return "", err
	}
	return s.org + id, nil
}

func (s *reviewOrgStore) Get(ctx context.Context, id string) (*Certificate, error) {
	plain, err := s.scope(id)
	if err != nil {
		return nil, err
	}
	return s.inner.Get(ctx, plain)
}

func (s *reviewOrgStore) Delete(ctx context.Context, id string) error {
	plain, err := s.scope(id)
	if err != nil {
		return err
	}
	return s.inner.Delete(ctx, plain)
}

func (s *reviewOrgStore) List(ctx context.Context) ([]string, error) {
	ids, err := s.inner.List(ctx)
	for i := range ids {
		ids[i] = s.org + ids[i]
	}
	return ids, err
}

func (s *reviewOrgStore) Notify(fn func(id string)) func() {
	return s.inner.Notify(func(id string) { fn(s.org + id) })
}

// Rule (§6, §3 fail closed, §5 organisation scoping): store changes arrive
// by notification, and once a certificate is deleted every request for its
// host fails closed. With a notifying store scoped by organisation, the
// notification names the entry by the ID the store gives out ("acme" +
// fingerprint); the Selector compares it with the bare fingerprint of the
// Map value, never matches, and keeps presenting the deleted certificate,
// forever (a notifying store is never read again without a notification).
func TestReviewOrgScopedStoreDeletionIsSeen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value func(orgID string) string // the Map value, from the ID the store returned
	}{
		{"value with the organisation prefix", func(id string) string { return id }},
		{"bare fingerprint", func(id string) string { return id[len(id)-64:] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := secNewWorld(t, upstreamConfig{})
			store := &reviewOrgStore{inner: newStore(t), org: "acme"}
			id := add(t, store, w.a.PEM())
			require.True(t, strings.HasPrefix(id, "acme"))
			sel := newSelector(t, store, Policy{Certificates: Map{w.up.Host: tc.value(id)}, RootCAs: w.srvCA.Pool})
			r, err := secGet(sel.RoundTripper(), w.up.Host, "/")
			require.NoError(t, err)
			require.Equal(t, "A", w.name(r.certID))

			del(t, store, id)
			shakes := len(w.up.presented())
			closeIdle(t, sel.RoundTripper()) // even with no pooled connection left
			r, err = secGet(sel.RoundTripper(), w.up.Host, "/")
			assert.ErrorIs(t, err, ErrNotFound, "after Delete returned, a request was sent (the upstream saw certificate %s)", w.name(r.certID))
			assert.NotContains(t, secPresentedSince(w.up, shakes), w.idA, "the deleted certificate was presented after Delete returned")
		})
	}
}

// Pins read from such a store have the same defect: a deleted pin never
// drops out.
func TestReviewOrgScopedStoreDeletedPinIsSeen(t *testing.T) {
	w := secNewWorld(t, upstreamConfig{})
	store := &reviewOrgStore{inner: newStore(t), org: "acme"}
	pinID := add(t, store, publicKeyPEM(t, w.server))
	sel := newSelector(t, store, Policy{
		Certificates:     Map{w.up.Host: string(w.a.PEM())},
		PinnedPublicKeys: Map{w.up.Host: pinID},
		RootCAs:          w.srvCA.Pool,
	})
	_, err := secGet(sel.RoundTripper(), w.up.Host, "/")
	require.NoError(t, err)
	del(t, store, pinID)
	closeIdle(t, sel.RoundTripper())
	_, err = secGet(sel.RoundTripper(), w.up.Host, "/")
	assert.ErrorIs(t, err, ErrPinMismatch, "the host's only pin was deleted: it must fail every handshake")
}

// --- R3: TransportFor's transport dials what its Proxy hook cannot see -------

// Rule (§3 "No shared mutable config", "The host is what is dialled"): the
// transport of TransportFor(h) refuses requests for other hosts, and one
// host's certificate is never sent to another. Its own connections (meant
// for WebSocket upgrades) are guarded by its Proxy hook only. Go 1.26's
// Transport.NewClientConn calls that hook with a request whose URL.Host has
// no port, which the hook reads as port 443: so the transport of
// 127.0.0.1 (port 443) dials 127.0.0.1:PORT, another host, and presents
// 127.0.0.1:443's certificate A to it, although that host maps to B.
func TestReviewTransportForNewClientConnOtherPort(t *testing.T) {
	w := secNewWorld(t, upstreamConfig{})
	sel := newSelector(t, w.store, Policy{
		Certificates: Map{"127.0.0.1:443": w.idA, w.up.Host: w.idB},
		RootCAs:      w.srvCA.Pool,
	})
	tr, err := sel.TransportFor("127.0.0.1")
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), reviewHung)
	defer cancel()
	var got string
	cc, err := tr.NewClientConn(ctx, "https", w.up.Host)
	if err == nil {
		defer cc.Close()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.up.URLPath("/"), nil)
		if resp, rerr := cc.RoundTrip(req); rerr == nil {
			got = resp.Header.Get("X-Client-Cert")
			resp.Body.Close()
		}
	}
	assert.Error(t, err, "the transport for 127.0.0.1:443 opened a connection to %s (the upstream saw certificate %s)", w.up.Host, w.name(got))
	assert.NotContains(t, secNames(w.name, w.up.presented()), "A", "%s was offered the certificate of 127.0.0.1:443", w.up.Host)
}

// The same transport's TLSClientConfig, the config it hands to whoever
// holds it, is frozen to the identity it was made with: after the host's
// certificate is replaced and deleted, a handshake made with it still
// presents the deleted certificate (§3 "one whose certificate is gone fails
// closed", §4 "the callbacks of a returned tls.Config consult the
// selector's current state"), and it presents it to whatever address it is
// dialled to.
func TestReviewTransportForTLSConfigPresentsDeletedCertificate(t *testing.T) {
	w := secNewWorld(t, upstreamConfig{})
	sel := newSelector(t, w.store, Policy{Certificates: Map{w.up.Host: w.idA}, RootCAs: w.srvCA.Pool})
	tr, err := sel.TransportFor(w.up.Host)
	require.NoError(t, err)
	require.NoError(t, sel.Update(Policy{Certificates: Map{w.up.Host: w.idB}, RootCAs: w.srvCA.Pool}))
	del(t, w.store, w.idA)

	shakes := len(w.up.presented())
	cfg := tr.TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	r, err := dialGet(w.up.Addr, cfg)
	assert.Error(t, err, "a handshake with the transport's config presented %s after it was deleted", w.name(r.certID))
	assert.NotContains(t, secPresentedSince(w.up, shakes), w.idA, "the deleted certificate was presented")
}

// --- R4: TransportFor's cache is not bounded ---------------------------------

// Rule (§6 Options "the bound of the per-identity transport cache"; brief:
// no unbounded growth driven by request hosts): WithMaxTransports bounds the
// transports a Selector keeps. A proxy that calls TransportFor(req.URL.Host)
// makes one *http.Transport per distinct host an attacker names, kept until
// Close: the transports TransportFor gives out are never evicted.
func TestReviewTransportForCacheIsBounded(t *testing.T) {
	const max = 8
	sel := newSelector(t, nil, Policy{}, WithMaxTransports(max))
	for i := range 2000 {
		_, err := sel.TransportFor(fmt.Sprintf("h%d.attacker.example", i))
		require.NoError(t, err)
	}
	_, pubs := sel.pool.snapshot()
	assert.LessOrEqual(t, len(pubs), max, "TransportFor keeps %d transports with WithMaxTransports(%d)", len(pubs), max)
}

// --- R5: kdf.json is read with os.ReadFile ----------------------------------

// Rule (brief (8), FileStore doc "No file in the directory blocks a call",
// §3 fail fast): a FIFO where kdf.json should be blocks the first operation
// that derives the store key (here New, checking a policy that names a
// sealed entry) forever, with the keyring's mutex held, so that every
// later Get or Add of a key on that store blocks too. (A symlink to
// /dev/zero there makes the same read grow without bound.)
func TestReviewFileStoreKDFFIFODoesNotBlock(t *testing.T) {
	w := secNewWorld(t, upstreamConfig{})
	dir := t.TempDir()
	secret := []byte("secret of the kdf FIFO test")
	fs1, err := NewFileStore(dir, secret)
	require.NoError(t, err)
	id := add(t, fs1, w.a.PEM())
	require.NoError(t, fs1.Close())
	kdf := filepath.Join(dir, kdfFileName)
	require.NoError(t, os.Remove(kdf))
	secMkfifo(t, kdf)
	t.Cleanup(func() { reviewUnblockFIFO(kdf) })

	fs2, err := NewFileStore(dir, secret)
	require.NoError(t, err)
	t.Cleanup(func() { fs2.Close() })
	var newErr error
	ok := reviewWithin(func() {
		var sel *Selector
		sel, newErr = New(fs2, Policy{Certificates: Map{w.up.Host: id}, RootCAs: w.srvCA.Pool})
		if sel != nil {
			sel.Close()
		}
	})
	require.True(t, ok, "New blocked on %s, a FIFO, for %v", kdfFileName, reviewHung)
	assert.Error(t, newErr)
}

// reviewUnblockFIFO opens path for writing while readers block on it, so
// that they see EOF and return.
func reviewUnblockFIFO(path string) {
	for range 200 {
		f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return // no reader left
		}
		f.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

// --- R6: key text in an error through os.PathError ---------------------------

// Rule (§3 "keys must not reach logs", errors.go "never contain key
// material"): a Map value that is neither an ID nor PEM is a file path, and
// errors name it through describe, which hashes anything long or over
// several lines. But when the OS refuses the path for another reason than
// "not found", the *os.PathError is wrapped as is, and its text carries the
// path verbatim. A private key pasted without its BEGIN line (a truncated
// copy) is such a path; when a component of it is over 255 bytes, stat
// fails with ENAMETOOLONG and the key's base64 lines reach the error.
func TestReviewNoKeyTextInPathErrors(t *testing.T) {
	body := reviewKeyBodyWithLongFirstComponent(t)
	value := body + "-----END PRIVATE KEY-----\n"
	sel, err := New(nil, Policy{Certificates: Map{"api.example.com": value}})
	if sel != nil {
		sel.Close()
	}
	require.Error(t, err)
	var leaked []string
	for line := range strings.Lines(body) {
		if line = strings.TrimSpace(line); line != "" && strings.Contains(err.Error(), line) {
			leaked = append(leaked, line[:min(len(line), 12)]+"...")
		}
	}
	assert.Empty(t, leaked, "lines of the private key in the error: %.120s...", err.Error())
}

// reviewKeyBodyWithLongFirstComponent returns the base64 lines of a fresh
// PKCS#8 private key whose first '/' comes after byte 255, so that as a
// path its first component is too long for the OS.
func reviewKeyBodyWithLongFirstComponent(t *testing.T) string {
	t.Helper()
	for range 20000 {
		k, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		require.NoError(t, err)
		der, err := x509.MarshalPKCS8PrivateKey(k)
		require.NoError(t, err)
		b64 := base64.StdEncoding.EncodeToString(der)
		var body strings.Builder
		for len(b64) > 64 {
			body.WriteString(b64[:64] + "\n")
			b64 = b64[64:]
		}
		body.WriteString(b64 + "\n")
		if i := strings.IndexByte(body.String(), '/'); i < 0 || i > 255 {
			return body.String()
		}
	}
	t.Fatal("no key found")
	return ""
}

// --- R7: the base transport is kept by reference -----------------------------

// Rule (§3 "A base transport whose settings bypass the TLS config
// (DialTLSContext, DialTLS) is rejected"): New checks the base, then keeps
// the caller's *http.Transport and clones it for every new pool. A DialTLS
// set on it after New (by the caller, or, with the default base, by any
// package of the process on http.DefaultTransport) is copied into every
// pool made after, and bypasses the package's TLS: the host's pins are not
// checked and its certificate is not the one presented.
func TestReviewBaseMutatedAfterNewBypassesTLS(t *testing.T) {
	w := secNewWorld(t, upstreamConfig{})
	base := &http.Transport{}
	sel := newSelector(t, w.store, Policy{
		Certificates:     Map{w.up.Host: w.idA},
		PinnedPublicKeys: Map{w.up.Host: pinFor(w.b.Cert)}, // not the server's key
		RootCAs:          w.srvCA.Pool,
	}, WithBaseTransport(base))
	base.DialTLS = func(network, addr string) (net.Conn, error) { //nolint:staticcheck // the point of the test
		return tls.Dial(network, addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{w.b.TLS}})
	}
	r, err := secGet(sel.RoundTripper(), w.up.Host, "/")
	assert.ErrorIs(t, err, ErrPinMismatch, "the pinned host was reached (it saw certificate %s)", w.name(r.certID))
}

// --- R8: a typed nil store ---------------------------------------------------

// Brief: no panic on bad input. New documents a nil store as accepted when
// the policy names no store ID; a nil *FileStore or *MemoryStore (the
// usual "store only when configured" variable) panics inside New instead of
// being treated as no store or refused with an error.
func TestReviewTypedNilStoreDoesNotPanic(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store CertStore
	}{
		{"*FileStore", (*FileStore)(nil)},
		{"*MemoryStore", (*MemoryStore)(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sel *Selector
			assert.NotPanics(t, func() { sel, _ = New(tc.store, Policy{}) })
			if sel != nil {
				sel.Close()
			}
		})
	}
}

// --- R9: the event hook runs under the pool's lock ---------------------------

// Rule (§6 Options "an event hook (certificate chosen, pin mismatch, pool
// retired)"; the rotation recipe "Add the new one, Update, then Delete the
// old one"; brief: no deadlock through store notifications or event
// hooks): PoolRetired is reported while the pool's mutex is held. A hook
// that finishes a rotation by deleting the retired certificate from the
// store (it does not call the Selector, as WithEventHook forbids) makes
// the store notify the Selector, which sweeps its pools and waits for that
// mutex: Update never returns, and nothing can use the Selector again.
func TestReviewEventHookDeletingFromStoreDoesNotDeadlock(t *testing.T) {
	w := secNewWorld(t, upstreamConfig{})
	hook := func(e Event) {
		if e.Kind == PoolRetired && e.CertificateID == w.idA {
			w.store.Delete(context.Background(), w.idA) // finish the rotation
		}
	}
	sel, err := New(w.store, Policy{Certificates: Map{w.up.Host: w.idA}, RootCAs: w.srvCA.Pool}, WithEventHook(hook))
	require.NoError(t, err)
	r, err := secGet(sel.RoundTripper(), w.up.Host, "/")
	require.NoError(t, err)
	require.Equal(t, "A", w.name(r.certID))

	var updErr error
	if !reviewWithin(func() { updErr = sel.Update(Policy{Certificates: Map{w.up.Host: w.idB}, RootCAs: w.srvCA.Pool}) }) {
		t.Fatalf("Update deadlocked: the PoolRetired hook deleted the old certificate from the store (the selector is left locked and is not closed)")
	}
	sel.Close()
	require.NoError(t, updErr)
}

// --- R10: a request in flight across a Delete resurrects the retired pool ----

// Rule (§6 "When a host's TLS identity changes ... its old pool retires:
// idle connections close", "a deletion is never undone by a request that
// was reading when it happened"): a request that read the certificate just
// before it was deleted may still be sent (no request in flight fails),
// but it puts a new pool of the deleted identity in the Selector, after the
// sweep that the Delete made. Its connection, authenticated with the
// deleted certificate, stays open and idle, and the pool keeps the deleted
// private key, until the host's next request with another identity or the
// base's idle timeout; requests for the host all fail closed meanwhile.
func TestReviewInFlightRequestDoesNotResurrectRetiredPool(t *testing.T) {
	w := secNewWorld(t, upstreamConfig{})
	store := secNewBlockingStore(t)
	id := add(t, store, w.a.PEM())
	sel := newSelector(t, store, Policy{Certificates: Map{w.up.Host: id}, RootCAs: w.srvCA.Pool})
	// Make what the selector read so far stale: the next request reads the store.
	del(t, store, id)
	add(t, store, w.a.PEM())

	store.arm(id)
	inflight := make(chan secReply, 1)
	go func() {
		r, _ := secGet(sel.RoundTripper(), w.up.Host, "/")
		inflight <- r
	}()
	select {
	case <-store.entered:
	case <-time.After(reviewHung):
		t.Fatal("the request did not read the store")
	}
	del(t, store, id) // returns with the read still in flight
	store.releaseNow()
	var r secReply
	select {
	case r = <-inflight:
	case <-time.After(reviewHung):
		t.Fatal("the request in flight did not end")
	}
	if r.conn == 0 {
		t.Skip("the request in flight was not sent: nothing to check")
	}
	_, err := secGet(sel.RoundTripper(), w.up.Host, "/")
	require.ErrorIs(t, err, ErrNotFound)
	es, _ := sel.pool.snapshot()
	for _, e := range es {
		assert.NotEqual(t, id, e.route.target.certID, "the pool of the deleted certificate is back in the selector, after Delete returned")
	}
	w.up.requireClosed(t, r.conn, "the idle connection made with the deleted certificate")
}

// --- R11: an IPv4 literal with a trailing dot is a DNS name to net/http -------

// Rule (§3 "The host is what is dialled ... where the two could differ, the
// request is refused"): the library normalises "127.0.0.1." to the IP
// address 127.0.0.1 (one trailing dot removed) and presents the
// certificate mapped to 127.0.0.1; net/http dials "127.0.0.1.", which is
// not an IP literal to Go: it looks the name up. Here the lookup (a base
// dialer with its own resolver, as a split-horizon or hostile DNS would
// answer) gives another address, and that host receives 127.0.0.1's
// certificate.
func TestReviewIPv4WithTrailingDotIsNotResolvedAsTheIP(t *testing.T) {
	w := secNewWorld(t, upstreamConfig{})
	other := serverLeafWithNames(t, w.srvCA, "other", "127.0.0.1") // a DNS SAN that reads like the IP
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2: %v", err)
	}
	var mu sync.Mutex
	var offered []string
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{other.TLS}, ClientAuth: tls.RequestClientCert,
				VerifyConnection: func(cs tls.ConnectionState) error {
					mu.Lock()
					defer mu.Unlock()
					if len(cs.PeerCertificates) > 0 {
						offered = append(offered, Fingerprint(cs.PeerCertificates[0].Raw))
					}
					return nil
				}})
			go func() {
				defer tc.Close()
				tc.SetDeadline(time.Now().Add(reviewHung))
				if _, err := http.ReadRequest(bufio.NewReader(tc)); err == nil {
					io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	// The resolver of the base dialer: what DNS answers for names.
	dns := map[string]string{"127.0.0.1.": "127.0.0.2"}
	base := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if ip, ok := dns[host]; ok {
			host = ip
		} else if net.ParseIP(host) == nil {
			return nil, errors.New("no such host " + host)
		}
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(host, p))
	}}
	sel := newSelector(t, w.store, Policy{Certificates: Map{"127.0.0.1": w.idA}, RootCAs: w.srvCA.Pool}, WithBaseTransport(base))
	_, err = secGet(sel.RoundTripper(), "127.0.0.1.:"+port, "/")
	mu.Lock()
	defer mu.Unlock()
	assert.NotContains(t, secNames(w.name, offered), "A", "127.0.0.1's certificate was presented to the host that DNS gave for the name 127.0.0.1.")
	assert.Error(t, err, "a request for URL.Host 127.0.0.1.:%s was sent", port)
}

// serverLeafWithNames issues a server certificate with the given DNS names.
func serverLeafWithNames(t *testing.T, ca *mtlstest.CA, cn string, names ...string) *mtlstest.Leaf {
	t.Helper()
	return issue(t, ca, mtlstest.Options{CommonName: cn, DNSNames: names})
}

// --- coverage: zero values ---------------------------------------------------

// Coverage (holds today; no other test covers it): the zero Selector and a
// nil *Selector are closed and refuse everything with ErrClosed without
// panicking; the zero FileStore is closed; the zero MemoryStore is an empty
// store without a secret; a Selector on either works.
func TestReviewCoverageZeroValues(t *testing.T) {
	for name, s := range map[string]*Selector{"zero": {}, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, "https://example.com/", nil)
			require.NoError(t, err)
			_, err = s.RoundTripper().RoundTrip(req)
			assert.ErrorIs(t, err, ErrClosed)
			req, err = http.NewRequest(http.MethodGet, "http://example.com/", nil)
			require.NoError(t, err)
			_, err = s.RoundTripper().RoundTrip(req)
			assert.ErrorIs(t, err, ErrClosed)
			s.RoundTripper().(interface{ CloseIdleConnections() }).CloseIdleConnections()
			_, err = s.TransportFor("example.com")
			assert.ErrorIs(t, err, ErrClosed)
			_, err = s.TLSConfigFor("example.com")
			assert.ErrorIs(t, err, ErrClosed)
			_, err = s.ForAPI(Policy{})
			assert.ErrorIs(t, err, ErrClosed)
			assert.ErrorIs(t, s.Update(Policy{}), ErrClosed)
			assert.NoError(t, s.Close())
		})
	}
	t.Run("zero FileStore", func(t *testing.T) {
		var fs FileStore
		ctx := context.Background()
		_, err := fs.Add(ctx, []byte("x"))
		assert.ErrorIs(t, err, ErrClosed)
		_, err = fs.Get(ctx, strings.Repeat("a", 64))
		assert.ErrorIs(t, err, ErrClosed)
		_, err = fs.List(ctx)
		assert.ErrorIs(t, err, ErrClosed)
		assert.ErrorIs(t, fs.Delete(ctx, strings.Repeat("a", 64)), ErrClosed)
		sel, err := New(&fs, Policy{Certificates: Map{"api.example.com": strings.Repeat("a", 64)}})
		assert.ErrorIs(t, err, ErrClosed)
		if sel != nil {
			sel.Close()
		}
		fs.Notify(func(string) {})()
		assert.NoError(t, fs.Close())
	})
	t.Run("zero MemoryStore", func(t *testing.T) {
		w := secNewWorld(t, upstreamConfig{})
		var ms MemoryStore
		id := add(t, &ms, w.a.CertPEM) // a certificate without its key
		sel := newSelector(t, &ms, Policy{PinnedPublicKeys: Map{w.up.Host: id}, Certificates: Map{w.up.Host: string(w.a.PEM())}, RootCAs: w.srvCA.Pool})
		_, err := secGet(sel.RoundTripper(), w.up.Host, "/")
		assert.ErrorIs(t, err, ErrPinMismatch) // pinned to A's key, not the server's
		_, err = ms.Add(context.Background(), w.b.PEM())
		assert.Error(t, err, "the zero MemoryStore has no secret: it must refuse a private key")
	})
}
