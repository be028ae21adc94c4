//go:build unix

package mtls

// Benchmarks of what a request and a connection cost (targets in
// BENCHMARKS.md; run them all with scripts/bench). Each ratio target is
// measured against a baseline that runs as a sibling sub-benchmark of the
// same benchmark, so that `-count` interleaves the two:
//
//   - BenchmarkDispatch: (*Selector).entryFor, the RoundTripper's own work
//     before it hands a request to a transport (target: 0 allocs/op).
//   - BenchmarkDispatchRoundTrip: a request on a warm keep-alive pool to one
//     mTLS upstream on loopback, RoundTripper against a plain http.Transport
//     with a fixed hand-written tls.Config (target: within 1.05x).
//   - BenchmarkHandshake: a full mTLS handshake (P-256, no session cache)
//     with a TLSConfigFor config against a hand-written one holding the same
//     certificate (target: within 1.05x).
//   - BenchmarkResumption: a resumed reconnect against a full handshake, both
//     with a pinned policy (target: at most 0.35x). Before timing, it checks
//     that pins hold: a change of pins or certificate never resumes an older
//     session, and a mismatching pin fails with ErrPinMismatch.
//   - BenchmarkHosts: 10,000 distinct upstream hosts through one
//     RoundTripper; it fails if the transport cache or the open connections
//     ever exceed the bound, and reports the heap left per host (B/host).
//
// The benchmarks of ratio targets also report cpu-ns/op, the CPU time of the
// whole process (client, server, GC) per op, which the load of other
// processes moves far less than ns/op; hence the unix build constraint
// (getrusage).
//
// Nothing here runs under plain `go test`: the PKI, stores and servers are
// made on first use inside the benchmarks. Identifiers start with tbench so
// that they do not collide with the helpers of other test files.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
)

// tbenchHost is the upstream name of the handshake benchmarks.
const tbenchHost = "api.example.test"

// tbenchState is the throw-away PKI of the transport benchmarks and a store
// holding its certificates.
type tbenchState struct {
	ca     *mtlstest.CA
	server *mtlstest.Leaf // *.example.test, api.example.test, localhost, 127.0.0.1
	client *mtlstest.Leaf
	other  *mtlstest.Leaf // a second client certificate, for identity changes

	store    *MemoryStore
	clientID string // client, with its key
	otherID  string // other, with its key
	serverID string // server's certificate without key: a pin by store ID
}

var tbenchOnce = sync.OnceValues(func() (*tbenchState, error) {
	ca, err := mtlstest.NewCA("bench CA")
	if err != nil {
		return nil, err
	}
	st := &tbenchState{ca: ca, store: NewMemoryStore([]byte("transport benchmarks"))}
	if st.server, err = ca.Issue(mtlstest.Options{
		CommonName: "upstream",
		DNSNames:   []string{"*.example.test", tbenchHost, "localhost"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1)},
	}); err != nil {
		return nil, err
	}
	if st.client, err = ca.Issue(mtlstest.Options{CommonName: "client"}); err != nil {
		return nil, err
	}
	if st.other, err = ca.Issue(mtlstest.Options{CommonName: "other client"}); err != nil {
		return nil, err
	}
	ctx := context.Background()
	if st.clientID, err = st.store.Add(ctx, st.client.PEM()); err != nil {
		return nil, err
	}
	if st.otherID, err = st.store.Add(ctx, st.other.PEM()); err != nil {
		return nil, err
	}
	if st.serverID, err = st.store.Add(ctx, st.server.CertPEM); err != nil {
		return nil, err
	}
	return st, nil
})

