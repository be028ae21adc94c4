package mtls

// Tests of the client-facing side (semantics §7): table tests of every rule
// and end-to-end tests through real TLS handshakes on loopback, with Go
// clients. The real peers (curl, openssl s_client, nginx) are in
// server_peers_test.go. Every helper of these two files is prefixed srv.

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// --- PKI ---------------------------------------------------------------------

// srvSpec describes a certificate that mtlstest.Options cannot: OUs, URI
// SANs, a self-signed leaf.
type srvSpec struct {
	cn        string
	ous       []string
	dns       []string
	uris      []string
	notBefore time.Time // zero: an hour ago
	notAfter  time.Time // zero: a day from now
}

// srvIssue makes a client-and-server leaf as spec describes, signed by ca,
// or self-signed when ca is nil, with x509.CreateCertificate directly.
func srvIssue(t testing.TB, ca *mtlstest.CA, spec srvSpec) *mtlstest.Leaf {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	require.NoError(t, err)
	if spec.notBefore.IsZero() {
		spec.notBefore = time.Now().Add(-time.Hour)
	}
	if spec.notAfter.IsZero() {
		spec.notAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.cn, Organization: []string{"mtlstest"}, OrganizationalUnit: spec.ous},
		DNSNames:     spec.dns,
		NotBefore:    spec.notBefore,
		NotAfter:     spec.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	for _, u := range spec.uris {
		parsed, err := url.Parse(u)
		require.NoError(t, err)
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	parent, signer := tmpl, crypto.Signer(key)
	var chain []byte // what the leaf sends above itself
	if ca != nil {
		parent, signer = ca.Cert, ca.Key
		if !srvIsRoot(ca.Cert) {
			chain = append(append([]byte{}, ca.CertPEM...), ca.Chain...)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), chain...)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	tc, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	tc.Leaf = cert
	return &mtlstest.Leaf{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM, TLS: tc}
}

func srvIsRoot(c *x509.Certificate) bool {
	return string(c.RawIssuer) == string(c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// srvSelfSigned makes a self-signed (non-CA) client certificate.
func srvSelfSigned(t testing.TB, cn string) *mtlstest.Leaf {
	t.Helper()
	return srvIssue(t, nil, srvSpec{cn: cn})
}

// srvIntermediate makes an intermediate CA under ca.
func srvIntermediate(t testing.TB, ca *mtlstest.CA, name string) *mtlstest.CA {
	t.Helper()
	in, err := ca.Intermediate(name)
	require.NoError(t, err)
	return in
}

// srvPool is a pool of the CA certificates of cas (roots or not).
func srvPool(cas ...*mtlstest.CA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.Cert)
	}
	return p
}

// srvServerLeaf issues a server certificate for names, 127.0.0.1 and ::1.
func srvServerLeaf(t testing.TB, ca *mtlstest.CA, cn string, names ...string) *mtlstest.Leaf {
	t.Helper()
	return issue(t, ca, mtlstest.Options{CommonName: cn, DNSNames: names,
		IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}})
}

// --- a Server on loopback ------------------------------------------------------

// srvEnv is a Server serving HTTPS on 127.0.0.1 through net/http, with
// Middleware("") on "/" and Middleware(name) on "/api/<name>" for each API
// it was started with. It records the Server's events and the http.Server's
// log, where net/http writes the server side of failed handshakes.
type srvEnv struct {
	s      *Server
	addr   string // 127.0.0.1:port
	port   int
	events *eventLog
	errlog *peerBuffer
	hs     *http.Server
}

// srvListen listens on a random port of 127.0.0.1, for a test that needs
// the port in its policy.
func srvListen(t testing.TB) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

// srvStart makes the Server of p (read from store) and serves it on ln.
// Both are stopped when the test ends.
func srvStart(t testing.TB, store CertStore, ln net.Listener, p ServerPolicy, apis ...string) *srvEnv {
	t.Helper()
	e := &srvEnv{events: &eventLog{}, errlog: &peerBuffer{}}
	s, err := NewServer(store, p, WithEventHook(e.events.hook))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	e.serve(t, s, ln, apis...)
	return e
}

// srvNew is srvStart on a new listener.
func srvNew(t testing.TB, store CertStore, p ServerPolicy, apis ...string) *srvEnv {
	t.Helper()
	ln, _ := srvListen(t)
	return srvStart(t, store, ln, p, apis...)
}

func (e *srvEnv) serve(t testing.TB, s *Server, ln net.Listener, apis ...string) {
	e.s = s
	e.addr = ln.Addr().String()
	e.port = ln.Addr().(*net.TCPAddr).Port
	mux := http.NewServeMux()
	mux.Handle("/", s.Middleware("", srvReport("")))
	for _, a := range apis {
		mux.Handle("/api/"+a, s.Middleware(a, srvReport(a)))
	}
	e.hs = &http.Server{Handler: mux, TLSConfig: s.TLSConfig(), ErrorLog: log.New(e.errlog, "", 0),
		ReadHeaderTimeout: waitFor}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.hs.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() {
		e.hs.Close()
		<-done
	})
}

// srvReport answers with what the handler sees of the request.
func srvReport(api string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := VerifiedClient(r)
		sni, resumed := "", false
		if r.TLS != nil {
			sni, resumed = r.TLS.ServerName, r.TLS.DidResume
		}
		fmt.Fprintf(w, "api=%s\nsni=%s\nverified=%t\nid=%s\ncn=%s\nsubject=%s\ndns=%s\nuris=%s\nresumed=%t\nproto=%s\n",
			api, sni, ok, c.ID, c.CommonName, c.Subject, strings.Join(c.DNSNames, ","), strings.Join(c.URIs, ","),
			resumed, r.Proto)
	})
}

// srvReq is one request over a new connection.
type srvReq struct {
	sni        string // the TLS server name; "": none (the client dials 127.0.0.1)
	host       string // the Host header; "": sni:port, or the address
	path       string // "": "/"
	cert       *mtlstest.Leaf
	roots      *x509.CertPool // nil: the server is not verified (the test checks its leaf)
	cache      tls.ClientSessionCache
	maxVersion uint16
}

type srvResp struct {
	status  int
	body    string
	leaf    *x509.Certificate // the server's
	resumed bool              // the client's DidResume
	version uint16
}

func (r srvResp) field(key string) string {
	for line := range strings.SplitSeq(r.body, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return v
		}
	}
	return "<no " + key + ">"
}

// do makes a new TLS connection to the server, sends one HTTP/1.1 request
// over it and reads the whole answer (and so the session tickets).
func (e *srvEnv) do(q srvReq) (srvResp, error) {
	var leaf *x509.Certificate
	cfg := &tls.Config{ServerName: q.sni, RootCAs: q.roots, InsecureSkipVerify: q.roots == nil,
		ClientSessionCache: q.cache, MaxVersion: q.maxVersion,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				leaf = cs.PeerCertificates[0]
			}
			return nil
		}}
	if q.cert != nil {
		cfg.Certificates = []tls.Certificate{q.cert.TLS}
	}
	host := q.host
	if host == "" {
		host = e.addr
		if q.sni != "" {
			host = net.JoinHostPort(q.sni, strconv.Itoa(e.port))
		}
	}
	path := q.path
	if path == "" {
		path = "/"
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", e.addr, cfg)
	if err != nil {
		return srvResp{}, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(waitFor)); err != nil {
		return srvResp{}, err
	}
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"); err != nil {
		return srvResp{leaf: leaf}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return srvResp{leaf: leaf}, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	cs := conn.ConnectionState()
	return srvResp{status: resp.StatusCode, body: string(body), leaf: leaf, resumed: cs.DidResume, version: cs.Version}, err
}

// ok makes the request and requires a 200.
func (e *srvEnv) ok(t testing.TB, q srvReq) srvResp {
	t.Helper()
	r, err := e.do(q)
	require.NoError(t, err, "request %+v", q)
	require.Equal(t, http.StatusOK, r.status, "request %+v: %s", q, r.body)
	return r
}

// verdict is what happened to a request: "200", "403", "421"..., or "tls"
// when the connection failed (the handshake, or the first read in TLS 1.3,
// where the server checks the client's certificate after the client has
// finished).
func (e *srvEnv) verdict(q srvReq) (string, srvResp) {
	r, err := e.do(q)
	if err != nil {
		return "tls", r
	}
	return strconv.Itoa(r.status), r
}

