package mtlstest_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
)

var pinForm = regexp.MustCompile(`^sha256//[A-Za-z0-9+/]{43}=$`)

func TestIssue(t *testing.T) {
	root := mtlstest.MustCA(t, "root CA")
	inter, err := root.Intermediate("intermediate CA")
	if err != nil {
		t.Fatal(err)
	}
	spiffe := &url.URL{Scheme: "spiffe", Host: "example.org", Path: "/proxy"}
	tests := []struct {
		name      string
		ca        *mtlstest.CA
		opts      mtlstest.Options
		wantCN    string
		wantChain int // certificates in Leaf.TLS
	}{
		{"zero options", root, mtlstest.Options{}, "leaf", 1},
		{"RSA", root, mtlstest.Options{CommonName: "rsa", Key: mtlstest.RSA2048}, "rsa", 1},
		{"Ed25519", root, mtlstest.Options{CommonName: "ed", Key: mtlstest.Ed25519}, "ed", 1},
		{"names", root, mtlstest.Options{
			CommonName: "named",
			DNSNames:   []string{"api.example.com"},
			IPs:        []net.IP{net.IPv4(10, 0, 0, 7)},
			URIs:       []*url.URL{spiffe},
		}, "named", 1},
		{"under an intermediate", inter, mtlstest.Options{CommonName: "deep"}, "deep", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := tt.ca.MustIssue(t, tt.opts)
			if got := l.Cert.Subject.String(); got != "CN="+tt.wantCN+",O=mtlstest" {
				t.Errorf("subject %q", got)
			}
			sum := sha256.Sum256(l.Cert.Raw)
			if got, want := l.ID(), hex.EncodeToString(sum[:]); got != want {
				t.Errorf("ID() = %s, want %s", got, want)
			}
			if got, want := l.ID(), mtls.Fingerprint(l.Cert.Raw); got != want {
				t.Errorf("ID() = %s, mtls.Fingerprint = %s", got, want)
			}
			spki, err := x509.MarshalPKIXPublicKey(l.Key.Public())
			if err != nil {
				t.Fatal(err)
			}
			pin := sha256.Sum256(spki)
			if got, want := l.Pin(), "sha256//"+base64.StdEncoding.EncodeToString(pin[:]); got != want {
				t.Errorf("Pin() = %s, want %s", got, want)
			}
			if !pinForm.MatchString(l.Pin()) {
				t.Errorf("Pin() = %q, not in curl's --pinnedpubkey form", l.Pin())
			}
			if got := len(l.TLS.Certificate); got != tt.wantChain {
				t.Errorf("chain of %d certificates, want %d", got, tt.wantChain)
			}
			if _, err := tls.X509KeyPair(l.PEM(), l.KeyPEM); err != nil {
				t.Errorf("PEM() is not a key pair: %v", err)
			}
			if !slices.Equal(l.Cert.DNSNames, tt.opts.DNSNames) || len(l.Cert.IPAddresses) != len(tt.opts.IPs) ||
				len(l.Cert.URIs) != len(tt.opts.URIs) {
				t.Errorf("names %v %v %v, want %v %v %v", l.Cert.DNSNames, l.Cert.IPAddresses, l.Cert.URIs,
					tt.opts.DNSNames, tt.opts.IPs, tt.opts.URIs)
			}
			now := time.Now()
			if now.Before(l.Cert.NotBefore) || now.After(l.Cert.NotAfter) {
				t.Errorf("not valid now: %v to %v", l.Cert.NotBefore, l.Cert.NotAfter)
			}
			if _, err := l.Cert.Verify(x509.VerifyOptions{
				Roots:         tt.ca.Pool,
				Intermediates: intermediates(l),
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
			}); err != nil {
				t.Errorf("does not verify under the CA's Pool: %v", err)
			}
		})
	}
}

func intermediates(l *mtlstest.Leaf) *x509.CertPool {
	p := x509.NewCertPool()
	for _, der := range l.TLS.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			panic(err)
		}
		p.AddCert(c)
	}
	return p
}

// fakeTB records Fatalf and, as testing.T does, ends the goroutine.
type fakeTB struct {
	testing.TB // nil: a method this test does not expect panics
	fatal      string
	cleanups   int
}