func tbenchSetup(b *testing.B) *tbenchState {
	b.Helper()
	st, err := tbenchOnce()
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// storeCert returns the client certificate as the store hands it to the
// selector: what the hand-written baselines present too.
func (st *tbenchState) storeCert(b *testing.B, id string) tls.Certificate {
	b.Helper()
	c, err := st.store.Get(context.Background(), id)
	if err != nil {
		b.Fatal(err)
	}
	return *c.TLS
}

func tbenchSelector(b *testing.B, store CertStore, p Policy, opts ...Option) *Selector {
	b.Helper()
	s, err := New(store, p, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// tbenchCPU starts measuring the CPU time, user and system, of all threads
// of the process; the function it returns reports it per op as cpu-ns/op.
// Call it right before the b.Loop loop and the result right after.
func tbenchCPU(b *testing.B) (report func()) {
	start := tbenchRusage()
	return func() {
		b.ReportMetric(float64(tbenchRusage()-start)/float64(b.N), "cpu-ns/op")
	}
}

func tbenchRusage() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// --- 2. Dispatch -------------------------------------------------------------

// BenchmarkDispatch measures entryFor alone: normalise the host, resolve
// its certificate (a store ID) and pins (a store ID of the server's
// certificate), and find the pool of its identity. Target: 0 allocs/op for
// a normalised host. The other cases are for information.
func BenchmarkDispatch(b *testing.B) {
	st := tbenchSetup(b)
	sel := tbenchSelector(b, st.store, Policy{
		Certificates:     Map{tbenchHost: st.clientID, "*.example.test": st.otherID},
		PinnedPublicKeys: Map{tbenchHost: st.serverID},
		RootCAs:          st.ca.Pool,
	})
	ctx := context.Background()
	for _, bc := range []struct {
		name, host string
		certID     string
		pinned     bool
	}{
		{"host=normalised", tbenchHost + ":443", st.clientID, true},
		{"host=no-port", tbenchHost, st.clientID, true},
		{"host=wildcard", "web.example.test:443", st.otherID, false},
		{"host=unnormalised", "API.Example.TEST.", st.clientID, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+bc.host+"/", nil)
			if err != nil {
				b.Fatal(err)
			}
			e, err := sel.entryFor(req)
			if err != nil {
				b.Fatal(err)
			}
			if r := e.route.target; r.certID != bc.certID || (r.pins != nil) != bc.pinned {
				b.Fatalf("entryFor(%q): certificate %s, pinned %v; want %s, %v", bc.host, r.certID, r.pins != nil, bc.certID, bc.pinned)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sel.entryFor(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// tbenchUpstream starts an HTTPS server on loopback that requires and
// verifies client certificates, and counts the connections it accepts and
// those open.
type tbenchUpstream struct {
	*httptest.Server
	accepted atomic.Int64
	open     atomic.Int64
}

func tbenchStartUpstream(b *testing.B, st *tbenchState) *tbenchUpstream {
	b.Helper()
	u := &tbenchUpstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusForbidden)
			return
		}
		io.WriteString(w, "ok")
	}))
	u.Config.ErrorLog = log.New(io.Discard, "", 0)
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			u.accepted.Add(1)
			u.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			u.open.Add(-1)
		}
	}
	u.TLS = mtlstest.ServerConfig(st.server, st.ca)
	u.StartTLS()
	b.Cleanup(u.Close)
	return u
}

// tbenchGet sends req through rt and reads the whole response.
func tbenchGet(rt http.RoundTripper, req *http.Request) error {
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", req.URL, resp.Status)
	}
	return err
}