// waitLog polls the http.Server's log until it holds s.
func (e *srvEnv) waitLog(t testing.TB, s string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !strings.Contains(e.errlog.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the server's log has no %q after %v:\n%s", s, waitFor, e.errlog.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// srvAll returns the events of kind.
func srvAll(l *eventLog, kind EventKind) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for _, e := range l.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// srvWaitEvent polls until an event of kind after the first `after` events
// of that kind satisfies match, and returns it.
func srvWaitEvent(t testing.TB, l *eventLog, kind EventKind, after int, match func(Event) bool, what string) Event {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		evs := srvAll(l, kind)
		for _, ev := range evs[min(after, len(evs)):] {
			if match(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %v event %s after %v; events:\n%s", kind, what, waitFor, l.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// srvRefusedEvent waits for a ClientRefused event about the client cert
// (nil: none) whose error says why.
func srvRefusedEvent(t testing.TB, l *eventLog, after int, cert *mtlstest.Leaf, why string) Event {
	t.Helper()
	id := ""
	if cert != nil {
		id = cert.ID()
	}
	ev := srvWaitEvent(t, l, ClientRefused, after, func(e Event) bool {
		return e.CertificateID == id && e.Err != nil && strings.Contains(e.Err.Error(), why)
	}, fmt.Sprintf("for client %q saying %q", id, why))
	require.ErrorIs(t, ev.Err, ErrClientRefused)
	return ev
}

// --- policy checks -----------------------------------------------------------

// TestServerPolicyIsCheckedWhenSet: NewServer and Update refuse a policy
// that cannot be used, with an error that says which value and why; on
// Update the old policy stays.
func TestServerPolicyIsCheckedWhenSet(t *testing.T) {
	ca := newCA(t, "srv policy")
	good := srvServerLeaf(t, ca, "good", "a.test")
	expired := issue(t, ca, mtlstest.Options{CommonName: "expired server", NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	cli := clientLeaf(t, ca, "client")
	store := newStore(t)
	goodID := add(t, store, good.PEM())
	noKeyID := add(t, store, cli.CertPEM)
	unknown := Fingerprint([]byte("nothing stored under this"))
	dir := t.TempDir()
	expiredFile := writeFile(t, dir, "expired.pem", expired.PEM())
	missing := filepath.Join(dir, "missing.pem")

	cases := []struct {
		name string
		p    ServerPolicy
		is   error
		says []string
	}{
		{"a scheme in an SNI pattern", ServerPolicy{Certificates: Map{"https://a.test": goodID}}, ErrInvalidPattern, []string{"https://a.test"}},
		{"a star inside a label", ServerPolicy{Certificates: Map{"a*.test": goodID}}, ErrInvalidPattern, []string{"a*.test"}},
		{"two spellings of one pattern, two values", ServerPolicy{Certificates: Map{"a.test": goodID, "A.TEST.": expiredFile}}, ErrInvalidPattern, nil},
		{"a server certificate file that does not exist", ServerPolicy{Certificates: Map{"a.test": missing}}, ErrNotFound, []string{missing, `"a.test"`}},
		{"a server certificate without its key", ServerPolicy{Certificates: Map{"*": noKeyID}}, ErrNoPrivateKey, []string{noKeyID}},
		{"an unknown server certificate ID", ServerPolicy{Certificates: Map{"*": unknown}}, ErrNotFound, []string{unknown}},
		{"an expired server certificate", ServerPolicy{Certificates: Map{"*": expiredFile}}, ErrExpired, []string{expiredFile}},
		{"an unknown allowed client", ServerPolicy{Certificates: Map{"*": goodID}, AllowedClients: []string{unknown}}, ErrNotFound, []string{unknown, "AllowedClients"}},
		{"an upper-case ID", ServerPolicy{Certificates: Map{"*": goodID}, AllowedClients: []string{strings.ToUpper(cli.ID())}}, ErrInvalidValue, []string{"lowercase"}},
		{"an unknown API client", ServerPolicy{Certificates: Map{"*": goodID}, APIClients: []string{unknown}}, ErrNotFound, []string{"APIClients"}},
		{"Authorize without ClientCAs", ServerPolicy{Certificates: Map{"*": goodID}, Authorize: AuthorizeCommonName("x")}, ErrInvalidValue, []string{"ClientCAs"}},
		{"an API's Authorize without its ClientCAs", ServerPolicy{Certificates: Map{"*": goodID},
			APIs: []APIPolicy{{Name: "a", MutualTLS: true, Authorize: AuthorizeCommonName("x")}}}, ErrInvalidValue, []string{"ClientCAs"}},
		{"a negative VerifyDepth", ServerPolicy{Certificates: Map{"*": goodID}, ClientCAs: ca.Pool, VerifyDepth: -1}, ErrInvalidValue, []string{"-1"}},
		{"an API without a name", ServerPolicy{Certificates: Map{"*": goodID}, APIs: []APIPolicy{{Domain: "a.test"}}}, ErrInvalidValue, []string{"Name"}},
		{"two APIs with one name", ServerPolicy{Certificates: Map{"*": goodID}, APIs: []APIPolicy{{Name: "a"}, {Name: "a"}}}, ErrInvalidValue, []string{`"a"`}},
		{"an API with mutual TLS that accepts nobody", ServerPolicy{Certificates: Map{"*": goodID}, APIs: []APIPolicy{{Name: "a", MutualTLS: true}}}, ErrInvalidValue, []string{`"a"`}},
		{"an API domain with a port", ServerPolicy{Certificates: Map{"*": goodID}, APIs: []APIPolicy{{Name: "a", Domain: "a.test:8443"}}}, ErrInvalidPattern, []string{"a.test:8443"}},
		{"an API domain with a scheme", ServerPolicy{Certificates: Map{"*": goodID}, APIs: []APIPolicy{{Name: "a", Domain: "https://a.test"}}}, ErrInvalidPattern, []string{"https://a.test"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewServer(store, tc.p)
			require.Error(t, err)
			require.Nil(t, s)
			require.ErrorIs(t, err, tc.is)
			for _, w := range tc.says {
				assert.Contains(t, err.Error(), w)
			}
			assert.True(t, strings.HasPrefix(err.Error(), "mtls: ") && !strings.Contains(err.Error()[6:], "mtls: "),
				"the error's text must start with \"mtls: \" once: %v", err)
		})
	}

	t.Run("every problem is listed in one error", func(t *testing.T) {
		_, err := NewServer(store, ServerPolicy{Certificates: Map{"a.test": missing, "*": noKeyID}, AllowedClients: []string{unknown}})
		var pe *PolicyError
		require.ErrorAs(t, err, &pe)
		require.Len(t, pe.Problems, 3, "%v", err)
		require.ErrorIs(t, err, ErrNotFound)
		require.ErrorIs(t, err, ErrNoPrivateKey)
	})

	t.Run("a refused Update keeps the old policy", func(t *testing.T) {
		e := srvNew(t, store, ServerPolicy{Certificates: Map{"*": goodID}})
		require.True(t, e.ok(t, srvReq{sni: "a.test"}).leaf.Equal(good.Cert))
		err := e.s.Update(ServerPolicy{Certificates: Map{"*": missing}})
		require.ErrorIs(t, err, ErrNotFound)
		require.True(t, e.ok(t, srvReq{sni: "a.test"}).leaf.Equal(good.Cert), "the old policy must stay")
	})

	t.Run("a store ID needs a store", func(t *testing.T) {
		_, err := NewServer(nil, ServerPolicy{Certificates: Map{"*": goodID}})
		require.ErrorIs(t, err, ErrNotFound)
		// Files and inline PEM need none.
		s, err := NewServer(nil, ServerPolicy{Certificates: Map{"*": string(good.PEM())}})
		require.NoError(t, err)
		s.Close()
	})
}

// --- server certificate per SNI ----------------------------------------------

// TestServerCertificatePerSNI: the certificate presented for each SNI is
// the one the upstream resolver's rules give (normalisation, wildcards,
// precedence) with the listener's port completing the SNI; no SNI gets the
// "*" default; without a default, an unknown SNI fails the handshake with
// an error naming it.
func TestServerCertificatePerSNI(t *testing.T) {
	ca := newCA(t, "srv sni")
	store := newStore(t)
	ln, port := srvListen(t)
	otherPort := port + 1
	if otherPort > 65535 {
		otherPort = 1024
	}
	leaves := map[string]*mtlstest.Leaf{}
	value := map[string]string{}
	dir := t.TempDir()
	for i, name := range []string{"exact", "wild", "middle", "prod", "apiwild", "upper", "port", "noport", "otherport", "p443", "default"} {
		l := issue(t, ca, mtlstest.Options{CommonName: name})
		leaves[name] = l
		switch i % 3 { // every kind of value
		case 0:
			value[name] = add(t, store, l.PEM())
		case 1:
			value[name] = writeFile(t, dir, name+".pem", l.PEM())
		case 2:
			value[name] = string(l.PEM())
		}
	}
	certs := Map{
		"exact.example.test":                            value["exact"],
		"*.example.test":                                value["wild"],
		"api.*.test":                                    value["middle"],
		"*.prod.example.test":                           value["prod"],
		"api.*.example.test":                            value["apiwild"],
		"UPPER.Example.TEST.":                           value["upper"],
		"port.example.test:" + strconv.Itoa(port):       value["port"],
		"port.example.test":                             value["noport"],
		"other.example.test:" + strconv.Itoa(otherPort): value["otherport"],
		"p443.example.test:443":                         value["p443"],
		"*":                                             value["default"],
	}
	e := srvStart(t, store, ln, ServerPolicy{Certificates: certs})
	oracle, err := NewResolver(nil, certs)
	require.NoError(t, err)

	for _, tc := range []struct{ sni, want, why string }{
		{"exact.example.test", "exact", "an exact name beats a wildcard"},
		{"EXACT.Example.Test", "exact", "the SNI is compared in lower case"},
		{"a.example.test", "wild", "a wildcard label"},
		{"example.test", "default", "*.example.test does not match example.test"},
		{"a.b.example.test", "default", "a wildcard matches one label only"},
		{"api.prod.example.test", "prod", "the longer run of literal labels from the right wins"},
		{"api.x.test", "middle", "a wildcard in the middle"},
		{"upper.example.test", "upper", "patterns are normalised: case, trailing dot"},
		{"port.example.test", "port", "the listener's port completes the SNI: with a port beats without"},
		{"other.example.test", "wild", "a pattern with another port does not match this listener"},
		{"p443.example.test", "wild", "a pattern with :443 does not match another port"},
		{"nothing.test", "default", "no match: the default"},
		{"", "default", "no SNI: the default"},
	} {
		t.Run(cmpName(tc.sni), func(t *testing.T) {
			r := e.ok(t, srvReq{sni: tc.sni})
			require.NotNil(t, r.leaf)
			assert.Equal(t, tc.want, r.leaf.Subject.CommonName, tc.why)
			if tc.sni != "" {
				v, ok := oracle.Resolve(net.JoinHostPort(tc.sni, strconv.Itoa(port)))
				require.True(t, ok)
				assert.Equal(t, value[tc.want], v, "the upstream resolver gives another value for %s", tc.sni)
			}
		})
	}

	t.Run("no default: an unknown SNI fails, naming it", func(t *testing.T) {
		e := srvNew(t, store, ServerPolicy{Certificates: Map{"known.test": value["exact"]}})
		e.ok(t, srvReq{sni: "known.test"})
		_, err := e.do(srvReq{sni: "unknown.test"})
		require.Error(t, err)
		e.waitLog(t, `"unknown.test"`)
		// No SNI, no default: fails too.
		_, err = e.do(srvReq{})
		require.Error(t, err)
	})
}

// cmpName names a subtest after an SNI.
func cmpName(sni string) string {
	if sni == "" {
		return "no SNI"
	}
	return sni
}

// TestServerCertificateChangesReachTheNextHandshake: store, file and
// Update changes of the server certificate apply to the next handshake;
// a certificate that cannot be used fails the handshake (never another
// certificate) and is reported as FailedClosed.
func TestServerCertificateChangesReachTheNextHandshake(t *testing.T) {
	ca := newCA(t, "srv changes")
	one, two, three := srvServerLeaf(t, ca, "one", "a.test"), srvServerLeaf(t, ca, "two", "a.test"), srvServerLeaf(t, ca, "three", "a.test")
	fallback := srvServerLeaf(t, ca, "fallback")
	store := newStore(t)
	oneID, fallbackID := add(t, store, one.PEM()), add(t, store, fallback.PEM())
	path := writeFile(t, t.TempDir(), "b.pem", two.PEM())
	e := srvNew(t, store, ServerPolicy{Certificates: Map{"a.test": oneID, "b.test": path, "*": fallbackID}})
	cn := func(sni string) string {
		t.Helper()
		return e.ok(t, srvReq{sni: sni}).leaf.Subject.CommonName
	}
	require.Equal(t, "one", cn("a.test"))
	require.Equal(t, "two", cn("b.test"))

	t.Run("store delete fails closed, add restores", func(t *testing.T) {
		del(t, store, oneID)
		before := len(srvAll(e.events, FailedClosed))
		r, err := e.do(srvReq{sni: "a.test"})
		require.Error(t, err, "a deleted certificate must fail the handshake, not fall back (got %v)", r.leaf)
		ev := srvWaitEvent(t, e.events, FailedClosed, before, func(ev Event) bool { return ev.Pattern == "a.test" }, "for a.test")
		assert.ErrorIs(t, ev.Err, ErrNotFound)
		assert.Equal(t, oneID, ev.Value)
		assert.Equal(t, "a.test", ev.Host, "a Server's events name the SNI")
		e.waitLog(t, oneID)
		add(t, store, one.PEM())
		require.Equal(t, "one", cn("a.test"))
	})

	t.Run("a file replaced on disk", func(t *testing.T) {
		replaceFile(t, path, three.PEM())
		require.Equal(t, "three", cn("b.test"))
		replaceFile(t, path, two.PEM())
		require.Equal(t, "two", cn("b.test"))
	})

	t.Run("a file removed fails closed", func(t *testing.T) {
		require.NoError(t, os.Remove(path))
		before := len(srvAll(e.events, FailedClosed))
		_, err := e.do(srvReq{sni: "b.test"})
		require.Error(t, err)
		ev := srvWaitEvent(t, e.events, FailedClosed, before, func(ev Event) bool { return ev.Pattern == "b.test" }, "for b.test")
		assert.ErrorIs(t, ev.Err, ErrNotFound)
		writeFile(t, filepath.Dir(path), filepath.Base(path), two.PEM())
		require.Equal(t, "two", cn("b.test"))
	})

	t.Run("a file replaced by an expired certificate fails closed", func(t *testing.T) {
		old := issue(t, ca, mtlstest.Options{CommonName: "expired", DNSNames: []string{"b.test"},
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
		replaceFile(t, path, old.PEM())
		before := len(srvAll(e.events, FailedClosed))
		_, err := e.do(srvReq{sni: "b.test"})
		require.Error(t, err)
		ev := srvWaitEvent(t, e.events, FailedClosed, before, func(ev Event) bool { return ev.Pattern == "b.test" }, "for b.test")
		assert.ErrorIs(t, ev.Err, ErrExpired)
		replaceFile(t, path, two.PEM())
		require.Equal(t, "two", cn("b.test"))
	})

	t.Run("Update", func(t *testing.T) {
		require.NoError(t, e.s.Update(ServerPolicy{Certificates: Map{"a.test": path, "*": fallbackID}}))
		require.Equal(t, "two", cn("a.test"))
		require.Equal(t, "fallback", cn("b.test"))
	})
}

// --- client authorisation at the TLS level -------------------------------------

// srvClients are the client certificates of the authorisation tests.
type srvClients struct {
	ca, other                *mtlstest.CA
	inter1, inter2           *mtlstest.CA // under ca: ca <- inter1 <- inter2
	good, notAllowed         *mtlstest.Leaf
	viaInter1, viaInter2     *mtlstest.Leaf // one and two intermediates
	fromOther                *mtlstest.Leaf
	expired, notYet          *mtlstest.Leaf
	selfSigned, selfUnlisted *mtlstest.Leaf
}

func srvNewClients(t testing.TB) *srvClients {
	t.Helper()
	c := &srvClients{ca: newCA(t, "srv clients"), other: newCA(t, "srv other clients")}
	c.inter1 = srvIntermediate(t, c.ca, "srv clients inter 1")
	c.inter2 = srvIntermediate(t, c.inter1, "srv clients inter 2")
	c.good = clientLeaf(t, c.ca, "good")
	c.notAllowed = clientLeaf(t, c.ca, "not-allowed")
	c.viaInter1 = clientLeaf(t, c.inter1, "via-inter1")
	c.viaInter2 = clientLeaf(t, c.inter2, "via-inter2")
	c.fromOther = clientLeaf(t, c.other, "from-other")
	c.expired = expiredLeaf(t, c.ca, "expired")
	c.notYet = issue(t, c.ca, mtlstest.Options{CommonName: "not-yet", NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(48 * time.Hour)})
	c.selfSigned = srvSelfSigned(t, "self-signed")
	c.selfUnlisted = srvSelfSigned(t, "self-unlisted")
	return c
}

// TestServerClientAuthorisationAtTheTLSLevel: with ClientCAs and/or
// AllowedClients, every handshake must present a client certificate that
// passes: chains to ClientCAs within VerifyDepth, is in AllowedClients (a
// self-signed certificate listed there passes without a CA), both when
// both are set; expired and not-yet-valid certificates fail. Each refusal
// is a failed connection and a ClientRefused event saying why.
func TestServerClientAuthorisationAtTheTLSLevel(t *testing.T) {
	srvCA := newCA(t, "srv tls-level server")
	server := srvServerLeaf(t, srvCA, "server", "a.test")
	c := srvNewClients(t)
	store := newStore(t)
	serverID := add(t, store, server.PEM())
	goodID := add(t, store, c.good.CertPEM)
	selfFile := writeFile(t, t.TempDir(), "self.pem", c.selfSigned.CertPEM) // a file value
	expiredInline := string(c.expired.CertPEM)                              // listed, to show expiry fails anyway
	notYetInline := string(c.notYet.CertPEM)
	otherID := add(t, store, c.fromOther.CertPEM)

	const (
		noCert    = "no client certificate"
		noChain   = "does not chain"
		tooDeep   = "VerifyDepth"
		notListed = "not in the allowlist"
		expired   = "valid from"
	)
	type try struct {
		name string
		cert *mtlstest.Leaf
		why  string // "" for accepted
	}
	cases := []struct {
		name  string
		p     ServerPolicy
		tries []try
	}{
		{"ClientCAs only, depth 0 (1)", ServerPolicy{ClientCAs: c.ca.Pool}, []try{
			{"none", nil, noCert},
			{"from the CA", c.good, ""},
			{"another from the CA", c.notAllowed, ""},
			{"from another CA", c.fromOther, noChain},
			{"two intermediates, longer than the depth", c.viaInter2, tooDeep},
			{"expired", c.expired, expired},
			{"not yet valid", c.notYet, expired},
			{"self-signed", c.selfSigned, noChain},
		}},
		{"ClientCAs, VerifyDepth 3", ServerPolicy{ClientCAs: c.ca.Pool, VerifyDepth: 3}, []try{
			{"two intermediates", c.viaInter2, ""},
			{"one intermediate", c.viaInter1, ""},
			{"from the CA", c.good, ""},
		}},
		{"ClientCAs, VerifyDepth 1: two intermediates are too many", ServerPolicy{ClientCAs: c.ca.Pool, VerifyDepth: 1}, []try{
			{"two intermediates", c.viaInter2, tooDeep},
			{"from the CA", c.good, ""},
		}},
		{"AllowedClients only", ServerPolicy{AllowedClients: []string{goodID, selfFile, expiredInline, notYetInline}}, []try{
			{"none", nil, noCert},
			{"allowed", c.good, ""},
			{"not allowed, same CA", c.notAllowed, notListed},
			{"self-signed, listed, no CA", c.selfSigned, ""},
			{"self-signed, not listed", c.selfUnlisted, notListed},
			{"expired, listed", c.expired, expired},
			{"not yet valid, listed", c.notYet, expired},
		}},
		{"both: both must pass", ServerPolicy{ClientCAs: c.ca.Pool, AllowedClients: []string{goodID, selfFile, otherID}}, []try{
			{"none", nil, noCert},
			{"allowed and from the CA", c.good, ""},
			{"from the CA, not allowed", c.notAllowed, notListed},
			{"self-signed, listed, not from the CA", c.selfSigned, noChain},
			{"listed, from another CA", c.fromOther, noChain},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			p.Certificates = Map{"*": serverID}
			e := srvNew(t, store, p)
			for _, tr := range tc.tries {
				for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
					t.Run(tr.name+"/"+tls.VersionName(v), func(t *testing.T) {
						before := len(srvAll(e.events, ClientRefused))
						got, r := e.verdict(srvReq{sni: "a.test", cert: tr.cert, roots: srvCA.Pool, maxVersion: v})
						if tr.why == "" {
							require.Equal(t, "200", got, "refused: %s\nevents:\n%s", r.body, e.events)
							assert.Equal(t, "true", r.field("verified"))
							assert.Equal(t, tr.cert.ID(), r.field("id"))
							return
						}
						require.Equal(t, "tls", got, "a certificate the TLS level must refuse got through: %s", r.body)
						srvRefusedEvent(t, e.events, before, tr.cert, tr.why)
					})
				}
			}
		})
	}
}

// TestServerClientChangesReachTheNextHandshake: allowing or removing a
// client (allowlist by Update, store Add and Delete, ClientCAs by Update)
// applies to the next handshake.
func TestServerClientChangesReachTheNextHandshake(t *testing.T) {
	srvCA := newCA(t, "srv client changes server")
	server := srvServerLeaf(t, srvCA, "server", "a.test")
	c := srvNewClients(t)
	store := newStore(t)
	serverID := add(t, store, server.PEM())
	goodID := add(t, store, c.good.CertPEM)
	otherID := add(t, store, c.notAllowed.CertPEM)
	p := ServerPolicy{Certificates: Map{"*": serverID}, AllowedClients: []string{goodID, otherID}}
	e := srvNew(t, store, p)
	q := srvReq{sni: "a.test", cert: c.good}
	e.ok(t, q)

	del(t, store, goodID)
	got, _ := e.verdict(q)
	require.Equal(t, "tls", got, "a client deleted from the store still passes")
	add(t, store, c.good.CertPEM)
	e.ok(t, q)

	require.NoError(t, e.s.Update(ServerPolicy{Certificates: Map{"*": serverID}, AllowedClients: []string{otherID}}))
	got, _ = e.verdict(q)
	require.Equal(t, "tls", got, "a client removed by Update still passes")
	require.NoError(t, e.s.Update(p))
	e.ok(t, q)

	require.NoError(t, e.s.Update(ServerPolicy{Certificates: Map{"*": serverID}, ClientCAs: c.other.Pool}))
	got, _ = e.verdict(q)
	require.Equal(t, "tls", got, "a client whose CA was removed still passes")
	require.NoError(t, e.s.Update(ServerPolicy{Certificates: Map{"*": serverID}, ClientCAs: srvPool(c.other, c.ca)}))
	e.ok(t, q)

	// An allowlist file replaced on disk: the client it named is refused,
	// the one it names now passes.
	path := writeFile(t, t.TempDir(), "allowed.pem", c.good.CertPEM)
	require.NoError(t, e.s.Update(ServerPolicy{Certificates: Map{"*": serverID}, AllowedClients: []string{path}}))
	e.ok(t, q)
	replaceFile(t, path, c.notAllowed.CertPEM)
	got, _ = e.verdict(q)
	require.Equal(t, "tls", got, "a client no longer in the allowlist file still passes")
	e.ok(t, srvReq{sni: "a.test", cert: c.notAllowed})
}

// TestServerRemovedClientNeverResumes: a session made before a change that
// removes the client (Update of the allowlist, store Delete, ClientCAs, an
// owning API's allowlist) never resumes after it: with the same client
// session cache, the next connection fails. Before the change, the same
// client does resume, so that the test proves something.
func TestServerRemovedClientNeverResumes(t *testing.T) {
	srvCA := newCA(t, "srv resumption server")
	server := srvServerLeaf(t, srvCA, "server", "a.test", "own.test")
	c := srvNewClients(t)
	store := newStore(t)
	serverID := add(t, store, server.PEM())
	certs := Map{"*": serverID}
	goodID := add(t, store, c.good.CertPEM)
	keepID := add(t, store, c.notAllowed.CertPEM) // keeps the allowlist non-empty after the removal

	cases := []struct {
		name    string
		sni     string
		version uint16
		p       ServerPolicy
		change  func(t *testing.T, e *srvEnv)
		restore func(t *testing.T, e *srvEnv)
	}{
		{
			name: "Update removes it from AllowedClients", sni: "a.test", version: tls.VersionTLS13,
			p: ServerPolicy{Certificates: certs, ClientCAs: c.ca.Pool, AllowedClients: []string{goodID, keepID}},
			change: func(t *testing.T, e *srvEnv) {
				require.NoError(t, e.s.Update(ServerPolicy{Certificates: certs, ClientCAs: c.ca.Pool, AllowedClients: []string{keepID}}))
			},
		},
		{
			name: "Update removes it from AllowedClients, TLS 1.2", sni: "a.test", version: tls.VersionTLS12,
			p: ServerPolicy{Certificates: certs, ClientCAs: c.ca.Pool, AllowedClients: []string{goodID, keepID}},
			change: func(t *testing.T, e *srvEnv) {
				require.NoError(t, e.s.Update(ServerPolicy{Certificates: certs, ClientCAs: c.ca.Pool, AllowedClients: []string{keepID}}))
			},
		},
		{
			name: "store Delete", sni: "a.test", version: tls.VersionTLS13,
			p:       ServerPolicy{Certificates: certs, AllowedClients: []string{goodID, keepID}},
			change:  func(t *testing.T, e *srvEnv) { del(t, store, goodID) },
			restore: func(t *testing.T, e *srvEnv) { add(t, store, c.good.CertPEM) },
		},
		{
			name: "store Delete, TLS 1.2", sni: "a.test", version: tls.VersionTLS12,
			p:       ServerPolicy{Certificates: certs, AllowedClients: []string{goodID, keepID}},
			change:  func(t *testing.T, e *srvEnv) { del(t, store, goodID) },
			restore: func(t *testing.T, e *srvEnv) { add(t, store, c.good.CertPEM) },
		},
		{
			name: "Update removes its CA", sni: "a.test", version: tls.VersionTLS13,
			p: ServerPolicy{Certificates: certs, ClientCAs: srvPool(c.ca, c.other)},
			change: func(t *testing.T, e *srvEnv) {
				require.NoError(t, e.s.Update(ServerPolicy{Certificates: certs, ClientCAs: c.other.Pool}))
			},
		},
		{
			name: "Update removes it from the allowlist of the API that owns the domain", sni: "own.test", version: tls.VersionTLS13,
			p: ServerPolicy{Certificates: certs, APIs: []APIPolicy{{Name: "own", Domain: "own.test", MutualTLS: true,
				ClientCAs: c.ca.Pool, AllowedClients: []string{goodID, keepID}}}},
			change: func(t *testing.T, e *srvEnv) {
				require.NoError(t, e.s.Update(ServerPolicy{Certificates: certs, APIs: []APIPolicy{{Name: "own", Domain: "own.test",
					MutualTLS: true, ClientCAs: c.ca.Pool, AllowedClients: []string{keepID}}}}))
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := srvNew(t, store, tc.p, "own")
			if tc.restore != nil {
				t.Cleanup(func() { tc.restore(t, e) })
			}
			cache := tls.NewLRUClientSessionCache(8)
			q := srvReq{sni: tc.sni, cert: c.good, roots: srvCA.Pool, cache: cache, maxVersion: tc.version}
			r := e.ok(t, q)
			require.False(t, r.resumed)
			r = e.ok(t, q)
			require.True(t, r.resumed, "control: the unchanged client did not resume its session, so the test would prove nothing")
			assert.Equal(t, "true", r.field("resumed"), "the server's view of the resumption")

			tc.change(t, e)
			before := len(srvAll(e.events, ClientRefused))
			r, err := e.do(q)
			require.Error(t, err, "a session made before the client was removed resumed after it (resumed=%v, status %d: %s)",
				r.resumed, r.status, r.body)
			srvRefusedEvent(t, e.events, before, c.good, "")
			// Nor does a new session get through.
			_, err = e.do(srvReq{sni: tc.sni, cert: c.good, roots: srvCA.Pool, maxVersion: tc.version})
			require.Error(t, err, "the removed client made a new session")
		})
	}
}

// TestServerRemovalAppliesToTheNextRequest: through the middleware, a
// client removed from the TLS level's allowlist is refused on its next
// request, even over a connection kept alive from before.
func TestServerRemovalAppliesToTheNextRequest(t *testing.T) {
	srvCA := newCA(t, "srv keep-alive server")
	server := srvServerLeaf(t, srvCA, "server", "a.test")
	c := srvNewClients(t)
	store := newStore(t)
	serverID := add(t, store, server.PEM())
	goodID := add(t, store, c.good.CertPEM)
	keepID := add(t, store, c.notAllowed.CertPEM)
	e := srvNew(t, store, ServerPolicy{Certificates: Map{"*": serverID}, AllowedClients: []string{goodID, keepID}}, "api")
	getStatus := srvKeptAlive(t, srvCA.Pool, c.good.TLS, "https://"+e.addr+"/", "a.test")
	status, _ := getStatus()
	require.Equal(t, http.StatusOK, status)
	status, reused := getStatus()
	require.Equal(t, http.StatusOK, status)
	require.True(t, reused, "control: the connection was not kept alive")

	del(t, store, goodID)
	status, reused = getStatus()
	require.True(t, reused, "the test needs the same connection")
	assert.Equal(t, http.StatusForbidden, status, "a client deleted from the store passed over a kept-alive connection")

	add(t, store, c.good.CertPEM)
	status, _ = getStatus()
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, e.s.Update(ServerPolicy{Certificates: Map{"*": serverID}, AllowedClients: []string{keepID}}))
	status, reused = getStatus()
	require.True(t, reused, "the test needs the same connection")
	assert.Equal(t, http.StatusForbidden, status, "a client removed by Update passed over a kept-alive connection")
}

// --- rotation under load -----------------------------------------------------

// TestServerRotationUnderLoad: 8 clients make requests while the server
// certificate is rotated 10 times, through the store (Add, Update, Delete)
// and through a file replaced on disk: no request fails, and every new
// connection made after a rotation presents the new certificate.
func TestServerRotationUnderLoad(t *testing.T) {
	ca := newCA(t, "srv rotation")
	const rotations, clients = 10, 8
	gens := make([]*mtlstest.Leaf, rotations+1)
	genOf := map[string]int{}
	for i := range gens {
		gens[i] = srvServerLeaf(t, ca, "rot gen "+strconv.Itoa(i), "rot.test")
		genOf[gens[i].ID()] = i
	}

	run := func(t *testing.T, e *srvEnv, rotate func(i int)) {
		var (
			done     atomic.Int64 // the last rotation completed
			requests atomic.Int64
			stop     atomic.Bool
			wg       sync.WaitGroup
			mu       sync.Mutex
			failures []string
			stale    []string
		)
		fail := func(list *[]string, format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			if len(*list) < 20 {
				*list = append(*list, fmt.Sprintf(format, args...))
			}
		}
		for w := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "rot.test"},
					DisableKeepAlives: w%2 == 0, MaxIdleConnsPerHost: 1}
				defer tr.CloseIdleConnections()
				client := &http.Client{Transport: tr, Timeout: waitFor}
				for n := 0; !stop.Load(); n++ {
					if n%5 == 4 {
						tr.CloseIdleConnections() // keep-alive clients make new connections too
					}
					since := done.Load()
					reused := false
					req, _ := http.NewRequest(http.MethodGet, "https://"+e.addr+"/", nil)
					req.Host = "rot.test"
					req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
						GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}))
					resp, err := client.Do(req)
					if err != nil {
						fail(&failures, "client %d: %v", w, err)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					requests.Add(1)
					if resp.StatusCode != http.StatusOK {
						fail(&failures, "client %d: status %d", w, resp.StatusCode)
					}
					if !reused && resp.TLS != nil {
						if g := genOf[Fingerprint(resp.TLS.PeerCertificates[0].Raw)]; int64(g) < since {
							fail(&stale, "client %d: a new connection after rotation %d presented generation %d", w, since, g)
						}
					}
				}
			}()
		}
		waitRequests := func(n int64) {
			deadline := time.Now().Add(waitFor)
			for requests.Load() < n && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
		for i := 1; i <= rotations; i++ {
			waitRequests(requests.Load() + clients) // let the load overlap each rotation
			rotate(i)
			done.Store(int64(i))
			r := e.ok(t, srvReq{sni: "rot.test", roots: ca.Pool, host: "rot.test"})
			require.Equal(t, gens[i].ID(), Fingerprint(r.leaf.Raw), "the first connection after rotation %d", i)
		}
		waitRequests(requests.Load() + clients)
		stop.Store(true)
		wg.Wait()
		t.Logf("%d requests", requests.Load())
		require.Empty(t, failures, "failed requests during rotation")
		require.Empty(t, stale, "new connections that presented an old certificate")
		require.Greater(t, requests.Load(), int64(rotations*clients))
	}

	t.Run("store Add, Update, Delete", func(t *testing.T) {
		store := newStore(t)
		id := add(t, store, gens[0].PEM())
		e := srvNew(t, store, ServerPolicy{Certificates: Map{"rot.test": id}})
		run(t, e, func(i int) {
			next := add(t, store, gens[i].PEM())
			require.NoError(t, e.s.Update(ServerPolicy{Certificates: Map{"rot.test": next}}))
			del(t, store, id)
			id = next
		})
	})

	t.Run("file replaced on disk", func(t *testing.T) {
		path := writeFile(t, t.TempDir(), "server.pem", gens[0].PEM())
		e := srvNew(t, nil, ServerPolicy{Certificates: Map{"rot.test": path}})
		run(t, e, func(i int) { replaceFile(t, path, gens[i].PEM()) })
	})
}

// --- the HTTP level -------------------------------------------------------------

// TestServerHostMustMatchSNI: a request whose Host names another host than
// its connection's SNI gets 421; the same host in another spelling (case,
// port) passes.
func TestServerHostMustMatchSNI(t *testing.T) {
	ca := newCA(t, "srv 421")
	server := srvServerLeaf(t, ca, "server", "a.test", "b.test")
	store := newStore(t)
	e := srvNew(t, store, ServerPolicy{Certificates: Map{"*": add(t, store, server.PEM())}}, "api")
	for _, tc := range []struct {
		sni, host, path string
		want            int
	}{
		{"a.test", "a.test", "/", 200},
		{"a.test", "A.Test:" + strconv.Itoa(e.port), "/", 200},
		{"a.test", "a.test.", "/", 200},
		{"a.test", "b.test", "/", 421},
		{"a.test", "b.test:" + strconv.Itoa(e.port), "/api/api", 421},
		{"a.test", "127.0.0.1", "/", 421},
	} {
		r, err := e.do(srvReq{sni: tc.sni, host: tc.host, path: tc.path, roots: ca.Pool})
		require.NoError(t, err)
		assert.Equal(t, tc.want, r.status, "SNI %s, Host %s: %s", tc.sni, tc.host, r.body)
	}
}

// TestServerSharedDomainAPIs: two protected APIs on one domain: the
// handshake asks for a certificate without requiring one, and the
// middleware answers 403 with a short reason to the API that does not
// allow the certificate, and 200 to the one that does.
func TestServerSharedDomainAPIs(t *testing.T) {
	srvCA := newCA(t, "srv shared server")
	server := srvServerLeaf(t, srvCA, "server", "shared.test")
	c := srvNewClients(t)
	both := clientLeaf(t, c.ca, "both")
	store := newStore(t)
	serverID := add(t, store, server.PEM())
	goodID, bothID := add(t, store, c.good.CertPEM), add(t, store, both.CertPEM)
	e := srvNew(t, store, ServerPolicy{
		Certificates: Map{"*": serverID},
		APIClients:   []string{bothID},
		APIs: []APIPolicy{
			{Name: "a", Domain: "shared.test", MutualTLS: true, ClientCAs: c.ca.Pool, AllowedClients: []string{goodID}},
			{Name: "b", Domain: "shared.test", MutualTLS: true, ClientCAs: c.ca.Pool, AllowedClients: []string{add(t, store, c.notAllowed.CertPEM)}},
		},
	}, "a", "b")

	for _, tc := range []struct {
		name   string
		cert   *mtlstest.Leaf
		a, b   int
		reason string
	}{
		{"no certificate", nil, 403, 403, "no client certificate"},
		{"allowed by a", c.good, 200, 403, "not in the allowlist"},
		{"in APIClients", both, 200, 200, ""},
		{"from another CA", c.fromOther, 403, 403, "does not chain"},
		{"expired", c.expired, 403, 403, "valid from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for api, want := range map[string]int{"a": tc.a, "b": tc.b} {
				before := len(srvAll(e.events, ClientRefused))
				r, err := e.do(srvReq{sni: "shared.test", path: "/api/" + api, cert: tc.cert, roots: srvCA.Pool})
				require.NoError(t, err, "the handshake must not require a certificate where two APIs share the domain")
				require.Equal(t, want, r.status, "API %s: %s", api, r.body)
				if want == 200 {
					assert.Equal(t, "true", r.field("verified"))
					continue
				}
				assert.Contains(t, r.body, tc.reason, "the 403 says why")
				assert.Less(t, len(r.body), 300, "a short reason")
				ev := srvRefusedEvent(t, e.events, before, tc.cert, tc.reason)
				assert.Equal(t, api, ev.API)
				assert.Equal(t, "shared.test", ev.Host)
			}
		})
	}
}

