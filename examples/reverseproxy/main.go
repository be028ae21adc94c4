// Command reverseproxy shows an httputil.ReverseProxy whose upstream TLS an
// mtls.Selector chooses host by host: which client certificate each
// upstream gets, which upstream keys are pinned, and what fails closed.
//
// It needs no setup. A throw-away CA (package mtlstest) issues three client
// certificates, which go into a MemoryStore, and the server certificates of
// three upstreams on loopback (mtlstest.StartUpstream), which require a
// client certificate and record the one they saw. The policy is written by
// host name: "localhost" and "127.0.0.1" are two names of one machine, and
// get different certificates and pins even on the same port.
//
//	/billing  -> https://localhost:PORT1  the certificate of "localhost"
//	/orders   -> https://127.0.0.1:PORT1  the same upstream by another name: the certificate of "127.0.0.1"
//	/payments -> https://localhost:PORT2  pinned to that upstream's key: accepted
//	/ledger   -> https://127.0.0.1:PORT2  pinned to another key: refused (mtls.ErrPinMismatch)
//	/legacy   -> https://127.0.0.1:PORT3  the certificate of "127.0.0.1:PORT3", which beats "127.0.0.1";
//	                                      after store.Delete of that certificate, fails closed
//	                                      (mtls.ErrNotFound) without opening a connection
//
// It sends one request through the proxy to each route, prints one line per
// request saying what the upstream was presented and what happened, checks
// each outcome, and exits. With -serve it then keeps the proxy running, and
// prints curl commands to try, until interrupted.
//
//	go run ./examples/reverseproxy
//	go run ./examples/reverseproxy -serve
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
)

func main() {
	serveFlag := flag.Bool("serve", false, "keep the proxy running after the tour, until interrupted, and print curl commands to try")
	flag.Parse()
	var err error
	if *serveFlag {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err = serve(ctx, os.Stdout)
	} else {
		err = run(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "reverseproxy:", err)
		os.Exit(1)
	}
}

// run starts the proxy and its upstreams, sends the tour's requests, prints
// what happened and stops everything. It returns an error if an outcome is
// not the expected one.
func run(w io.Writer) error {
	return demo(context.Background(), w, false)
}

// serve is run that keeps the proxy running after the tour, until ctx is
// done, and prints curl commands to try.
func serve(ctx context.Context, w io.Writer) error {
	return demo(ctx, w, true)
}

// errorHeader is the header in which the proxy names the error of package
// mtls that a failed request wraps.
const errorHeader = "X-Proxy-Error"

// route is where one path of the proxy goes.
type route struct {
	target   *url.URL
	upstream *mtlstest.Upstream
}

// step is one request of the tour and the outcome it must have.
type step struct {
	path    string
	wantCN  string // the client certificate the upstream must see; "" for none
	wantErr error  // the error the proxy must report; nil for 200 OK
}

// demo is run, and serve when keepServing is set.
func demo(ctx context.Context, w io.Writer, keepServing bool) error {
	// 1. A throw-away CA; three upstreams on loopback, each requiring a
	// client certificate issued by the CA.
	ca, err := mtlstest.NewCA("reverseproxy example CA")
	if err != nil {
		return err
	}
	var ups [3]*mtlstest.Upstream
	for i := range ups {
		if ups[i], err = mtlstest.StartUpstream(ca, nil); err != nil {
			return err
		}
		defer ups[i].Close()
	}
	api, pay, old := ups[0], ups[1], ups[2]

	// 2. The proxy's client certificates, in a store that keeps their
	// private keys encrypted.
	store := mtls.NewMemoryStore([]byte("reverseproxy example secret"))
	ids := map[string]string{} // common name -> store ID
	for _, cn := range []string{"billing-client", "orders-client", "legacy-client"} {
		leaf, err := ca.Issue(mtlstest.Options{CommonName: cn})
		if err != nil {
			return err
		}
		if ids[cn], err = store.Add(ctx, leaf.PEM()); err != nil {
			return fmt.Errorf("store %s: %w", cn, err)
		}
	}

	// 3. The policy, by host name. A pattern without a port matches every
	// port; an exact host with a port beats it.
	policy := mtls.Policy{
		Certificates: mtls.Map{
			"localhost": ids["billing-client"],
			"127.0.0.1": ids["orders-client"],
			old.Host:    ids["legacy-client"], // 127.0.0.1:PORT3
		},
		PinnedPublicKeys: mtls.Map{
			"localhost:" + pay.Port: pay.Leaf.Pin(), // the key that upstream has
			"127.0.0.1:" + pay.Port: api.Leaf.Pin(), // another upstream's key: refused
		},
		RootCAs: ca.Pool, // verifies the upstreams; nil: the system roots
	}
	sel, err := mtls.New(store, policy)
	if err != nil {
		return err
	}
	defer sel.Close()

	// 4. The reverse proxy. The Selector's RoundTripper resolves the host of
	// every request again, so it follows store changes without a restart.
	routes := map[string]*route{}
	for _, r := range []struct {
		path, name string
		up         *mtlstest.Upstream
	}{
		{"/billing", "localhost", api},
		{"/orders", "127.0.0.1", api},
		{"/payments", "localhost", pay},
		{"/ledger", "127.0.0.1", pay},
		{"/legacy", "127.0.0.1", old},
	} {
		target := &url.URL{Scheme: "https", Host: r.name + ":" + r.up.Port}
		routes[r.path] = &route{target: target, upstream: r.up}
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(routes[pr.In.URL.Path].target)
		},
		Transport: sel.RoundTripper(),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// errors.Is tells why a request failed. A production proxy would
			// log err and answer with less.
			w.Header().Set(errorHeader, errorName(err))
			http.Error(w, err.Error(), http.StatusBadGateway)
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
	fmt.Fprintf(w, "proxy %s; upstreams on ports %s (/billing, /orders), %s (/payments, /ledger), %s (/legacy)\n",
		front.URL, api.Port, pay.Port, old.Port)

	// 5. The tour: one request per route, one line each.
	t := &tour{w: w, front: front.URL, routes: routes}
	if t.certs, err = mtls.NewResolver(nil, policy.Certificates); err != nil {
		return err
	}
	if t.pins, err = mtls.NewResolver(nil, policy.PinnedPublicKeys); err != nil {
		return err
	}
	defer t.client.CloseIdleConnections()
	for _, s := range []step{
		{"/billing", "billing-client", nil},
		{"/orders", "orders-client", nil},
		{"/payments", "billing-client", nil},
		{"/ledger", "", mtls.ErrPinMismatch},
		{"/legacy", "legacy-client", nil},
	} {
		if err := t.try(s); err != nil {
			return err
		}
	}
	// A mapped certificate deleted from the store: its host fails closed.
	if err := store.Delete(ctx, ids["legacy-client"]); err != nil {
		return err
	}
	fmt.Fprintf(w, "store.Delete(legacy-client), the certificate of Certificates[%q]\n", old.Host)
	if err := t.try(step{"/legacy", "", mtls.ErrNotFound}); err != nil {
		return err
	}

	if !keepServing {
		return nil
	}
	fmt.Fprintf(w, "\nThe proxy keeps running; try (the response headers %s and %s say what happened):\n",
		mtlstest.ClientCertHeader, errorHeader)
	for _, p := range []string{"/billing", "/orders", "/payments", "/ledger", "/legacy"} {
		fmt.Fprintf(w, "  curl -i %s%s\n", front.URL, p)
	}
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
	<-ctx.Done()
	return nil
}