// BenchmarkDispatchRoundTrip compares a request through the selector's
// RoundTripper with one through a plain http.Transport whose tls.Config is
// fixed and hand-written (Certificates, RootCAs), on a warm keep-alive pool
// to one mTLS upstream on loopback. Both transports clone the same base.
// Target: rt=mtls within 1.05x of rt=plain.
func BenchmarkDispatchRoundTrip(b *testing.B) {
	st := tbenchSetup(b)
	u := tbenchStartUpstream(b, st)
	base := http.DefaultTransport.(*http.Transport).Clone()

	plain := base.Clone()
	plain.TLSClientConfig = &tls.Config{
		Certificates: []tls.Certificate{st.storeCert(b, st.clientID)},
		RootCAs:      st.ca.Pool,
	}
	b.Cleanup(plain.CloseIdleConnections)

	sel := tbenchSelector(b, st.store, Policy{
		Certificates:     Map{"127.0.0.1": st.clientID},
		PinnedPublicKeys: Map{"127.0.0.1": st.serverID},
		RootCAs:          st.ca.Pool,
	}, WithBaseTransport(base))

	for _, bc := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"rt=plain", plain},
		{"rt=mtls", sel.RoundTripper()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req, err := http.NewRequest(http.MethodGet, u.URL+"/", nil)
			if err != nil {
				b.Fatal(err)
			}
			for range 3 { // warm the pool
				if err := tbenchGet(bc.rt, req); err != nil {
					b.Fatal(err)
				}
			}
			conns := u.accepted.Load()
			b.ReportAllocs()
			cpu := tbenchCPU(b)
			for b.Loop() {
				if err := tbenchGet(bc.rt, req); err != nil {
					b.Fatal(err)
				}
			}
			cpu()
			// A request may start before the previous one's connection is
			// back in the idle pool (http.Transport returns it from its
			// read loop), and then dials: rare, but not never on a busy
			// machine. More than one request in a thousand is not a warm
			// pool.
			n := u.accepted.Load() - conns
			b.ReportMetric(float64(n), "dials")
			if n > int64(b.N/1000) {
				b.Fatalf("the pool was not warm: %d new connections during %d requests", n, b.N)
			}
		})
	}
}

// BenchmarkDispatchRoundTripParallel is BenchmarkDispatchRoundTrip under
// concurrent load: 16 goroutines send requests to one upstream. The
// baseline is a plain http.Transport set up for a proxy (a fixed
// tls.Config, MaxIdleConnsPerHost 100); the selector uses the default
// base, whose pools keep DefaultMaxIdleConnsPerHost idle connections.
// Without that, Go's default of 2 makes most requests a new handshake.
// Target: rt=mtls within 1.05x of rt=plain; dials/op near 0 for both.
func BenchmarkDispatchRoundTripParallel(b *testing.B) {
	st := tbenchSetup(b)
	u := tbenchStartUpstream(b, st)
	plain := http.DefaultTransport.(*http.Transport).Clone()
	plain.MaxIdleConnsPerHost = 100
	plain.TLSClientConfig = &tls.Config{
		Certificates: []tls.Certificate{st.storeCert(b, st.clientID)},
		RootCAs:      st.ca.Pool,
	}
	b.Cleanup(plain.CloseIdleConnections)
	sel := tbenchSelector(b, st.store, Policy{
		Certificates: Map{"127.0.0.1": st.clientID},
		RootCAs:      st.ca.Pool,
	})
	for _, bc := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"rt=plain", plain},
		{"rt=mtls", sel.RoundTripper()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			conns := u.accepted.Load()
			b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			cpu := tbenchCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				req, err := http.NewRequest(http.MethodGet, u.URL+"/", nil)
				if err != nil {
					b.Error(err)
					return
				}
				for pb.Next() {
					if err := tbenchGet(bc.rt, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			cpu()
			b.ReportMetric(float64(u.accepted.Load()-conns)/float64(b.N), "dials/op")
		})
	}
}

// --- 3. Handshakes -----------------------------------------------------------

// tbenchResult is what one handshake showed on both sides.
type tbenchResult struct {
	client tls.ConnectionState
	server tls.ConnectionState
}

// tbenchHandshake makes one connection: a TLS client with ccfg against a
// TLS server with scfg, both in-process, over conns made by pair. The
// server writes one byte after its handshake and the client reads it, so
// that TLS 1.3 session tickets reach the client and both sides have
// finished. Both raw conns are then closed (no close_notify).
func tbenchHandshake(pair func() (c, s net.Conn, err error), ccfg, scfg *tls.Config) (tbenchResult, error) {
	var res tbenchResult
	c, s, err := pair()
	if err != nil {
		return res, err
	}
	done := make(chan error, 1)
	go func() {
		srv := tls.Server(s, scfg)
		err := srv.Handshake()
		if err == nil {
			_, err = srv.Write([]byte{1})
		}
		res.server = srv.ConnectionState()
		s.Close()
		done <- err
	}()
	cli := tls.Client(c, ccfg)
	err = cli.Handshake()
	if err == nil {
		var buf [1]byte
		_, err = io.ReadFull(cli, buf[:])
	}
	res.client = cli.ConnectionState()
	c.Close()
	serr := <-done
	if err == nil && serr != nil {
		err = fmt.Errorf("server: %w", serr)
	}
	return res, err
}

