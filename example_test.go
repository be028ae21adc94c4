package mtls_test

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
	"net/http/httputil"
	"net/url"
	"strings"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
)

// The examples talk to upstreams named *.example.com. One loopback server
// plays all of them: it presents a certificate for *.example.com issued by
// the example's CA, verifies the client certificate it is given (if any),
// and answers with the host asked for and the client certificate it saw.
// The base transport handed to mtls.New dials that server whatever the host;
// a real gateway passes its own base transport, or none.

// startExampleUpstream starts the example upstream and returns it with a base
// transport that dials it for every host.
func startExampleUpstream(ca *mtlstest.CA) (*httptest.Server, *http.Transport) {
	leaf, err := ca.Issue(mtlstest.Options{CommonName: "upstream", DNSNames: []string{"*.example.com"}})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			fmt.Fprintf(w, "%s saw no client certificate", r.Host)
			return
		}
		fmt.Fprintf(w, "%s saw CN=%s", r.Host, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = mtlstest.ServerConfig(leaf, ca)
	srv.TLS.ClientAuth = tls.VerifyClientCertIfGiven
	srv.StartTLS()
	addr := srv.Listener.Addr().String()
	base := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	return srv, base
}

// exampleClientPEM makes a client certificate named cn, in the PEM form that
// a store's Add takes: the chain followed by the private key.
func exampleClientPEM(ca *mtlstest.CA, cn string) []byte {
	leaf, err := ca.Issue(mtlstest.Options{CommonName: cn})
	if err != nil {
		log.Fatal(err)
	}
	return leaf.PEM()
}

// exampleGet returns the body of a GET of rawURL through rt.
func exampleGet(rt http.RoundTripper, rawURL string) (string, error) {
	resp, err := (&http.Client{Transport: rt}).Get(rawURL)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(body)), err
}

// New makes the gateway-level Selector: each upstream host gets the client
// certificate its pattern maps to, a host that no pattern matches gets none,
// and a host whose certificate is missing fails before any connection.
func ExampleNew() {
	ctx := context.Background()
	ca, err := mtlstest.NewCA("example CA")
	if err != nil {
		log.Fatal(err)
	}
	upstream, base := startExampleUpstream(ca)
	defer upstream.Close()

	// Private keys are kept encrypted under the store's secret.
	store := mtls.NewMemoryStore([]byte("a secret from your vault"))
	paymentsID, err := store.Add(ctx, exampleClientPEM(ca, "payments-client"))
	if err != nil {
		log.Fatal(err)
	}
	internalID, err := store.Add(ctx, exampleClientPEM(ca, "internal-client"))
	if err != nil {
		log.Fatal(err)
	}
	legacyID, err := store.Add(ctx, exampleClientPEM(ca, "legacy-client"))
	if err != nil {
		log.Fatal(err)
	}

	sel, err := mtls.New(store, mtls.Policy{
		Certificates: mtls.Map{
			"payments.example.com": paymentsID, // any port
			"*.example.com:8443":   internalID, // one label, port 8443 only
			"legacy.example.com":   legacyID,
		},
		RootCAs: ca.Pool, // verifies the upstreams; nil: the system pool
	}, mtls.WithBaseTransport(base))
	if err != nil {
		log.Fatal(err)
	}
	defer sel.Close()

	for _, u := range []string{
		"https://payments.example.com",
		"https://orders.example.com:8443",
		"https://orders.example.com", // port 443: no pattern matches
	} {
		saw, err := exampleGet(sel.RoundTripper(), u)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(saw)
	}

	// A certificate deleted while mapped: its host's requests fail closed,
	// and never go out without a certificate.
	if err := store.Delete(ctx, legacyID); err != nil {
		log.Fatal(err)
	}
	_, err = exampleGet(sel.RoundTripper(), "https://legacy.example.com")
	fmt.Println("legacy.example.com fails closed:", errors.Is(err, mtls.ErrNotFound))

	// A policy naming it now is refused when it is set.
	err = sel.Update(mtls.Policy{Certificates: mtls.Map{"legacy.example.com": legacyID}, RootCAs: ca.Pool})
	fmt.Println("Update refused:", errors.Is(err, mtls.ErrNotFound))
	// Output:
	// payments.example.com saw CN=payments-client
	// orders.example.com:8443 saw CN=internal-client
	// orders.example.com saw no client certificate
	// legacy.example.com fails closed: true
	// Update refused: true
}

