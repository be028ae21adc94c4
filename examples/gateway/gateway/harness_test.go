package gateway

// The test harness: throw-away CAs and certificates written as files, a
// tyk.conf and API definitions in a temporary directory, upstreams on
// loopback that each take only their own client certificates, and the
// gateway run in-process on 127.0.0.1:0. Real programs (curl, nginx) go
// through requirePeer: skipped loudly when missing, a failure with
// MTLS_REQUIRE_PEERS=1.

import (
	"github.com/mtlsgo/mtls/internal/peertest"

	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls/mtlstest"
)

// waitFor bounds every wait of the tests; none is a timing assertion.
const waitFor = 30 * time.Second

// requirePeer returns the path of program name: see peertest.Require.
func requirePeer(t testing.TB, name string) string {
	t.Helper()
	return peertest.Require(t, name)
}

// syncBuffer is a buffer written by one goroutine and read by another.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pki is the certificates of a test, written as PEM files in dir.
type pki struct {
	t        testing.TB
	dir      string
	serverCA *mtlstest.CA // the gateway's server certificate
	clientCA *mtlstest.CA // the gateway's clients
	otherCA  *mtlstest.CA // a stranger's
	leaves   map[string]*mtlstest.Leaf
}

func newPKI(t testing.TB) *pki {
	p := &pki{t: t, dir: t.TempDir(), leaves: map[string]*mtlstest.Leaf{}}
	p.serverCA = mtlstest.MustCA(t, "gateway server CA")
	p.clientCA = mtlstest.MustCA(t, "gateway client CA")
	p.otherCA = mtlstest.MustCA(t, "other CA")
	p.write("server-ca.pem", p.serverCA.CertPEM)
	p.write("client-ca.pem", p.clientCA.CertPEM)
	p.leaf("gateway", p.serverCA, "shared.test", "solo.test", "admin.test", "localhost")
	for _, n := range []string{"alice", "bob", "ops", "mallory"} {
		p.leaf(n, p.clientCA)
	}
	p.leaf("stranger", p.otherCA)
	return p
}

// write writes a file of the test's directory and returns its path.
func (p *pki) write(name string, data []byte) string {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	require.NoError(p.t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(p.t, os.WriteFile(path, data, 0o600))
	return path
}

// leaf issues a certificate and writes NAME.pem (certificate),
// NAME-key.pem and NAME-full.pem (both).
func (p *pki) leaf(name string, ca *mtlstest.CA, dns ...string) *mtlstest.Leaf {
	p.t.Helper()
	o := mtlstest.Options{CommonName: name, DNSNames: dns}
	if len(dns) > 0 {
		o.IPs = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	l := ca.MustIssue(p.t, o)
	p.leaves[name] = l
	p.write(name+".pem", l.CertPEM)
	p.write(name+"-key.pem", l.KeyPEM)
	p.write(name+"-full.pem", l.PEM())
	return l
}

func (p *pki) file(name string) string { return filepath.Join(p.dir, name) }

// upstream is an mTLS upstream on loopback that takes the client
// certificates of its own CA and answers the path it got, and the client
// certificate's ID in mtlstest.ClientCertHeader.
type upstream struct {
	*mtlstest.Upstream
	ca     *mtlstest.CA
	caFile string
}

func (p *pki) upstream(name string) *upstream {
	p.t.Helper()
	ca := mtlstest.MustCA(p.t, name+" clients CA")
	u := mtlstest.NewUpstreamWith(p.t, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream=%s path=%s\n", name, r.URL.Path)
	}))
	return &upstream{Upstream: u, ca: ca, caFile: p.write(name+"-clients-ca.pem", ca.CertPEM)}
}

// clientFor issues the gateway's client certificate for u.
func (p *pki) clientFor(u *upstream, name string) *mtlstest.Leaf {
	return p.leaf(name, u.ca)
}

// running is a gateway run in-process.
type running struct {
	addr   string // 127.0.0.1:PORT
	port   string
	stderr *syncBuffer
	stop   func() error // stops the gateway and returns run's error
}

// startGateway runs the gateway with args until the test ends.
func startGateway(t testing.TB, args ...string) *running {
	t.Helper()
	return startGatewayLog(t, nil, args...)
}

// startGatewayLog is startGateway that also copies the log to w, or sends
// it to w alone when w is io.Discard.
func startGatewayLog(t testing.TB, w io.Writer, args ...string) *running {
	t.Helper()
	return startGatewayWith(t, w, nil, args...)
}

// startGatewayWith is startGatewayLog with options.
func startGatewayWith(t testing.TB, w io.Writer, opts []Option, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	var logTo io.Writer = &stderr
	switch {
	case w == io.Discard:
		logTo = w
	case w != nil:
		logTo = io.MultiWriter(&stderr, w)
	}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, args, &stdout, logTo, opts...) }()
	re := regexp.MustCompile(`^listening on https?://(127\.0\.0\.1:(\d+))\n$`)
	deadline := time.Now().Add(waitFor)
	var m []string
	for m == nil {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("the gateway stopped: %v\nstderr:\n%s", err, stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		m = re.FindStringSubmatch(stdout.String())
		if m == nil && time.Now().After(deadline) {
			cancel()
			t.Fatalf("no listening line after %v; stdout %q\nstderr:\n%s", waitFor, stdout.String(), stderr.String())
		}
	}
	r := &running{addr: m[1], port: m[2], stderr: &stderr}
	var once sync.Once
	var runErr error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(waitFor):
				runErr = errors.New("the gateway did not stop")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("run: %v", err)
		}
		if t.Failed() {
			t.Logf("gateway stderr:\n%s", stderr.String())
		}
		if s := stdout.String(); strings.Count(s, "\n") != 1 {
			t.Errorf("stdout has %d lines, want 1: %q", strings.Count(s, "\n"), s)
		}
	})
	return r
}

// waitLog polls the gateway's stderr until it holds s, and reports whether
// it did within waitFor. Log lines are written after the response.
func (r *running) waitLog(s string) bool {
	deadline := time.Now().Add(waitFor)
	for !strings.Contains(r.stderr.String(), s) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// client is a Go HTTP client of the gateway that presents leaf (nil:
// none), trusts the gateway's CA and dials every name at the gateway.
func (p *pki) client(r *running, leaf *mtlstest.Leaf) *http.Client {
	cfg := &tls.Config{RootCAs: p.serverCA.Pool, MinVersion: tls.VersionTLS12}
	if leaf != nil {
		cfg.Certificates = []tls.Certificate{leaf.TLS}
	}
	tr := &http.Transport{
		TLSClientConfig:     cfg,
		MaxIdleConnsPerHost: 4,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, r.addr)
		},
	}
	p.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitFor}
}

var dialer net.Dialer

// get sends GET url with c and returns the status and body.
func get(c *http.Client, url string, hdr ...string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// jsonFile marshals v into a file of the test's directory.
func (p *pki) jsonFile(name string, v any) string {
	p.t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	require.NoError(p.t, err)
	return p.write(name, b)
}

// obj is a JSON object.
type obj = map[string]any

// apiDef is a classic API definition.
func apiDef(id, domain, listenPath, target string, extra obj) obj {
	a := obj{
		"api_id": id, "name": id, "active": true, "use_keyless": true, "domain": domain,
		"proxy": obj{"listen_path": listenPath, "target_url": target, "strip_listen_path": true},
	}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

// certPool is a pool of the PEM certificates of files.
func certPool(t testing.TB, files ...string) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.True(t, pool.AppendCertsFromPEM(b))
	}
	return pool
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