// TestServerOwnedDomainIsEnforcedAtTheTLSLevel: where one protected API
// owns a domain, the handshake for that SNI requires what the API does;
// other domains are not affected.
func TestServerOwnedDomainIsEnforcedAtTheTLSLevel(t *testing.T) {
	srvCA := newCA(t, "srv owned server")
	server := srvServerLeaf(t, srvCA, "server", "own.test", "open.test")
	c := srvNewClients(t)
	store := newStore(t)
	e := srvNew(t, store, ServerPolicy{
		Certificates: Map{"*": add(t, store, server.PEM())},
		APIs: []APIPolicy{
			{Name: "own", Domain: "own.test", MutualTLS: true, ClientCAs: c.ca.Pool, AllowedClients: []string{add(t, store, c.good.CertPEM)}},
			{Name: "open", Domain: "open.test"},
		},
	}, "own", "open")

	for _, tc := range []struct {
		name string
		cert *mtlstest.Leaf
		why  string
	}{
		{"no certificate", nil, "no client certificate"},
		{"not allowed", c.notAllowed, "not in the allowlist"},
		{"from another CA", c.fromOther, "does not chain"},
	} {
		before := len(srvAll(e.events, ClientRefused))
		got, r := e.verdict(srvReq{sni: "own.test", path: "/api/own", cert: tc.cert, roots: srvCA.Pool})
		require.Equal(t, "tls", got, "%s: the handshake for the owned domain must fail: %s", tc.name, r.body)
		ev := srvRefusedEvent(t, e.events, before, tc.cert, tc.why)
		assert.Equal(t, "own", ev.API)
	}
	r := e.ok(t, srvReq{sni: "own.test", path: "/api/own", cert: c.good, roots: srvCA.Pool})
	assert.Equal(t, c.good.ID(), r.field("id"))
	e.ok(t, srvReq{sni: "open.test", path: "/api/open", roots: srvCA.Pool})
	// A client that connects to the open domain cannot reach the owned one.
	r, err := e.do(srvReq{sni: "open.test", host: "own.test", path: "/api/own", roots: srvCA.Pool})
	require.NoError(t, err)
	assert.Equal(t, http.StatusMisdirectedRequest, r.status)
}

// TestServerNoSNIAsksForACertificate: a client that sends no SNI (it dials
// an IP address) cannot tell TLS the API, so the handshake asks for a
// certificate without requiring it, and the middleware decides: 200 with
// an allowed certificate, 403 without.
func TestServerNoSNIAsksForACertificate(t *testing.T) {
	srvCA := newCA(t, "srv no sni server")
	server := srvServerLeaf(t, srvCA, "server", "api.test")
	c := srvNewClients(t)
	store := newStore(t)
	e := srvNew(t, store, ServerPolicy{
		Certificates: Map{"*": add(t, store, server.PEM())},
		APIs: []APIPolicy{{Name: "api", Domain: "api.test", MutualTLS: true, ClientCAs: c.ca.Pool,
			AllowedClients: []string{add(t, store, c.good.CertPEM)}}},
	}, "api")

	r, err := e.do(srvReq{host: "api.test", path: "/api/api", roots: srvCA.Pool})
	require.NoError(t, err, "without SNI the handshake must not require a certificate")
	assert.Equal(t, http.StatusForbidden, r.status, "no certificate: %s", r.body)

	r, err = e.do(srvReq{host: "api.test", path: "/api/api", cert: c.good, roots: srvCA.Pool})
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, r.status,
		"an allowed client that sends no SNI was refused (did the handshake ask for its certificate?): %s", r.body)

	r, err = e.do(srvReq{host: "api.test", path: "/api/api", cert: c.notAllowed, roots: srvCA.Pool})
	require.NoError(t, err)
	assert.Equal(t, http.StatusForbidden, r.status, "a client not allowed, without SNI: %s", r.body)
}