// tbenchPipe returns the two ends of an in-memory connection, so that the
// kernel does not blur the comparisons. Unlike net.Pipe its writes never
// block: a TLS peer may write its whole flight while the other writes its
// own (a TLS 1.3 server that resumes sends its session ticket along with its
// Finished), as over TCP, and a failing side can send its alert.
func tbenchPipe() (net.Conn, net.Conn, error) {
	a, b := newTbenchBuf(), newTbenchBuf()
	return &tbenchPipeEnd{r: a, w: b}, &tbenchPipeEnd{r: b, w: a}, nil
}

// tbenchBuf is one direction of a tbenchPipe.
type tbenchBuf struct {
	mu     sync.Mutex
	cond   sync.Cond
	data   []byte
	closed bool
}

func newTbenchBuf() *tbenchBuf {
	b := &tbenchBuf{}
	b.cond.L = &b.mu
	return b
}

func (b *tbenchBuf) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cond.Broadcast()
}

// tbenchPipeEnd is one end of a tbenchPipe: it reads r and writes w.
type tbenchPipeEnd struct {
	r, w *tbenchBuf
}

func (p *tbenchPipeEnd) Read(buf []byte) (int, error) {
	b := p.r
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.data) == 0 && !b.closed {
		b.cond.Wait()
	}
	if len(b.data) == 0 {
		return 0, io.EOF
	}
	n := copy(buf, b.data)
	b.data = b.data[n:]
	return n, nil
}

func (p *tbenchPipeEnd) Write(buf []byte) (int, error) {
	b := p.w
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	b.data = append(b.data, buf...)
	b.mu.Unlock()
	b.cond.Signal()
	return len(buf), nil
}

func (p *tbenchPipeEnd) Close() error {
	p.r.close()
	p.w.close()
	return nil
}

type tbenchAddr struct{}

func (tbenchAddr) Network() string { return "pipe" }
func (tbenchAddr) String() string  { return "pipe" }

func (p *tbenchPipeEnd) LocalAddr() net.Addr              { return tbenchAddr{} }
func (p *tbenchPipeEnd) RemoteAddr() net.Addr             { return tbenchAddr{} }
func (p *tbenchPipeEnd) SetDeadline(time.Time) error      { return nil }
func (p *tbenchPipeEnd) SetReadDeadline(time.Time) error  { return nil }
func (p *tbenchPipeEnd) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkHandshake compares a full mTLS handshake (P-256 keys, no
// session cache, no tickets) with a config from TLSConfigFor and with a
// hand-written config presenting the same certificate (Certificates,
// RootCAs, ServerName). The server's cost is in both, identically.
// Target: config=TLSConfigFor within 1.05x of config=handwritten.
// config=TLSConfigFor-pinned, the same with a pin, is for information.
func BenchmarkHandshake(b *testing.B) {
	st := tbenchSetup(b)
	scfg := mtlstest.ServerConfig(st.server, st.ca)
	scfg.SessionTicketsDisabled = true

	hand := &tls.Config{
		Certificates: []tls.Certificate{st.storeCert(b, st.clientID)},
		RootCAs:      st.ca.Pool,
		ServerName:   tbenchHost,
	}
	sel := tbenchSelector(b, st.store, Policy{
		Certificates: Map{tbenchHost: st.clientID},
		RootCAs:      st.ca.Pool,
	}, WithSessionCacheSize(-1))
	cfg, err := sel.TLSConfigFor(tbenchHost)
	if err != nil {
		b.Fatal(err)
	}
	pinnedSel := tbenchSelector(b, st.store, Policy{
		Certificates:     Map{tbenchHost: st.clientID},
		PinnedPublicKeys: Map{tbenchHost: st.serverID},
		RootCAs:          st.ca.Pool,
	}, WithSessionCacheSize(-1))
	pinned, err := pinnedSel.TLSConfigFor(tbenchHost)
	if err != nil {
		b.Fatal(err)
	}

	for _, bc := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"config=handwritten", hand},
		{"config=TLSConfigFor", cfg},
		{"config=TLSConfigFor-pinned", pinned},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := tbenchCPU(b)
			for b.Loop() {
				res, err := tbenchHandshake(tbenchPipe, bc.cfg, scfg)
				if err != nil {
					b.Fatal(err)
				}
				if res.client.DidResume || len(res.server.PeerCertificates) == 0 {
					b.Fatalf("not a full mTLS handshake: resumed %v, client certificates %d", res.client.DidResume, len(res.server.PeerCertificates))
				}
			}
			cpu()
		})
	}
}