// tour sends requests through the proxy and says what the upstreams saw.
type tour struct {
	w      io.Writer
	front  string
	routes map[string]*route
	certs  *mtls.Resolver // the policy's maps, to say which pattern applied
	pins   *mtls.Resolver
	client http.Client
}

// try sends one request through the proxy, prints one line saying what the
// upstream was presented and what happened, and checks it against s. Every
// word of the line comes from what the upstream recorded, the response,
// or the policy's patterns.
func (t *tour) try(s step) error {
	r := t.routes[s.path]
	seen, conns := len(r.upstream.Seen()), r.upstream.Conns()
	resp, err := t.client.Get(t.front + s.path)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	got := r.upstream.Seen()[seen:] // what the upstream recorded of this request
	newConn := r.upstream.Conns() > conns

	cn, presented := "", "nothing"
	if len(got) > 0 {
		cn = got[0].CommonName
		presented = cn
		if m, ok := t.certs.Match(r.target.Host); ok {
			presented += fmt.Sprintf(" (Certificates[%q])", m.Pattern)
		}
	}
	what := resp.Status
	if name := resp.Header.Get(errorHeader); name != "" {
		what += " (" + name + ")"
	}
	var notes []string
	if pin, ok := t.pins.Match(r.target.Host); ok {
		switch {
		case resp.StatusCode == http.StatusOK:
			notes = append(notes, fmt.Sprintf("upstream key matches PinnedPublicKeys[%q]", pin.Pattern))
		case resp.Header.Get(errorHeader) == errorName(mtls.ErrPinMismatch):
			notes = append(notes, fmt.Sprintf("upstream key not in PinnedPublicKeys[%q]", pin.Pattern))
		}
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case !newConn:
		notes = append(notes, "failed closed, no connection made")
	case len(got) == 0:
		notes = append(notes, "handshake aborted")
	}
	if len(notes) > 0 {
		what += ": " + strings.Join(notes, ", ")
	}
	fmt.Fprintf(t.w, "%-9s  %-23s  presented %-47s  %s\n", s.path, r.target, presented, what)

	// Check the outcome.
	wantName := ""
	if s.wantErr != nil {
		wantName = errorName(s.wantErr)
	}
	switch {
	case cn != s.wantCN:
		return fmt.Errorf("%s: the upstream saw %q, want %q", s.path, cn, s.wantCN)
	case s.wantErr == nil && resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s: %s: %s", s.path, resp.Status, body)
	case s.wantErr == nil && resp.Header.Get(mtlstest.ClientCertHeader) != got[0].ID:
		return fmt.Errorf("%s: the response names certificate %q", s.path, resp.Header.Get(mtlstest.ClientCertHeader))
	case s.wantErr != nil && (resp.StatusCode != http.StatusBadGateway || resp.Header.Get(errorHeader) != wantName):
		return fmt.Errorf("%s: %s, %s: %s; want 502 Bad Gateway, %s", s.path, resp.Status,
			resp.Header.Get(errorHeader), body, wantName)
	case errors.Is(s.wantErr, mtls.ErrNotFound) && newConn:
		return fmt.Errorf("%s: failed, but after opening a connection", s.path)
	}
	return nil
}

// errorName names the error of package mtls that err wraps.
func errorName(err error) string {
	for _, e := range []struct {
		err  error
		name string
	}{
		{mtls.ErrPinMismatch, "mtls.ErrPinMismatch"},
		{mtls.ErrNotFound, "mtls.ErrNotFound"},
		{mtls.ErrExpired, "mtls.ErrExpired"},
		{mtls.ErrNoPrivateKey, "mtls.ErrNoPrivateKey"},
		{mtls.ErrClosed, "mtls.ErrClosed"},
	} {
		if errors.Is(err, e.err) {
			return e.name
		}
	}
	return "other"
}