// TestServerSameVerdictAtEitherLevel: the same certificate gets the same
// verdict, for the same reason, from the same rules at the TLS level (the
// policy's rules; an API owning its domain) and at the HTTP level (two
// APIs sharing a domain).
func TestServerSameVerdictAtEitherLevel(t *testing.T) {
	srvCA := newCA(t, "srv verdict server")
	server := srvServerLeaf(t, srvCA, "server", "own.test", "shared.test", "global.test")
	c := srvNewClients(t)
	store := newStore(t)
	serverID := add(t, store, server.PEM())
	allowed := []string{add(t, store, c.good.CertPEM), add(t, store, c.viaInter2.CertPEM), string(c.expired.CertPEM),
		writeFile(t, t.TempDir(), "self.pem", c.selfSigned.CertPEM), add(t, store, c.fromOther.CertPEM)}
	api := func(name, domain string) APIPolicy {
		return APIPolicy{Name: name, Domain: domain, MutualTLS: true, ClientCAs: c.ca.Pool, VerifyDepth: 1, AllowedClients: allowed}
	}
	apis := srvNew(t, store, ServerPolicy{Certificates: Map{"*": serverID},
		APIs: []APIPolicy{api("own", "own.test"), api("shared1", "shared.test"), api("shared2", "shared.test")}},
		"own", "shared1", "shared2")
	global := srvNew(t, store, ServerPolicy{Certificates: Map{"*": serverID}, ClientCAs: c.ca.Pool, VerifyDepth: 1, AllowedClients: allowed})

	type level struct {
		name string
		e    *srvEnv
		sni  string
		path string
	}
	levels := []level{
		{"TLS level, policy", global, "global.test", "/"},
		{"TLS level, owning API", apis, "own.test", "/api/own"},
		{"HTTP level, shared domain", apis, "shared.test", "/api/shared1"},
	}
	for _, tc := range []struct {
		name string
		cert *mtlstest.Leaf
		pass bool
	}{
		{"allowed", c.good, true},
		{"none", nil, false},
		{"not allowed", c.notAllowed, false},
		{"too deep", c.viaInter2, false},
		{"expired", c.expired, false},
		{"not yet valid", c.notYet, false},
		{"self-signed, listed", c.selfSigned, false},
		{"from another CA, listed", c.fromOther, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reasons []string
			for _, l := range levels {
				before := len(srvAll(l.e.events, ClientRefused))
				got, r := l.e.verdict(srvReq{sni: l.sni, path: l.path, cert: tc.cert, roots: srvCA.Pool})
				if tc.pass {
					assert.Equal(t, "200", got, "%s: %s", l.name, r.body)
					continue
				}
				want := "tls"
				if strings.HasPrefix(l.name, "HTTP") {
					want = "403"
				}
				require.Equal(t, want, got, "%s refused differently: %s", l.name, r.body)
				ev := srvRefusedEvent(t, l.e.events, before, tc.cert, "")
				reasons = append(reasons, unprefixed(ev.Err).Error())
			}
			for i := 1; i < len(reasons); i++ {
				assert.Equal(t, reasons[0], reasons[i], "%s and %s give different reasons", levels[0].name, levels[i].name)
			}
		})
	}
}

