// Command reverseproxy shows one httputil.ReverseProxy presenting a
// different client certificate to each of its mTLS upstreams.
//
// It needs no setup: it makes a throw-away CA, starts two upstreams on
// loopback that each require and accept only their own client certificate
// and answer with the certificate they saw, puts both client certificates in
// a MemoryStore, and maps each upstream's host:port to its certificate ID.
// Then it serves the proxy (/a goes to upstream A, /b to upstream B), sends
// one request through it to each upstream, prints which certificate went
// where, and exits.
//
//	go run ./examples/reverseproxy
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "reverseproxy:", err)
		os.Exit(1)
	}
}

// upstream is one mTLS server and the client certificate it accepts.
type upstream struct {
	name   string // "A" or "B", also the proxy route /a or /b
	client *mtlstest.Leaf
	srv    *httptest.Server
	url    *url.URL
}

func run(w io.Writer) error {
	ctx := context.Background()

	// 1. A throw-away CA issues a server certificate for loopback and one
	// client certificate per upstream.
	ca, err := mtlstest.NewCA("reverseproxy example CA")
	if err != nil {
		return fmt.Errorf("make CA: %w", err)
	}
	serverLeaf, err := ca.Issue(mtlstest.Options{
		CommonName: "upstream",
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	if err != nil {
		return fmt.Errorf("issue server certificate: %w", err)
	}

	// 2. Two upstreams; each accepts only its own client certificate.
	var ups []*upstream
	for _, name := range []string{"A", "B"} {
		client, err := ca.Issue(mtlstest.Options{CommonName: "client-" + strings.ToLower(name)})
		if err != nil {
			return fmt.Errorf("issue client certificate %s: %w", name, err)
		}
		u := &upstream{name: name, client: client}
		u.srv = startUpstream(serverLeaf, ca, client.ID())
		defer u.srv.Close()
		if u.url, err = url.Parse(u.srv.URL); err != nil {
			return err
		}
		ups = append(ups, u)
	}

	// 3. The client certificates go into a store; the policy maps each
	// upstream's host:port to its certificate's ID.
	store := mtls.NewMemoryStore([]byte("reverseproxy example secret"))
	certs := mtls.Map{}
	for _, u := range ups {
		id, err := store.Add(ctx, u.client.PEM())
		if err != nil {
			return fmt.Errorf("store client certificate %s: %w", u.name, err)
		}
		certs[u.url.Host] = id
	}
	sel, err := mtls.New(store, mtls.Policy{Certificates: certs, RootCAs: ca.Pool})
	if err != nil {
		return fmt.Errorf("make selector: %w", err)
	}
	defer sel.Close()

	// 4. The reverse proxy: /a goes to upstream A, /b to upstream B, and
	// the selector's RoundTripper picks the certificate for each.
	routes := map[string]*url.URL{}
	for _, u := range ups {
		routes["/"+strings.ToLower(u.name)] = u.url
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(routes[pr.In.URL.Path])
			pr.Out.URL.Path, pr.Out.URL.RawPath = "/", ""
		},
		Transport: sel.RoundTripper(),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "proxy: "+err.Error(), http.StatusBadGateway)
		},
	}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if routes[r.URL.Path] == nil {
			http.NotFound(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	fmt.Fprintf(w, "proxy listening on %s\n", front.URL)

	// 5. One request through the proxy to each upstream.
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for _, u := range ups {
		route := "/" + strings.ToLower(u.name)
		resp, err := client.Get(front.URL + route)
		if err != nil {
			return fmt.Errorf("GET %s: %w", route, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("GET %s: %w", route, err)
		}
		saw := string(bytes.TrimSpace(body))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: upstream %s (%s): %s: %s", route, u.name, u.url.Host, resp.Status, saw)
		}
		fmt.Fprintf(w, "upstream %s (%s) saw client certificate %s\n", u.name, u.url.Host, saw)
		if want := describe(u.client.Cert); saw != want {
			return fmt.Errorf("upstream %s saw %q, want %q", u.name, saw, want)
		}
	}
	return nil
}

// startUpstream starts an HTTPS server on loopback presenting serverLeaf.
// It requires a client certificate issued by ca, accepts only the one whose
// ID is allowed, and answers with the subject and ID of the one it saw.
func startUpstream(serverLeaf *mtlstest.Leaf, ca *mtlstest.CA, allowed string) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, describe(r.TLS.PeerCertificates[0]))
	}))
	srv.TLS = mtlstest.ServerConfig(serverLeaf, ca)
	srv.TLS.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("no client certificate")
		}
		if id := mtls.Fingerprint(cs.PeerCertificates[0].Raw); id != allowed {
			return fmt.Errorf("client certificate %s is not allowed here", id)
		}
		return nil
	}
	srv.StartTLS()
	return srv
}

// describe names a certificate as the upstreams report it.
func describe(c *x509.Certificate) string {
	return fmt.Sprintf("CN=%s id=%s", c.Subject.CommonName, mtls.Fingerprint(c.Raw))
}