func (f *fakeTB) Helper()                   {}
func (f *fakeTB) Logf(string, ...any)       {}
func (f *fakeTB) Cleanup(func())            { f.cleanups++ }
func (f *fakeTB) Fatalf(s string, a ...any) { f.fatal = fmt.Sprintf(s, a...); runtime.Goexit() }

// callTB runs fn with a fakeTB in its own goroutine and reports whether fn
// returned and what Fatalf said.
func callTB(fn func(tb testing.TB)) (returned bool, tb *fakeTB) {
	tb = &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(tb)
		returned = true
	}()
	<-done
	return returned, tb
}

func TestMustFailTB(t *testing.T) {
	ca := mtlstest.MustCA(t, "test CA")
	tests := []struct {
		name      string
		fn        func(tb testing.TB)
		wantFatal string // "" for none
	}{
		{"MustCA", func(tb testing.TB) { _ = mtlstest.MustCA(tb, "ok") }, ""},
		{"MustIssue", func(tb testing.TB) { _ = ca.MustIssue(tb, mtlstest.Options{}) }, ""},
		{"MustIssue with an unknown key type", func(tb testing.TB) {
			_ = ca.MustIssue(tb, mtlstest.Options{Key: "dsa"})
		}, `unknown key type "dsa"`},
		{"NewUpstream with a nil CA", func(tb testing.TB) { _ = mtlstest.NewUpstream(tb, nil) }, "nil CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			returned, tb := callTB(tt.fn)
			if tt.wantFatal == "" {
				if !returned || tb.fatal != "" {
					t.Errorf("failed tb: %q", tb.fatal)
				}
				return
			}
			if returned {
				t.Error("returned after failing tb")
			}
			if !strings.Contains(tb.fatal, tt.wantFatal) || !strings.HasPrefix(tb.fatal, "mtlstest: ") {
				t.Errorf("Fatalf(%q), want mtlstest: ...%s...", tb.fatal, tt.wantFatal)
			}
		})
	}
}

// clientOf returns an HTTP client for u: it dials u's port at host,
// presents cert (if any), trusts roots, checks pin (if any) on the leaf, and
// speaks only HTTP/2 or only HTTP/1.1.
func clientOf(t *testing.T, u *mtlstest.Upstream, cert *mtlstest.Leaf, roots *x509.CertPool, pin string, h2 bool) (*http.Client, string) {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots}
	if cert != nil {
		// Always sent, unlike Certificates, which sends nothing when the
		// server names CAs and none issued it.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.TLS, nil }
	}
	if pin != "" {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			got := (&mtlstest.Leaf{Cert: cs.PeerCertificates[0]}).Pin()
			if got != pin {
				return fmt.Errorf("pin mismatch: %s", got)
			}
			return nil
		}
	}
	tr := &http.Transport{TLSClientConfig: cfg, Protocols: new(http.Protocols)}
	tr.Protocols.SetHTTP1(!h2)
	tr.Protocols.SetHTTP2(h2)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}, "https://" + net.JoinHostPort("127.0.0.1", u.Port)
}

func TestUpstream(t *testing.T) {
	ca := mtlstest.MustCA(t, "test CA")
	inter, err := ca.Intermediate("intermediate CA")
	if err != nil {
		t.Fatal(err)
	}
	other := mtlstest.MustCA(t, "another CA")
	plain := ca.MustIssue(t, mtlstest.Options{CommonName: "proxy-client"})
	named := ca.MustIssue(t, mtlstest.Options{
		CommonName: "named-client",
		DNSNames:   []string{"proxy.example.com"},
		URIs:       []*url.URL{{Scheme: "spiffe", Host: "example.org", Path: "/proxy"}},
	})
	deep := inter.MustIssue(t, mtlstest.Options{CommonName: "deep-client"})
	stranger := other.MustIssue(t, mtlstest.Options{CommonName: "stranger"})

	tests := []struct {
		name      string
		cert      *mtlstest.Leaf
		host      string         // the name the client dials
		roots     *x509.CertPool // nil: the upstream's Pool
		pin       string         // "upstream": pin u.Leaf.Pin(); "other": another key
		h2        bool
		wantErr   string // "" for 200 OK
		wantProto string
		wantSNI   string
	}{
		{name: "HTTP/1.1 to 127.0.0.1", cert: plain, host: "127.0.0.1", wantProto: "HTTP/1.1"},
		{name: "HTTP/2 to 127.0.0.1", cert: plain, host: "127.0.0.1", h2: true, wantProto: "HTTP/2.0"},
		{name: "HTTP/2 to localhost", cert: plain, host: "localhost", h2: true, wantProto: "HTTP/2.0", wantSNI: "localhost"},
		{name: "subject alternative names recorded", cert: named, host: "localhost", wantProto: "HTTP/1.1", wantSNI: "localhost"},
		{name: "leaf of an intermediate", cert: deep, host: "127.0.0.1", wantProto: "HTTP/1.1"},
		{name: "pinned to the upstream's Leaf.Pin", cert: plain, host: "127.0.0.1", pin: "upstream", wantProto: "HTTP/1.1"},
		{name: "no client certificate", host: "127.0.0.1", wantErr: "certificate required"},
		{name: "client certificate of another CA", cert: stranger, host: "127.0.0.1", wantErr: "remote error: tls: unknown certificate authority"},
		{name: "client that trusts another CA", cert: plain, host: "127.0.0.1", roots: other.Pool, wantErr: "unknown authority"},
		{name: "client pinned to another key", cert: plain, host: "127.0.0.1", pin: "other", wantErr: "pin mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := mtlstest.NewUpstream(t, ca)
			if u.URL != "https://"+u.Host || u.Host != net.JoinHostPort("127.0.0.1", u.Port) || u.Pool != ca.Pool {
				t.Fatalf("URL %q, Host %q, Port %q, Pool %p (CA's: %p)", u.URL, u.Host, u.Port, u.Pool, ca.Pool)
			}
			roots := u.Pool
			if tt.roots != nil {
				roots = tt.roots
			}
			pin := map[string]string{"upstream": u.Leaf.Pin(), "other": plain.Pin()}[tt.pin]
			client, _ := clientOf(t, u, tt.cert, roots, pin, tt.h2)
			resp, err := client.Get("https://" + net.JoinHostPort(tt.host, u.Port) + "/path")
			if tt.wantErr != "" {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("got %s, want an error with %q", resp.Status, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q, want %q", err, tt.wantErr)
				}
				if seen := u.Seen(); len(seen) != 0 {
					t.Errorf("Seen() = %+v after a failed handshake, want none", seen)
				}
				if got := u.Conns(); got != 1 {
					t.Errorf("Conns() = %d, want 1", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			id := tt.cert.ID()
			if resp.StatusCode != http.StatusOK || string(body) != id+"\n" || resp.Header.Get(mtlstest.ClientCertHeader) != id {
				t.Errorf("got %s %q, %s: %q; want 200 OK, the ID %s in both", resp.Status, body,
					mtlstest.ClientCertHeader, resp.Header.Get(mtlstest.ClientCertHeader), id)
			}
			seen := u.Seen()
			if len(seen) != 1 {
				t.Fatalf("Seen() = %+v, want one request", seen)
			}
			c := seen[0]
			var uris []string
			for _, u := range tt.cert.Cert.URIs {
				uris = append(uris, u.String())
			}
			if c.ID != id || c.Subject != tt.cert.Cert.Subject.String() || c.CommonName != tt.cert.Cert.Subject.CommonName ||
				!slices.Equal(c.DNSNames, tt.cert.Cert.DNSNames) || !slices.Equal(c.URIs, uris) ||
				c.Proto != tt.wantProto || c.ServerName != tt.wantSNI || !c.Cert.Equal(tt.cert.Cert) {
				t.Errorf("Seen()[0] = %+v\nwant ID %s, subject %s, names %v %v, proto %s, SNI %q", c, id,
					tt.cert.Cert.Subject, tt.cert.Cert.DNSNames, uris, tt.wantProto, tt.wantSNI)
			}
			if got := u.Conns(); got != 1 {
				t.Errorf("Conns() = %d, want 1", got)
			}
		})
	}
}

func TestUpstreamServerCertificate(t *testing.T) {
	ca := mtlstest.MustCA(t, "test CA")
	u := mtlstest.NewUpstream(t, ca)
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if err := u.Leaf.Cert.VerifyHostname(name); err != nil {
			t.Errorf("server certificate: %v", err)
		}
	}
	if _, err := u.Leaf.Cert.Verify(x509.VerifyOptions{Roots: u.Pool}); err != nil {
		t.Errorf("server certificate does not verify under Pool: %v", err)
	}
}

func TestNewUpstreamWith(t *testing.T) {
	ca := mtlstest.MustCA(t, "test CA")
	cert := ca.MustIssue(t, mtlstest.Options{CommonName: "proxy-client"})
	tests := []struct {
		name     string
		h        http.Handler
		wantCode int
		wantBody string
	}{
		{"nil handler", nil, http.StatusOK, cert.ID() + "\n"},
		{"own handler", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusTeapot)
			fmt.Fprint(w, "path ", r.URL.Path)
		}), http.StatusTeapot, "path /tea"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := mtlstest.NewUpstreamWith(t, ca, tt.h)
			client, base := clientOf(t, u, cert, u.Pool, "", false)
			resp, err := client.Get(base + "/tea")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode || string(body) != tt.wantBody ||
				resp.Header.Get(mtlstest.ClientCertHeader) != cert.ID() {
				t.Errorf("got %s %q, header %q", resp.Status, body, resp.Header.Get(mtlstest.ClientCertHeader))
			}
			if seen := u.Seen(); len(seen) != 1 || seen[0].ID != cert.ID() {
				t.Errorf("Seen() = %+v", seen)
			}
		})
	}
}