// ForAPI gives one API its own certificates: its patterns win over the
// gateway's, and the gateway's still apply to the hosts it does not map.
// Its nil RootCAs inherits the gateway's.
func ExampleSelector_ForAPI() {
	ctx := context.Background()
	ca, err := mtlstest.NewCA("example CA")
	if err != nil {
		log.Fatal(err)
	}
	upstream, base := startExampleUpstream(ca)
	defer upstream.Close()

	store := mtls.NewMemoryStore([]byte("a secret from your vault"))
	gatewayID, err := store.Add(ctx, exampleClientPEM(ca, "gateway-client"))
	if err != nil {
		log.Fatal(err)
	}
	billingID, err := store.Add(ctx, exampleClientPEM(ca, "billing-api-client"))
	if err != nil {
		log.Fatal(err)
	}

	gateway, err := mtls.New(store, mtls.Policy{
		Certificates: mtls.Map{"*": gatewayID}, // every host, unless an API says otherwise
		RootCAs:      ca.Pool,
	}, mtls.WithBaseTransport(base))
	if err != nil {
		log.Fatal(err)
	}
	defer gateway.Close()

	billingAPI, err := gateway.ForAPI(mtls.Policy{
		Certificates: mtls.Map{"billing.example.com": billingID},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer billingAPI.Close() // when the API goes away

	for _, c := range []struct {
		level string
		sel   *mtls.Selector
		url   string
	}{
		{"billing API:", billingAPI, "https://billing.example.com"},
		{"billing API:", billingAPI, "https://orders.example.com"},
		{"gateway:    ", gateway, "https://billing.example.com"},
	} {
		saw, err := exampleGet(c.sel.RoundTripper(), c.url)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(c.level, saw)
	}
	// Output:
	// billing API: billing.example.com saw CN=billing-api-client
	// billing API: orders.example.com saw CN=gateway-client
	// gateway:     billing.example.com saw CN=gateway-client
}

// Update swaps a selector's policy atomically. To rotate a certificate: add
// the new one to the store, Update the policy to its ID, then delete the old
// one. Pooled connections that presented the old certificate are retired.
func ExampleSelector_Update() {
	ctx := context.Background()
	ca, err := mtlstest.NewCA("example CA")
	if err != nil {
		log.Fatal(err)
	}
	upstream, base := startExampleUpstream(ca)
	defer upstream.Close()

	store := mtls.NewMemoryStore([]byte("a secret from your vault"))
	oldID, err := store.Add(ctx, exampleClientPEM(ca, "client-2025"))
	if err != nil {
		log.Fatal(err)
	}
	sel, err := mtls.New(store, mtls.Policy{
		Certificates: mtls.Map{"api.example.com": oldID},
		RootCAs:      ca.Pool,
	}, mtls.WithBaseTransport(base))
	if err != nil {
		log.Fatal(err)
	}
	defer sel.Close()
	rt := sel.RoundTripper() // follows the update: nothing to rebuild

	saw, err := exampleGet(rt, "https://api.example.com")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("before:", saw)

	// 1. Add the new certificate.
	newID, err := store.Add(ctx, exampleClientPEM(ca, "client-2026"))
	if err != nil {
		log.Fatal(err)
	}
	// 2. Point the policy at it. Update replaces the whole policy: repeat
	// what stays, RootCAs included.
	if err := sel.Update(mtls.Policy{
		Certificates: mtls.Map{"api.example.com": newID},
		RootCAs:      ca.Pool,
	}); err != nil {
		log.Fatal(err)
	}
	// 3. Delete the old one.
	if err := store.Delete(ctx, oldID); err != nil {
		log.Fatal(err)
	}

	saw, err = exampleGet(rt, "https://api.example.com")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("after: ", saw)
	// Output:
	// before: api.example.com saw CN=client-2025
	// after:  api.example.com saw CN=client-2026
}

// RoundTripper is the Transport of an httputil.ReverseProxy: one shared
// instance per Selector that picks the client certificate of every
// request's upstream host and follows policy and store changes.
func ExampleSelector_RoundTripper() {
	ctx := context.Background()
	ca, err := mtlstest.NewCA("example CA")
	if err != nil {
		log.Fatal(err)
	}
	upstream, base := startExampleUpstream(ca)
	defer upstream.Close()

	store := mtls.NewMemoryStore([]byte("a secret from your vault"))
	id, err := store.Add(ctx, exampleClientPEM(ca, "proxy-client"))
	if err != nil {
		log.Fatal(err)
	}
	sel, err := mtls.New(store, mtls.Policy{
		Certificates: mtls.Map{"*.example.com": id},
		RootCAs:      ca.Pool,
	}, mtls.WithBaseTransport(base))
	if err != nil {
		log.Fatal(err)
	}
	defer sel.Close()

	target, err := url.Parse("https://inventory.example.com")
	if err != nil {
		log.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target) // the host the certificate is chosen for
			pr.SetXForwarded()
		},
		Transport: sel.RoundTripper(),
	}
	front := httptest.NewServer(proxy) // plain HTTP on loopback
	defer front.Close()

	saw, err := exampleGet(http.DefaultTransport, front.URL+"/stock")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(saw)
	// Output:
	// inventory.example.com saw CN=proxy-client
}
