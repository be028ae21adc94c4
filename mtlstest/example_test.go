package mtlstest_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
)

// must stands in for the error checks of an example; in a test, use
// mtlstest.MustCA(t, ...), ca.MustIssue(t, ...) and mtlstest.NewUpstream(t,
// ca), which fail t and close the upstream when the test ends.
func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}

// A test of a proxy's upstream mTLS: a throw-away CA issues the proxy's
// client certificate and the upstream's server certificate; the upstream
// requires a client certificate and records the one each request presented.
// Here the proxy's transport is a Selector of package mtls.
func Example() {
	ca := must(mtlstest.NewCA("test CA"))
	client := must(ca.Issue(mtlstest.Options{CommonName: "proxy-client"}))
	up := must(mtlstest.StartUpstream(ca, nil)) // in a test: mtlstest.NewUpstream(t, ca)
	defer up.Close()

	store := mtls.NewMemoryStore([]byte("test secret"))
	id := must(store.Add(context.Background(), client.PEM()))
	sel := must(mtls.New(store, mtls.Policy{Certificates: mtls.Map{up.Host: id}, RootCAs: up.Pool}))
	defer sel.Close()

	resp := must((&http.Client{Transport: sel.RoundTripper()}).Get(up.URL))
	resp.Body.Close()
	for _, c := range up.Seen() {
		fmt.Println(c.Subject, c.ID == client.ID())
	}
	// Output:
	// CN=proxy-client,O=mtlstest true
}
