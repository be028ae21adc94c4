package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
)

// waitFor bounds every wait; none is a timing assertion.
const waitFor = 30 * time.Second

const secret = "demo-admin-secret"

// demo is a configuration laid out as examples/gateway/demo's: two APIs on
// one domain, api.localhost (so that its handshakes ask for a client
// certificate without requiring one, and the APIs decide): billing
// (/billing/) takes alice only, and the gateway presents gw-to-billing to
// its upstream, which takes only certificates of its own CA; orders
// (/orders/) takes bob only.
type demo struct {
	dir      string
	conf     string
	serverCA *mtlstest.CA
	alice    *mtlstest.Leaf
	gateway  *mtlstest.Leaf // the gateway's server certificate
	toUp     *mtlstest.Leaf // what the gateway presents to billing
	up       *mtlstest.Upstream
}

func newDemo(t *testing.T) *demo {
	d := &demo{dir: t.TempDir()}
	d.serverCA = mtlstest.MustCA(t, "demo server CA")
	clientCA := mtlstest.MustCA(t, "demo client CA")
	upCA := mtlstest.MustCA(t, "billing clients CA")
	d.up = mtlstest.NewUpstream(t, upCA)
	d.gateway = d.serverCA.MustIssue(t, mtlstest.Options{CommonName: "gateway", DNSNames: []string{"api.localhost"}})
	d.alice = clientCA.MustIssue(t, mtlstest.Options{CommonName: "alice"})
	// Valid for 10 days: the expiry gauge says so.
	d.toUp = upCA.MustIssue(t, mtlstest.Options{CommonName: "gateway to billing", NotAfter: time.Now().Add(10 * 24 * time.Hour)})
	for name, data := range map[string][]byte{
		"certs/gateway-full.pem":        d.gateway.PEM(),
		"certs/client-ca.pem":           clientCA.CertPEM,
		"certs/alice.pem":               d.alice.CertPEM,
		"certs/bob.pem":                 clientCA.MustIssue(t, mtlstest.Options{CommonName: "bob"}).CertPEM,
		"certs/billing-upstream-ca.pem": upCA.CertPEM,
		"certs/gw-to-billing-full.pem":  d.toUp.PEM(),
	} {
		d.write(t, name, data)
	}
	d.conf = d.json(t, "tyk.conf", map[string]any{
		"listen_address": "127.0.0.1", "listen_port": 0, "secret": secret, "app_path": "apps",
		"enable_custom_domains": true,
		"http_server_options":   map[string]any{"use_ssl": true, "ssl_certificates": []string{"certs/gateway-full.pem"}},
		"security":              map[string]any{"private_certificate_encoding_secret": "demo store secret"},
		"mtls": map[string]any{"store_dir": "store", "client_cas": []string{"certs/client-ca.pem"},
			"upstream_cas": []string{"certs/billing-upstream-ca.pem"}},
	})
	d.json(t, "apps/billing.json", map[string]any{
		"api_id": "billing", "name": "Billing", "active": true, "use_keyless": true, "domain": "api.localhost",
		"proxy":               map[string]any{"listen_path": "/billing/", "target_url": d.up.URL, "strip_listen_path": true},
		"use_mutual_tls_auth": true, "client_certificates": []string{"../certs/alice.pem"},
		"upstream_certificates": map[string]any{d.up.Host: "../certs/gw-to-billing-full.pem"},
	})
	d.json(t, "apps/orders.json", map[string]any{
		"api_id": "orders", "name": "Orders", "active": true, "use_keyless": true, "domain": "api.localhost",
		"proxy":               map[string]any{"listen_path": "/orders/", "target_url": d.up.URL, "strip_listen_path": true},
		"use_mutual_tls_auth": true, "client_certificates": []string{"../certs/bob.pem"},
		"upstream_certificates": map[string]any{d.up.Host: "../certs/gw-to-billing-full.pem"},
	})
	return d
}

func (d *demo) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(d.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (d *demo) json(t *testing.T, name string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return d.write(t, name, b)
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

// start runs the gateway in-process until the test ends and returns the
// address it listens on.
func start(t *testing.T, args ...string) (addr string, stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout syncBuffer
	stderr = &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, &stdout, stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(waitFor):
			t.Error("the gateway did not stop")
		}
		if t.Failed() {
			t.Logf("gateway stderr:\n%s", stderr.String())
		}
	})
	re := regexp.MustCompile(`^listening on https://(127\.0\.0\.1:\d+)\n$`)
	deadline := time.Now().Add(waitFor)
	for {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			return m[1], stderr
		}
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("the gateway stopped: %v\nstderr:\n%s", err, stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line after %v; stderr:\n%s", waitFor, stderr.String())
		}
	}
}