// BenchmarkResumption compares a reconnect that resumes a TLS 1.3 session
// (the default: a bounded session cache per TLS identity) with a full
// handshake, both through TLSConfigFor configs of a pinned policy, against
// a server that issues tickets. Target: handshake=resumed at most 0.35x of
// handshake=full, for the default key exchange (kex=default). Every resumed
// iteration must report DidResume.
//
// For information: handshake=resumed-handwritten resumes with a hand-written
// config (Certificates, RootCAs, an LRU session cache of the same size), to
// tell the library's share from crypto/tls's; kex=x25519 repeats all with a
// base transport that limits the key exchange to X25519 (the default is the
// hybrid X25519MLKEM768, whose key generation and encapsulation a resumed
// TLS 1.3 handshake pays as much as a full one: Go resumes with psk_dhe_ke
// only).
func BenchmarkResumption(b *testing.B) {
	st := tbenchSetup(b)
	scfg := mtlstest.ServerConfig(st.server, st.ca)
	policy := Policy{
		Certificates:     Map{tbenchHost: st.clientID},
		PinnedPublicKeys: Map{tbenchHost: st.serverID},
		RootCAs:          st.ca.Pool,
	}
	tbenchCheckPinsOnResumption(b, st, scfg, policy)

	for _, kex := range []struct {
		name   string
		curves []tls.CurveID
		want   tls.CurveID
	}{
		{"kex=default", nil, tls.X25519MLKEM768},
		{"kex=x25519", []tls.CurveID{tls.X25519}, tls.X25519},
	} {
		base := http.DefaultTransport.(*http.Transport).Clone()
		base.TLSClientConfig = &tls.Config{CurvePreferences: kex.curves}
		config := func(opts ...Option) *tls.Config {
			cfg, err := tbenchSelector(b, st.store, policy, append(opts, WithBaseTransport(base))...).TLSConfigFor(tbenchHost)
			if err != nil {
				b.Fatal(err)
			}
			return cfg
		}
		hand := &tls.Config{
			Certificates:       []tls.Certificate{st.storeCert(b, st.clientID)},
			RootCAs:            st.ca.Pool,
			ServerName:         tbenchHost,
			ClientSessionCache: tls.NewLRUClientSessionCache(DefaultSessionCacheSize),
			CurvePreferences:   kex.curves,
		}
		b.Run(kex.name, func(b *testing.B) {
			for _, bc := range []struct {
				name   string
				cfg    *tls.Config
				resume bool
			}{
				{"handshake=full", config(WithSessionCacheSize(-1)), false},
				{"handshake=resumed", config(), true},
				{"handshake=resumed-handwritten", hand, true},
			} {
				b.Run(bc.name, func(b *testing.B) {
					res, err := tbenchHandshake(tbenchPipe, bc.cfg, scfg) // gets a ticket
					if err != nil {
						b.Fatal(err)
					}
					if res.client.CurveID != kex.want {
						b.Fatalf("key exchange %v, want %v", res.client.CurveID, kex.want)
					}
					b.ReportAllocs()
					cpu := tbenchCPU(b)
					for b.Loop() {
						res, err := tbenchHandshake(tbenchPipe, bc.cfg, scfg)
						if err != nil {
							b.Fatal(err)
						}
						if res.client.DidResume != bc.resume {
							b.Fatalf("DidResume = %v, want %v", res.client.DidResume, bc.resume)
						}
					}
					cpu()
				})
			}
		})
	}
}

