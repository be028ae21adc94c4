package gateway

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
)

// BenchmarkGateway measures requests per second through the gateway and,
// as the baseline, through a bare httputil.ReverseProxy with a fixed
// http.Transport, to the same upstream, with the same client load: 16
// concurrent clients on keep-alive connections, small bodies.
//
// Both sides alike:
//   - client to proxy: HTTP/1.1 over TLS 1.3 (Go's default suite and
//     curve), keep-alive, 16 connections; the client presents a
//     certificate, which the proxy verifies (the gateway: mutual TLS of the
//     API, allowlist and client CA; the baseline: RequireAndVerifyClientCert
//     against the same CA);
//   - proxy to upstream: an mtlstest upstream requiring a client
//     certificate of its CA, HTTP/2 over TLS 1.3 (the gateway: the
//     API selector's RoundTripper; the baseline: http.Transport with a
//     fixed tls.Config presenting the same certificate, ForceAttemptHTTP2,
//     MaxIdleConnsPerHost 256), with a 3-byte body.
//
// The gateway also routes by domain and listen path, strips the listen
// path, and formats a log line per request with both certificate IDs
// (sent to io.Discard here).
func BenchmarkGateway(b *testing.B) {
	p := newPKI(b)
	ca := mtlstest.MustCA(b, "bench upstream CA")
	up := mtlstest.NewUpstreamWith(b, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	}))
	gwClient := p.leaf("gw-up", ca)
	caFile := p.write("up-ca.pem", ca.CertPEM)

	// The gateway, with its certificates in its store, named by ID as Tyk
	// users do (a file named in a map is checked for changes on every
	// request).
	st, err := mtls.NewFileStore(p.file("store"), []byte("bench secret"))
	require.NoError(b, err)
	var ids []string
	for _, l := range []*mtlstest.Leaf{gwClient, p.leaves["alice"], p.leaves["gateway"]} {
		id, err := st.Add(context.Background(), l.PEM())
		require.NoError(b, err)
		ids = append(ids, id)
	}
	require.NoError(b, st.Close())
	p.jsonFile("apps/api.json", apiDef("api", "shared.test", "/api/", up.URL, obj{
		"use_mutual_tls_auth": true, "client_certificates": []string{ids[1]},
		"upstream_certificates": obj{up.Host: ids[0]},
	}))
	conf := p.jsonFile("tyk.conf", obj{
		"listen_address": "127.0.0.1", "listen_port": 0, "app_path": "apps", "enable_custom_domains": true,
		"http_server_options": obj{"use_ssl": true, "ssl_certificates": []string{ids[2]}},
		"security":            obj{"private_certificate_encoding_secret": "bench secret"},
		"mtls":                obj{"store_dir": "store", "client_cas": []string{"client-ca.pem"}, "upstream_cas": []string{caFile}},
	})
	gw := startGatewayLog(b, io.Discard, "-conf", conf)

	// The baseline.
	target, _ := url.Parse(up.URL)
	bare := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{Certificates: []tls.Certificate{gwClient.TLS}, RootCAs: ca.Pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	hs := &http.Server{Handler: bare, TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{p.leaves["gateway"].TLS},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: p.clientCA.Pool, MinVersion: tls.VersionTLS12,
	}}
	go func() { _ = hs.ServeTLS(ln, "", "") }()
	b.Cleanup(func() { _ = hs.Shutdown(context.Background()) })

	for _, side := range []struct {
		name, addr string
	}{{"gateway", gw.addr}, {"bare", ln.Addr().String()}} {
		b.Run(side.name, func(b *testing.B) {
			loadTest(b, p, side.addr, "https://shared.test/api/x")
		})
	}
}

// loadTest sends b.N GET requests to url (dialled at addr) from 16
// concurrent clients, and reports requests per second.
func loadTest(b *testing.B, p *pki, addr, target string) {
	const clients = 16
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			RootCAs: p.serverCA.Pool, Certificates: []tls.Certificate{p.leaves["alice"].TLS},
			ServerName: "shared.test", MinVersion: tls.VersionTLS12,
		},
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1
		MaxIdleConnsPerHost: clients,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: waitFor}
	do := func() error {
		resp, err := c.Get(target)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			return &statusError{resp.StatusCode}
		}
		return err
	}
	// Warm up: every client's connection, and the upstream pool.
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := do(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var left atomic.Int64
	left.Store(int64(b.N))
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := do(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }
