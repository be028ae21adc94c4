package mtls_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
)

// A Server presents the certificate of each SNI and accepts only the
// client certificates its policy allows: here, those issued by the clients'
// CA and listed by ID.
func ExampleNewServer() {
	ctx := context.Background()
	ca, err := mtlstest.NewCA("example CA")
	if err != nil {
		log.Fatal(err)
	}
	serverLeaf, _ := ca.Issue(mtlstest.Options{CommonName: "api", DNSNames: []string{"api.example.com"}})
	alice, _ := ca.Issue(mtlstest.Options{CommonName: "alice"})
	mallory, _ := ca.Issue(mtlstest.Options{CommonName: "mallory"})

	store := mtls.NewMemoryStore([]byte("a secret from your vault"))
	serverID, _ := store.Add(ctx, serverLeaf.PEM())
	aliceID, _ := store.Add(ctx, alice.CertPEM) // a client is listed by its ID; no key needed
	srv, err := mtls.NewServer(store, mtls.ServerPolicy{
		Certificates:   mtls.Map{"api.example.com": serverID},
		ClientCAs:      ca.Pool,
		AllowedClients: []string{aliceID},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	ts := httptest.NewUnstartedServer(srv.Middleware("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client, _ := mtls.VerifiedClient(r)
		fmt.Fprintf(w, "hello %s", client.CommonName)
	})))
	ts.TLS = srv.TLSConfig()
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	defer ts.Close()

	for _, c := range []*mtlstest.Leaf{alice, mallory} {
		fmt.Println(c.Cert.Subject.CommonName+":", exampleCall(ts.URL, "api.example.com", ca, c))
	}
	// Output:
	// alice: hello alice
	// mallory: refused
}

// The middleware checks each API's own allowlist at the HTTP level, where
// several APIs share a domain and TLS cannot tell them apart: the handshake
// asks for a certificate, and a request whose certificate the API does not
// allow gets 403.
func ExampleServer_Middleware() {
	ctx := context.Background()
	ca, _ := mtlstest.NewCA("example CA")
	serverLeaf, _ := ca.Issue(mtlstest.Options{CommonName: "gw", DNSNames: []string{"gw.example.com"}})
	billing, _ := ca.Issue(mtlstest.Options{CommonName: "billing-client"})
	store := mtls.NewMemoryStore([]byte("a secret from your vault"))
	serverID, _ := store.Add(ctx, serverLeaf.PEM())
	billingID, _ := store.Add(ctx, billing.CertPEM)

	srv, err := mtls.NewServer(store, mtls.ServerPolicy{
		Certificates: mtls.Map{"*": serverID},
		APIs: []mtls.APIPolicy{
			{Name: "billing", Domain: "gw.example.com", MutualTLS: true, AllowedClients: []string{billingID}},
			{Name: "reports", Domain: "gw.example.com", MutualTLS: true, ClientCAs: ca.Pool,
				Authorize: mtls.AuthorizeCommonName("reports-client")},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux := http.NewServeMux()
	mux.Handle("/billing/", srv.Middleware("billing", ok))
	mux.Handle("/reports/", srv.Middleware("reports", ok))
	ts := httptest.NewUnstartedServer(mux)
	ts.TLS = srv.TLSConfig()
	ts.StartTLS()
	defer ts.Close()

	for _, path := range []string{"/billing/", "/reports/"} {
		fmt.Println(path, exampleCall(ts.URL+path, "gw.example.com", ca, billing))
	}
	// Output:
	// /billing/ ok
	// /reports/ 403 Forbidden
}

// exampleCall sends a GET to url with the SNI and Host name, presenting
// client, and returns the body, the status of a refusal, or "refused" when
// the handshake failed.
func exampleCall(url, name string, ca *mtlstest.CA, client *mtlstest.Leaf) string {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: name,
		Certificates: []tls.Certificate{client.TLS}}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Host = name
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return "refused"
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.Status
	}
	return strings.TrimSpace(string(body))
}