// tbenchCheckPinsOnResumption fails the benchmark unless resumption works
// and pins hold on it: a session is never resumed once the host's pins or
// certificate changed, and a pin that does not match fails with
// ErrPinMismatch though a session is cached.
func tbenchCheckPinsOnResumption(b *testing.B, st *tbenchState, scfg *tls.Config, policy Policy) {
	b.Helper()
	var mismatches atomic.Int64
	sel := tbenchSelector(b, st.store, policy, WithEventHook(func(e Event) {
		if e.Kind == PinMismatch {
			mismatches.Add(1)
		}
	}))
	dial := func(cfg *tls.Config) (tbenchResult, error) { return tbenchHandshake(tbenchPipe, cfg, scfg) }
	cfg, err := sel.TLSConfigFor(tbenchHost)
	if err != nil {
		b.Fatal(err)
	}
	clientOf := func(res tbenchResult) string {
		if len(res.server.PeerCertificates) == 0 {
			return "none"
		}
		return Fingerprint(res.server.PeerCertificates[0].Raw)
	}

	// Resumption works with the pinned policy.
	for i, want := range []bool{false, true} {
		res, err := dial(cfg)
		if err != nil {
			b.Fatalf("connection %d: %v", i+1, err)
		}
		if res.client.DidResume != want {
			b.Fatalf("connection %d: DidResume = %v, want %v", i+1, res.client.DidResume, want)
		}
	}

	// The pin changes to a key the server does not have: the held config,
	// whose cache has a session, must fail with ErrPinMismatch.
	wrong := policy
	wrong.PinnedPublicKeys = Map{tbenchHost: st.otherID}
	if err := sel.Update(wrong); err != nil {
		b.Fatal(err)
	}
	for i := range 2 {
		res, err := dial(cfg)
		if err == nil || res.client.DidResume {
			b.Fatalf("pins changed to another key: connection %d succeeded (resumed %v), want ErrPinMismatch", i+1, res.client.DidResume)
		}
		if !errors.Is(err, ErrPinMismatch) {
			b.Fatalf("pins changed to another key: connection %d: %v, want ErrPinMismatch", i+1, err)
		}
	}
	if mismatches.Load() == 0 {
		b.Fatal("no PinMismatch event")
	}

	// A selector whose pin never matched has nothing to resume and fails
	// every time.
	wrongSel := tbenchSelector(b, st.store, wrong)
	wrongCfg, err := wrongSel.TLSConfigFor(tbenchHost)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 2 {
		if res, err := dial(wrongCfg); !errors.Is(err, ErrPinMismatch) || res.client.DidResume {
			b.Fatalf("mismatching pin: connection %d: %v (resumed %v), want ErrPinMismatch", i+1, err, res.client.DidResume)
		}
	}

	// The pins are right again but the certificate changes: the held
	// config must not resume the session made with the old certificate,
	// and must present the new one.
	other := policy
	other.Certificates = Map{tbenchHost: st.otherID}
	if err := sel.Update(other); err != nil {
		b.Fatal(err)
	}
	res, err := dial(cfg)
	if err != nil {
		b.Fatalf("after a change of certificate: %v", err)
	}
	if res.client.DidResume {
		b.Fatal("after a change of certificate, a session of the old certificate was resumed")
	}
	if got := clientOf(res); got != st.otherID {
		b.Fatalf("after a change of certificate, the server saw %s, want %s", got, st.otherID)
	}
	// A new config of the new identity resumes its own sessions, which
	// carry the new certificate.
	cfg2, err := sel.TLSConfigFor(tbenchHost)
	if err != nil {
		b.Fatal(err)
	}
	for i, want := range []bool{false, true} {
		res, err := dial(cfg2)
		if err != nil {
			b.Fatalf("new identity, connection %d: %v", i+1, err)
		}
		if res.client.DidResume != want || clientOf(res) != st.otherID {
			b.Fatalf("new identity, connection %d: resumed %v (want %v), server saw %s", i+1, res.client.DidResume, want, clientOf(res))
		}
	}
}