// TestServerAPIClientsWidenNeverNarrow: the gateway-wide APIClients are
// accepted by every protected API "besides its own": adding them to a
// policy must not make an API refuse a client it accepted before (here, an
// API that accepts any certificate of its CA).
func TestServerAPIClientsWidenNeverNarrow(t *testing.T) {
	srvCA := newCA(t, "srv apiclients server")
	server := srvServerLeaf(t, srvCA, "server", "a.test")
	c := srvNewClients(t)
	store := newStore(t)
	serverID := add(t, store, server.PEM())
	apis := []APIPolicy{
		{Name: "byca", Domain: "a.test", MutualTLS: true, ClientCAs: c.ca.Pool},
		{Name: "open", Domain: "a.test"},
	}
	e := srvNew(t, store, ServerPolicy{Certificates: Map{"*": serverID}, APIs: apis}, "byca", "open")
	r := e.ok(t, srvReq{sni: "a.test", path: "/api/byca", cert: c.good, roots: srvCA.Pool})
	require.Equal(t, "true", r.field("verified"))

	require.NoError(t, e.s.Update(ServerPolicy{Certificates: Map{"*": serverID}, APIs: apis,
		APIClients: []string{add(t, store, c.selfSigned.CertPEM)}}))
	r, err := e.do(srvReq{sni: "a.test", path: "/api/byca", cert: c.good, roots: srvCA.Pool})
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, r.status,
		"adding a gateway-wide APIClients entry made an API that accepts its CA refuse a client of that CA: %s", r.body)
}