func TestUpstreamConcurrent(t *testing.T) {
	ca := mtlstest.MustCA(t, "test CA")
	u := mtlstest.NewUpstream(t, ca)
	certs := []*mtlstest.Leaf{
		ca.MustIssue(t, mtlstest.Options{CommonName: "a"}),
		ca.MustIssue(t, mtlstest.Options{CommonName: "b"}),
	}
	const perClient = 20
	var wg sync.WaitGroup
	for _, cert := range certs {
		client, base := clientOf(t, u, cert, u.Pool, "", true)
		for range perClient {
			wg.Go(func() {
				resp, err := client.Get(base)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
	}
	wg.Wait()
	count := map[string]int{}
	for _, c := range u.Seen() {
		count[c.CommonName]++
	}
	if count["a"] != perClient || count["b"] != perClient || len(count) != 2 {
		t.Errorf("Seen() counts %v, want %d of a and of b", count, perClient)
	}
}

func TestSeenIsACopy(t *testing.T) {
	ca := mtlstest.MustCA(t, "test CA")
	u := mtlstest.NewUpstream(t, ca)
	client, base := clientOf(t, u, ca.MustIssue(t, mtlstest.Options{}), u.Pool, "", false)
	resp, err := client.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u.Seen()[0].ID = "changed"
	if got := u.Seen()[0].ID; got == "changed" {
		t.Error("Seen() returned the upstream's own slice")
	}
}

func TestUpstreamClosed(t *testing.T) {
	ca := mtlstest.MustCA(t, "test CA")
	var addr string
	t.Run("test that ends", func(t *testing.T) {
		addr = mtlstest.NewUpstream(t, ca).Host
	})
	u, err := mtlstest.StartUpstream(ca, nil)
	if err != nil {
		t.Fatal(err)
	}
	u.Close()
	u.Close() // harmless
	if _, err := mtlstest.StartUpstream(nil, nil); err == nil || !strings.Contains(err.Error(), "nil CA") {
		t.Errorf("StartUpstream(nil, nil): %v, want an error", err)
	}
	for name, addr := range map[string]string{"NewUpstream after its test": addr, "StartUpstream after Close": u.Host} {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("%s: %s still accepts connections", name, addr)
		}
	}
}

// The test that the package documentation shows, with a Selector of package
// mtls as the proxy's transport.
func TestProxyPresentsItsCertificate(t *testing.T) {
	ca := mtlstest.MustCA(t, "test CA")
	client := ca.MustIssue(t, mtlstest.Options{CommonName: "proxy-client"})
	up := mtlstest.NewUpstream(t, ca) // closed when the test ends

	ctx := context.Background()
	store := mtls.NewMemoryStore([]byte("test secret"))
	id, err := store.Add(ctx, client.PEM())
	if err != nil {
		t.Fatal(err)
	}
	sel, err := mtls.New(store, mtls.Policy{
		Certificates:     mtls.Map{up.Host: id},
		PinnedPublicKeys: mtls.Map{up.Host: up.Leaf.Pin()},
		RootCAs:          up.Pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sel.Close()
	resp, err := (&http.Client{Transport: sel.RoundTripper()}).Get(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	if seen := up.Seen(); len(seen) != 1 || seen[0].ID != client.ID() {
		t.Errorf("upstream saw %+v, want one request with %s", seen, client.ID())
	}
}