// --- 5. Many hosts -------------------------------------------------------------

// tbenchHosts is how many distinct upstream hosts BenchmarkHosts visits.
const tbenchHosts = 10_000

// tbenchConn counts the connections a dialer opened that are not closed.
type tbenchConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *tbenchConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

// BenchmarkHosts sends one request to each of 10,000 distinct hosts
// (hN.example.test:PORT) through one RoundTripper with the default bound of
// its transport cache. All are dialled to one loopback upstream; every host
// is a new pool, so every request makes a full handshake. One op is the
// whole sweep. It fails if the cache ever holds more pools than the bound,
// or if more connections are open than the bound (eviction must close the
// idle connections of the pool it retires). It reports ns/host, the heap
// left after the run per host (B/host) and per pool still cached (B/pool),
// the upstream's side of the open connections included.
func BenchmarkHosts(b *testing.B) {
	st := tbenchSetup(b)
	u := tbenchStartUpstream(b, st)
	addr := u.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(addr)

	var open atomic.Int64
	base := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{Timeout: 30 * time.Second}
	base.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		open.Add(1)
		return &tbenchConn{Conn: c, open: &open}, nil
	}
	var retired atomic.Int64
	sel := tbenchSelector(b, st.store, Policy{
		Certificates: Map{"*.example.test": st.clientID},
		RootCAs:      st.ca.Pool,
	}, WithBaseTransport(base), WithEventHook(func(e Event) {
		if e.Kind == PoolRetired {
			retired.Add(1)
		}
	}))
	rt := sel.RoundTripper()
	const bound = DefaultMaxTransports

	reqs := make([]*http.Request, tbenchHosts)
	for i := range reqs {
		req, err := http.NewRequest(http.MethodGet, "https://h"+strconv.Itoa(i)+".example.test:"+port+"/", nil)
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = req
	}
	poolSize := func() int {
		sel.pool.mu.RLock()
		defer sel.pool.mu.RUnlock()
		return len(sel.pool.entries)
	}

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sweeps := 0
	b.ReportAllocs()
	for b.Loop() {
		sweeps++
		for i, req := range reqs {
			if err := tbenchGet(rt, req); err != nil {
				b.Fatalf("host %d: %v", i, err)
			}
			if n := poolSize(); n > bound {
				b.Fatalf("after host %d: %d pools in the cache, bound %d", i, n, bound)
			}
			if n := open.Load(); n > bound {
				b.Fatalf("after host %d: %d connections open, bound %d: eviction left idle connections open", i, n, bound)
			}
		}
	}
	if got, want := retired.Load(), int64(sweeps*tbenchHosts-bound); got != want {
		b.Fatalf("%d pools retired, want %d", got, want)
	}
	// The upstream sees the connections of retired pools close, in its own
	// time.
	for deadline := time.Now().Add(10 * time.Second); u.open.Load() > bound; {
		if time.Now().After(deadline) {
			b.Fatalf("the upstream still has %d connections open, bound %d", u.open.Load(), bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
	pools := poolSize()
	b.ReportMetric(heap/tbenchHosts, "B/host")
	b.ReportMetric(heap/float64(pools), "B/pool")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(sweeps*tbenchHosts), "ns/host")
	b.ReportMetric(float64(pools), "pools")
	runtime.KeepAlive(reqs)
}