// --- identity and authorizers ---------------------------------------------------

// TestServerAuthorizers: each Authorizer allows by what the certificate
// says, and a certificate of another CA saying the same is refused.
func TestServerAuthorizers(t *testing.T) {
	srvCA := newCA(t, "srv authorizers server")
	server := srvServerLeaf(t, srvCA, "server", "a.test")
	ca, other := newCA(t, "srv authz clients"), newCA(t, "srv authz other")
	byCN := srvIssue(t, ca, srvSpec{cn: "svc-a"})
	byOU := srvIssue(t, ca, srvSpec{cn: "someone", ous: []string{"sales", "payments"}})
	byDNS := srvIssue(t, ca, srvSpec{cn: "dns", dns: []string{"B.Svc.Test"}})
	byURI := srvIssue(t, ca, srvSpec{cn: "spiffe", uris: []string{"spiffe://example.org/payments"}})
	nobody := srvIssue(t, ca, srvSpec{cn: "nobody", ous: []string{"ops"}, dns: []string{"x.svc.test"}, uris: []string{"spiffe://example.org/other"}})
	impostor := srvIssue(t, other, srvSpec{cn: "svc-a", ous: []string{"payments"}, dns: []string{"b.svc.test"}, uris: []string{"spiffe://example.org/payments"}})

	cn := AuthorizeCommonName("svc-a", "svc-z")
	ou := AuthorizeOrganizationalUnit("payments")
	dns := AuthorizeDNSName("b.svc.test")
	uri := AuthorizeURI("spiffe://example.org/payments")
	t.Run("unit", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			a    Authorizer
			leaf *mtlstest.Leaf
			ok   bool
		}{
			{"CN", cn, byCN, true}, {"CN no", cn, byOU, false},
			{"OU", ou, byOU, true}, {"OU no", ou, nobody, false},
			{"DNS, case-insensitive", dns, byDNS, true}, {"DNS no", dns, nobody, false},
			{"URI", uri, byURI, true}, {"URI no", uri, nobody, false},
			{"URI is not a prefix match", AuthorizeURI("spiffe://example.org/pay"), byURI, false},
			{"OneOf, first", AuthorizeOneOf(cn, uri), byCN, true},
			{"OneOf, second", AuthorizeOneOf(cn, uri), byURI, true},
			{"OneOf, none", AuthorizeOneOf(cn, uri), nobody, false},
		} {
			err := tc.a(tc.leaf.Cert)
			if tc.ok {
				assert.NoError(t, err, tc.name)
			} else {
				assert.Error(t, err, tc.name)
			}
		}
		err := AuthorizeOneOf(cn, ou, dns, uri)(nobody.Cert)
		require.Error(t, err)
		for _, w := range []string{`"nobody"`, "ops", "x.svc.test", "spiffe://example.org/other"} {
			assert.Contains(t, err.Error(), w, "OneOf's error says what each authorizer saw")
		}
	})

	store := newStore(t)
	serverID := add(t, store, server.PEM())
	for _, tc := range []struct {
		name   string
		a      Authorizer
		pass   []*mtlstest.Leaf
		refuse []*mtlstest.Leaf
	}{
		{"CommonName", cn, []*mtlstest.Leaf{byCN}, []*mtlstest.Leaf{byOU, nobody, impostor}},
		{"OrganizationalUnit", ou, []*mtlstest.Leaf{byOU}, []*mtlstest.Leaf{byCN, nobody, impostor}},
		{"DNSName", dns, []*mtlstest.Leaf{byDNS}, []*mtlstest.Leaf{byCN, nobody, impostor}},
		{"URI (SPIFFE ID)", uri, []*mtlstest.Leaf{byURI}, []*mtlstest.Leaf{byCN, nobody, impostor}},
		{"OneOf", AuthorizeOneOf(cn, ou, dns, uri), []*mtlstest.Leaf{byCN, byOU, byDNS, byURI}, []*mtlstest.Leaf{nobody, impostor}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := srvNew(t, store, ServerPolicy{Certificates: Map{"*": serverID}, ClientCAs: ca.Pool, Authorize: tc.a})
			for _, l := range tc.pass {
				r := e.ok(t, srvReq{sni: "a.test", cert: l, roots: srvCA.Pool})
				assert.Equal(t, l.ID(), r.field("id"))
			}
			for _, l := range tc.refuse {
				got, r := e.verdict(srvReq{sni: "a.test", cert: l, roots: srvCA.Pool})
				assert.Equal(t, "tls", got, "%s passed: %s", l.Cert.Subject, r.body)
			}
		})
	}

	t.Run("Authorize or AllowedClients", func(t *testing.T) {
		e := srvNew(t, store, ServerPolicy{Certificates: Map{"*": serverID}, ClientCAs: ca.Pool, Authorize: cn,
			AllowedClients: []string{add(t, store, byURI.CertPEM)}})
		e.ok(t, srvReq{sni: "a.test", cert: byCN, roots: srvCA.Pool})
		e.ok(t, srvReq{sni: "a.test", cert: byURI, roots: srvCA.Pool})
		got, _ := e.verdict(srvReq{sni: "a.test", cert: nobody, roots: srvCA.Pool})
		assert.Equal(t, "tls", got)
	})

	t.Run("per API at the HTTP level", func(t *testing.T) {
		e := srvNew(t, store, ServerPolicy{Certificates: Map{"*": serverID}, APIs: []APIPolicy{
			{Name: "payments", Domain: "a.test", MutualTLS: true, ClientCAs: ca.Pool, Authorize: uri},
			{Name: "sales", Domain: "a.test", MutualTLS: true, ClientCAs: ca.Pool, Authorize: ou},
		}}, "payments", "sales")
		r := e.ok(t, srvReq{sni: "a.test", path: "/api/payments", cert: byURI, roots: srvCA.Pool})
		assert.Equal(t, "spiffe://example.org/payments", r.field("uris"))
		r, err := e.do(srvReq{sni: "a.test", path: "/api/sales", cert: byURI, roots: srvCA.Pool})
		require.NoError(t, err)
		assert.Equal(t, http.StatusForbidden, r.status)
		r, err = e.do(srvReq{sni: "a.test", path: "/api/payments", cert: impostor, roots: srvCA.Pool})
		require.NoError(t, err)
		assert.Equal(t, http.StatusForbidden, r.status, "a SPIFFE ID from another CA")
	})
}

// TestServerVerifiedClient: a handler behind the middleware gets the
// verified client's identity; ClientFromCert gives the same fields.
func TestServerVerifiedClient(t *testing.T) {
	srvCA := newCA(t, "srv identity server")
	server := srvServerLeaf(t, srvCA, "server", "a.test", "open.test")
	ca := newCA(t, "srv identity clients")
	leaf := srvIssue(t, ca, srvSpec{cn: "svc", ous: []string{"payments"}, dns: []string{"svc.test"},
		uris: []string{"spiffe://example.org/svc"}})
	store := newStore(t)
	serverID := add(t, store, server.PEM())

	t.Run("ClientFromCert", func(t *testing.T) {
		c := ClientFromCert(leaf.Cert)
		assert.Equal(t, leaf.ID(), c.ID)
		assert.Equal(t, "svc", c.CommonName)
		assert.Equal(t, leaf.Cert.Subject.String(), c.Subject)
		assert.Equal(t, []string{"svc.test"}, c.DNSNames)
		assert.Equal(t, []string{"spiffe://example.org/svc"}, c.URIs)
		assert.Same(t, leaf.Cert, c.Leaf)
	})

	t.Run("through the middleware", func(t *testing.T) {
		e := srvNew(t, store, ServerPolicy{Certificates: Map{"*": serverID}, ClientCAs: ca.Pool})
		r := e.ok(t, srvReq{sni: "a.test", cert: leaf, roots: srvCA.Pool})
		assert.Equal(t, "true", r.field("verified"))
		assert.Equal(t, leaf.ID(), r.field("id"))
		assert.Equal(t, "svc", r.field("cn"))
		assert.Equal(t, leaf.Cert.Subject.String(), r.field("subject"))
		assert.Equal(t, "svc.test", r.field("dns"))
		assert.Equal(t, "spiffe://example.org/svc", r.field("uris"))
	})

	t.Run("not through the middleware", func(t *testing.T) {
		req := httptestRequest(t)
		_, ok := VerifiedClient(req)
		assert.False(t, ok)
	})

	t.Run("an unverified certificate is not a verified client", func(t *testing.T) {
		// Two APIs share open.test, one protected: the handshake asks for
		// a certificate. A request to the unprotected API with a
		// self-signed certificate that nothing checked must not give its
		// handler a "verified" client named as the certificate says.
		e := srvNew(t, store, ServerPolicy{Certificates: Map{"*": serverID}, APIs: []APIPolicy{
			{Name: "secure", Domain: "open.test", MutualTLS: true, ClientCAs: ca.Pool},
			{Name: "open", Domain: "open.test"},
		}}, "secure", "open")
		forged := srvSelfSigned(t, "svc")
		r := e.ok(t, srvReq{sni: "open.test", path: "/api/open", cert: forged, roots: srvCA.Pool})
		assert.Equal(t, "false", r.field("verified"),
			"VerifiedClient returned a certificate nobody verified (cn=%s)", r.field("cn"))
		r, err := e.do(srvReq{sni: "open.test", path: "/api/secure", cert: forged, roots: srvCA.Pool})
		require.NoError(t, err)
		assert.Equal(t, http.StatusForbidden, r.status)
		// Nor on "/", Middleware(""), where the policy has no client rules.
		r = e.ok(t, srvReq{sni: "open.test", path: "/", cert: forged, roots: srvCA.Pool})
		assert.Equal(t, "false", r.field("verified"),
			"VerifiedClient returned a certificate nobody verified, through Middleware(\"\")")
	})
}