// client is an HTTP client of the gateway at addr that presents leaf (nil:
// none) and trusts the demo's server CA.
func (d *demo) client(t *testing.T, addr string, leaf *mtlstest.Leaf) *http.Client {
	cfg := &tls.Config{RootCAs: d.serverCA.Pool, MinVersion: tls.VersionTLS12}
	if leaf != nil {
		cfg.Certificates = []tls.Certificate{leaf.TLS}
	}
	var dialer net.Dialer
	tr := &http.Transport{
		TLSClientConfig: cfg,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitFor}
}

func get(t *testing.T, c *http.Client, url string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// sample returns the value of the series of metric in a text exposition
// whose labels include every one of labels, and whether there is one.
func sample(exposition, metric string, labels ...string) (float64, bool) {
	for _, line := range strings.Split(exposition, "\n") {
		rest, ok := strings.CutPrefix(line, metric+"{")
		if !ok {
			continue
		}
		set, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(","+set+",", ","+l+",")
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		return v, err == nil
	}
	return 0, false
}

// TestGatewayMetrics: the gateway of examples/gateway with a Collector,
// in-process, on a configuration laid out as the demo's: a request of
// alice's through billing makes real handshakes on both sides, and
// /metrics, behind the admin secret, counts them and gives the expiry of
// the certificates the gateway's policies name.
func TestGatewayMetrics(t *testing.T) {
	d := newDemo(t)
	addr, stderr := start(t, "-conf", d.conf)
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	url := func(path string) string { return "https://api.localhost:" + port + path }

	alice := d.client(t, addr, d.alice)
	status, body := get(t, alice, url("/billing/x"))
	if status != 200 || strings.TrimSpace(body) != d.toUp.ID() {
		t.Fatalf("billing: %d %q, want 200 and the upstream's answer %s", status, body, d.toUp.ID())
	}
	if seen := d.up.Seen(); len(seen) != 1 || seen[0].ID != d.toUp.ID() {
		t.Fatalf("the upstream saw %+v, want one request with gw-to-billing", seen)
	}

	anon := d.client(t, addr, nil)
	for _, hdr := range [][]string{nil, {"X-Tyk-Authorization", "wrong"}} {
		if status, body := get(t, anon, url(MetricsPath), hdr...); status != 403 {
			t.Errorf("/metrics with %q: %d %s, want 403", hdr, status, body)
		}
	}
	status, metrics := get(t, anon, url(MetricsPath), "X-Tyk-Authorization", secret)
	if status != 200 {
		t.Fatalf("/metrics: %d %s", status, metrics)
	}

	for _, want := range [][]string{
		{"mtls_handshakes_total", `side="upstream"`, `outcome="certificate_presented"`},
		{"mtls_handshakes_total", `side="downstream"`, `outcome="server_certificate_chosen"`},
	} {
		if v, ok := sample(metrics, want[0], want[1:]...); !ok || v < 1 {
			t.Errorf("%s{%s} = %v (found: %v), want at least 1", want[0], strings.Join(want[1:], ","), v, ok)
		}
	}
	v, ok := sample(metrics, "mtls_certificate_expiry_seconds",
		`side="upstream"`, `field="Certificates"`, `id="`+d.toUp.ID()+`"`, `pattern="`+d.up.Host+`"`)
	if !ok || v <= 0 || v > (10*24*time.Hour).Seconds() {
		t.Errorf("the expiry gauge of gw-to-billing = %v (found: %v), want in (0, 10 days]", v, ok)
	}
	v, ok = sample(metrics, "mtls_certificate_expiry_seconds", `side="downstream"`, `id="`+d.gateway.ID()+`"`)
	if !ok || v <= 0 {
		t.Errorf("the expiry gauge of the gateway's server certificate = %v (found: %v), want > 0", v, ok)
	}
	if !strings.Contains(metrics, "\ngo_goroutines ") {
		t.Error("no Go runtime metrics")
	}
	// The log line is written after the response: wait for it, bounded.
	line := fmt.Sprintf(`admin GET %q status=200`, MetricsPath)
	for deadline := time.Now().Add(waitFor); !strings.Contains(stderr.String(), line); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the scrape is not logged as an admin request:\n%s", stderr.String())
		}
	}
}