func httptestRequest(t testing.TB) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "https://a.test/", nil)
	require.NoError(t, err)
	return req
}

// --- events, lifecycle, HTTP/2 -------------------------------------------------

// TestServerEvents: ServerCertificateChosen names the SNI with the
// listener's port and the certificate; ClientRefused names the SNI, the
// API, the client and why; FailedClosed names the mapping.
func TestServerEvents(t *testing.T) {
	srvCA := newCA(t, "srv events server")
	server := srvServerLeaf(t, srvCA, "server", "a.test", "b.test")
	c := srvNewClients(t)
	store := newStore(t)
	serverID := add(t, store, server.PEM())
	e := srvNew(t, store, ServerPolicy{Certificates: Map{"*.test": serverID}, ClientCAs: c.ca.Pool,
		APIs: []APIPolicy{
			{Name: "x", Domain: "b.test", MutualTLS: true, ClientCAs: c.ca.Pool, AllowedClients: []string{add(t, store, c.good.CertPEM)}},
			{Name: "y", Domain: "b.test"},
		}}, "x", "y")

	e.ok(t, srvReq{sni: "a.test", cert: c.good, roots: srvCA.Pool})
	ev := srvWaitEvent(t, e.events, ServerCertificateChosen, 0, func(ev Event) bool {
		return ev.Host == "a.test"
	}, "for a.test")
	assert.Equal(t, server.ID(), ev.CertificateID)
	assert.Equal(t, "server certificate chosen", ev.Kind.String())

	before := len(srvAll(e.events, ClientRefused))
	_, err := e.do(srvReq{sni: "a.test", cert: c.fromOther, roots: srvCA.Pool})
	require.Error(t, err)
	ev = srvRefusedEvent(t, e.events, before, c.fromOther, "does not chain")
	assert.Equal(t, "a.test", ev.Host)
	assert.Empty(t, ev.API)
	assert.Equal(t, "client refused", ev.Kind.String())

	before = len(srvAll(e.events, ClientRefused))
	r, err := e.do(srvReq{sni: "b.test", path: "/api/x", cert: c.notAllowed, roots: srvCA.Pool})
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, r.status)
	ev = srvRefusedEvent(t, e.events, before, c.notAllowed, "not in the allowlist")
	assert.Equal(t, "x", ev.API)
	assert.Equal(t, "b.test", ev.Host)

	before = len(srvAll(e.events, FailedClosed))
	del(t, store, serverID)
	_, err = e.do(srvReq{sni: "a.test", cert: c.good, roots: srvCA.Pool})
	require.Error(t, err)
	ev = srvWaitEvent(t, e.events, FailedClosed, before, func(Event) bool { return true }, "")
	assert.Equal(t, "*.test", ev.Pattern)
	assert.Equal(t, serverID, ev.Value)
	assert.Equal(t, "a.test", ev.Host, "a Server's events name the SNI")
	assert.ErrorIs(t, ev.Err, ErrNotFound)
	for _, ev := range srvAll(e.events, ServerCertificateChosen) {
		assert.NotContains(t, fmt.Sprint(ev), "PRIVATE KEY")
	}
}

// TestServerClose: after Close, handshakes fail with ErrClosed, the
// middleware answers 503 and Update returns ErrClosed; a nil or zero
// Server is closed.
func TestServerClose(t *testing.T) {
	ca := newCA(t, "srv close")
	server := srvServerLeaf(t, ca, "server", "a.test")
	store := newStore(t)
	e := srvNew(t, store, ServerPolicy{Certificates: Map{"*": add(t, store, server.PEM())}})
	e.ok(t, srvReq{sni: "a.test"})
	// A connection kept alive from before reaches the middleware.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "a.test"}}
	defer tr.CloseIdleConnections()
	get := func() (int, error) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+e.addr+"/", nil)
		req.Host = "a.test"
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	status, err := get()
	require.NoError(t, err)
	require.Equal(t, 200, status)

	require.NoError(t, e.s.Close())
	require.NoError(t, e.s.Close(), "Close is idempotent")
	_, err = e.do(srvReq{sni: "a.test"})
	require.Error(t, err)
	e.waitLog(t, ErrClosed.Error())
	status, err = get()
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.ErrorIs(t, e.s.Update(ServerPolicy{}), ErrClosed)

	for name, s := range map[string]*Server{"nil": nil, "zero": {}} {
		cfg := s.TLSConfig()
		_, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
		assert.ErrorIs(t, err, ErrClosed, name)
		_, err = cfg.GetConfigForClient(&tls.ClientHelloInfo{ServerName: "a.test"})
		assert.ErrorIs(t, err, ErrClosed, name)
		assert.ErrorIs(t, s.Update(ServerPolicy{}), ErrClosed, name)
		assert.NoError(t, s.Close(), name)
		rec := &statusRecorder{header: http.Header{}}
		s.Middleware("", http.NotFoundHandler()).ServeHTTP(rec, httptestRequest(t))
		assert.Equal(t, http.StatusServiceUnavailable, rec.status, name)
	}
}

// statusRecorder is the least http.ResponseWriter.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return len(p), nil
}
func (r *statusRecorder) WriteHeader(s int) { r.status = s }

// TestServerHTTP2WhenAskingForAClientCertificate: http.Server serves HTTP/2
// with TLSConfig(), on handshakes that ask for a client certificate as on
// those that do not (the TLSConfig doc says the asking config keeps the
// protocols http.Server sets).
func TestServerHTTP2WhenAskingForAClientCertificate(t *testing.T) {
	srvCA := newCA(t, "srv h2 server")
	server := srvServerLeaf(t, srvCA, "server", "a.test")
	c := srvNewClients(t)
	store := newStore(t)
	serverID := add(t, store, server.PEM())
	for _, tc := range []struct {
		name string
		p    ServerPolicy
	}{
		{"no client certificate asked", ServerPolicy{Certificates: Map{"*": serverID}}},
		{"a client certificate asked", ServerPolicy{Certificates: Map{"*": serverID}, ClientCAs: c.ca.Pool}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := srvNew(t, store, tc.p)
			tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: srvCA.Pool,
				ServerName: "a.test", Certificates: []tls.Certificate{c.good.TLS}}}
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequest(http.MethodGet, "https://"+e.addr+"/", nil)
			req.Host = "a.test"
			resp, err := tr.RoundTrip(req)
			require.NoError(t, err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "HTTP/2.0", resp.Proto, "ALPN gave %q", resp.TLS.NegotiatedProtocol)
		})
	}
}

// TestServerConcurrentUpdatesAndHandshakes: Update, store changes and
// handshakes at once (for -race).
func TestServerConcurrentUpdatesAndHandshakes(t *testing.T) {
	srvCA := newCA(t, "srv race server")
	server := srvServerLeaf(t, srvCA, "server", "a.test")
	c := srvNewClients(t)
	store := newStore(t)
	serverID := add(t, store, server.PEM())
	goodID := add(t, store, c.good.CertPEM)
	p := ServerPolicy{Certificates: Map{"*": serverID}, ClientCAs: c.ca.Pool, AllowedClients: []string{goodID},
		APIs: []APIPolicy{{Name: "a", Domain: "a.test", MutualTLS: true, AllowedClients: []string{goodID}}, {Name: "b", Domain: "a.test"}}}
	e := srvNew(t, store, p, "a", "b")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				e.do(srvReq{sni: "a.test", path: "/api/a", cert: c.good, roots: srvCA.Pool}) //nolint:errcheck // refusals are expected
			}
		}()
	}
	for i := range 30 {
		if i%2 == 0 {
			del(t, store, goodID)
			add(t, store, c.good.CertPEM)
		}
		require.NoError(t, e.s.Update(p))
	}
	cancel()
	wg.Wait()
	e.ok(t, srvReq{sni: "a.test", path: "/api/a", cert: c.good, roots: srvCA.Pool})
}

// srvKeptAlive returns a probe that GETs url over one kept-alive client
// connection (SNI and Host name, presenting cert, trusting roots) and
// reports the status and whether the connection was reused. The connection
// is closed when the test ends.
func srvKeptAlive(t *testing.T, roots *x509.CertPool, cert tls.Certificate, url, name string) func() (int, bool) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: name,
		Certificates: []tls.Certificate{cert}}}
	t.Cleanup(tr.CloseIdleConnections)
	return func() (int, bool) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		req.Host = name
		reused := false
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}))
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, reused
	}
}
