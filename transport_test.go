package mtls

// Tests of semantics §3 (client certificates) and the precedence of §2/§4
// end to end: real TLS handshakes on loopback through the Selector's
// RoundTripper, TransportFor and TLSConfigFor.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// §3 "No shared mutable config": one host's certificate is never sent to
// another host, whatever the concurrency; a host no pattern matches gets
// none.
func TestOneHostsCertificateIsNeverSentToAnother(t *testing.T) {
	srvCA := newCA(t, "servers")
	caA, caB := newCA(t, "clients A"), newCA(t, "clients B")
	leafA, leafB := clientLeaf(t, caA, "client A"), clientLeaf(t, caB, "client B")
	store := newStore(t)
	idA, idB := add(t, store, leafA.PEM()), add(t, store, leafB.PEM())
	require.Equal(t, leafA.ID(), idA)
	require.Equal(t, leafB.ID(), idB)

	upA := tlsUpstream(t, serverLeaf(t, srvCA, "A"), caA)
	upB := tlsUpstream(t, serverLeaf(t, srvCA, "B"), caB)
	// C asks for a certificate but does not require one: it records whether
	// one came.
	upC := startUpstream(t, upstreamConfig{cert: serverLeaf(t, srvCA, "C").TLS, clientAuth: tls.RequestClientCert})

	sel := newSelector(t, store, Policy{
		Certificates: Map{upA.Host: idA, upB.Host: idB},
		RootCAs:      srvCA.Pool,
	})
	rt := sel.RoundTripper()
	require.Same(t, rt, sel.RoundTripper(), "RoundTripper returns one shared instance")

	targets := []struct {
		u    *upstream
		want string
	}{{upA, idA}, {upB, idB}, {upC, "none"}}

	const n = 500
	start := make(chan struct{})
	sem := make(chan struct{}, 128)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			sem <- struct{}{}
			defer func() { <-sem }()
			tg := targets[i%len(targets)]
			r, err := get(rt, tg.u.URLPath(fmt.Sprintf("/%d", i)))
			switch {
			case err != nil:
				errs <- fmt.Errorf("request %d to %s: %w", i, tg.u.Host, err)
			case r.status != http.StatusOK:
				errs <- fmt.Errorf("request %d to %s: status %d", i, tg.u.Host, r.status)
			case r.certID != tg.want:
				errs <- fmt.Errorf("request %d to %s: upstream saw certificate %s, want %s", i, tg.u.Host, r.certID, tg.want)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	var failures []string
	for err := range errs {
		failures = append(failures, err.Error())
	}
	require.Empty(t, failures, "%d of %d requests failed", len(failures), n)

	for _, tg := range targets {
		seen := tg.u.presented()
		require.NotEmpty(t, seen, "%s saw no handshake", tg.u.Host)
		for _, id := range seen {
			require.Equal(t, tg.want, id, "%s was offered another host's certificate (or none)", tg.u.Host)
		}
	}
	for i, tg := range targets {
		want := 0
		for j := range n {
			if j%len(targets) == i {
				want++
			}
		}
		require.EqualValues(t, want, tg.u.requests.Load(), "requests that reached %s", tg.u.Host)
	}
}

// §3: connections are pooled per TLS identity: sequential requests to one
// host reuse one connection.
func TestSequentialRequestsReuseTheirConnection(t *testing.T) {
	srvCA, cliCA := newCA(t, "servers"), newCA(t, "clients")
	leaf := clientLeaf(t, cliCA, "client")
	store := newStore(t)
	id := add(t, store, leaf.PEM())
	up := tlsUpstream(t, serverLeaf(t, srvCA, "up"), cliCA)
	sel := newSelector(t, store, Policy{Certificates: Map{up.Host: id}, RootCAs: srvCA.Pool})

	first := mustGet(t, sel.RoundTripper(), up.URL)
	for range 20 {
		r := mustGet(t, sel.RoundTripper(), up.URL)
		require.Equal(t, id, r.certID)
		require.Equal(t, first.conn, r.conn, "a sequential request opened a new connection")
	}
	require.Equal(t, 1, up.newConns())
	require.Len(t, up.presented(), 1, "one handshake for 21 sequential requests")
}

// §3 "Fail closed": a mapping whose certificate goes missing, expires or
// loses its private key after the policy was set fails the request with an
// error naming the host and the value, before any connection is made.
// (When the policy is set, New refuses such values: TestFailFast.)
func TestFailClosedBeforeAnyConnection(t *testing.T) {
	srvCA, cliCA := newCA(t, "servers"), newCA(t, "clients")
	good := clientLeaf(t, cliCA, "good")
	expired := expiredLeaf(t, cliCA, "expired")
	notYet := issue(t, cliCA, mtlstest.Options{CommonName: "not yet valid",
		NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(48 * time.Hour)})
	dir := t.TempDir()
	store := newStore(t)

	cases := []struct {
		name  string
		value func(t *testing.T) (value string, breakIt func())
		want  error
	}{
		{"store ID deleted", func(t *testing.T) (string, func()) {
			id := add(t, store, good.PEM())
			return id, func() { del(t, store, id) }
		}, ErrNotFound},
		{"store ID behind an organisation prefix deleted", func(t *testing.T) (string, func()) {
			id := add(t, store, good.PEM())
			return "org1" + id, func() { del(t, store, id) }
		}, ErrNotFound},
		{"file removed", func(t *testing.T) (string, func()) {
			path := writeFile(t, dir, t.Name()[len("TestFailClosedBeforeAnyConnection/"):]+".pem", good.PEM())
			return path, func() { require.NoError(t, os.Remove(path)) }
		}, ErrNotFound},
		{"file replaced by an expired certificate", func(t *testing.T) (string, func()) {
			path := writeFile(t, dir, "expired.pem", good.PEM())
			return path, func() { replaceFile(t, path, expired.PEM()) }
		}, ErrExpired},
		{"file replaced by a certificate not yet valid", func(t *testing.T) (string, func()) {
			path := writeFile(t, dir, "notyet.pem", good.PEM())
			return path, func() { replaceFile(t, path, notYet.PEM()) }
		}, ErrExpired},
		{"file replaced by a certificate without key", func(t *testing.T) (string, func()) {
			path := writeFile(t, dir, "nokey.pem", good.PEM())
			return path, func() { replaceFile(t, path, good.CertPEM) }
		}, ErrNoPrivateKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up := tlsUpstream(t, serverLeaf(t, srvCA, "up"), cliCA)
			value, breakIt := c.value(t)
			sel := newSelector(t, store, Policy{Certificates: Map{up.Host: value}, RootCAs: srvCA.Pool})
			breakIt()
			for _, rt := range []http.RoundTripper{sel.RoundTripper(), sel.RoundTripper()} {
				_, err := get(rt, up.URL)
				require.Error(t, err, "the request went ahead without a usable certificate")
				require.ErrorIs(t, err, c.want)
				require.Contains(t, err.Error(), up.Host, "the error names the host")
				requireNamesValue(t, err, value, false)
			}
			_, err := sel.TransportFor(up.Host)
			require.ErrorIs(t, err, c.want, "TransportFor fails closed too")
			_, err = sel.TLSConfigFor(up.Host)
			require.ErrorIs(t, err, c.want, "TLSConfigFor fails closed too")
			requireNoConnection(t, up)
		})
	}
}

// requireNamesValue checks that err names value: inline PEM by its SHA-256,
// never by its text; anything else as written.
func requireNamesValue(t testing.TB, err error, value string, inline bool) {
	t.Helper()
	msg := err.Error()
	if !inline {
		require.Contains(t, msg, value, "the error names the value")
		return
	}
	if !strings.Contains(msg, Fingerprint([]byte(value))) && !strings.Contains(msg, Fingerprint([]byte(strings.TrimSpace(value)))) {
		t.Fatalf("inline PEM is not named by its SHA-256 %s: %s", Fingerprint([]byte(value)), msg)
	}
	require.NotContains(t, msg, "-----BEGIN", "inline PEM text reached an error")
	for _, line := range strings.Split(value, "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") {
			require.NotContains(t, msg, line, "inline PEM text reached an error")
		}
	}
}

// §3: "Every request is resolved again, from memory: one whose certificate
// is gone fails closed even when a pooled connection exists."
func TestFailClosedEvenWithAPooledConnection(t *testing.T) {
	srvCA, cliCA := newCA(t, "servers"), newCA(t, "clients")
	leaf := clientLeaf(t, cliCA, "client")

	type setup struct {
		value  string
		remove func(t *testing.T)
		want   error
	}
	cases := map[string]func(t *testing.T) (CertStore, setup){
		"deleted from a notifying store": func(t *testing.T) (CertStore, setup) {
			s := newStore(t)
			id := add(t, s, leaf.PEM())
			return s, setup{id, func(t *testing.T) { del(t, s, id) }, ErrNotFound}
		},
		"deleted from a store without notifications": func(t *testing.T) (CertStore, setup) {
			s := newStore(t)
			id := add(t, s, leaf.PEM())
			return silentStore{s}, setup{id, func(t *testing.T) { del(t, s, id) }, ErrNotFound}
		},
		"file removed": func(t *testing.T) (CertStore, setup) {
			path := writeFile(t, t.TempDir(), "client.pem", leaf.PEM())
			return nil, setup{path, func(t *testing.T) { require.NoError(t, os.Remove(path)) }, ErrNotFound}
		},
		"file replaced by an expired certificate": func(t *testing.T) (CertStore, setup) {
			path := writeFile(t, t.TempDir(), "client.pem", leaf.PEM())
			exp := expiredLeaf(t, cliCA, "expired")
			return nil, setup{path, func(t *testing.T) { replaceFile(t, path, exp.PEM()) }, ErrExpired}
		},
		"file replaced by a certificate without key": func(t *testing.T) (CertStore, setup) {
			path := writeFile(t, t.TempDir(), "client.pem", leaf.PEM())
			return nil, setup{path, func(t *testing.T) { replaceFile(t, path, leaf.CertPEM) }, ErrNoPrivateKey}
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			store, c := mk(t)
			up := tlsUpstream(t, serverLeaf(t, srvCA, "up"), cliCA)
			sel := newSelector(t, store, Policy{Certificates: Map{up.Host: c.value}, RootCAs: srvCA.Pool})
			r := mustGet(t, sel.RoundTripper(), up.URL)
			require.Equal(t, leaf.ID(), r.certID)
			require.EqualValues(t, 1, up.requests.Load())

			c.remove(t)
			for range 3 {
				_, err := get(sel.RoundTripper(), up.URL)
				require.ErrorIs(t, err, c.want, "the request used the pooled connection of a certificate that is gone")
				require.Contains(t, err.Error(), up.Host)
				require.Contains(t, err.Error(), c.value)
			}
			require.EqualValues(t, 1, up.requests.Load(), "the upstream saw a request after the certificate went")
			require.Equal(t, 1, up.newConns(), "a connection was opened after the certificate went")
		})
	}
}

// §3: "The chosen certificate is always offered through
// GetClientCertificate, which never filters by the request info": it is
// sent even when the server's acceptable CAs do not include its issuer.
func TestCertificateSentWhenServerNamesOtherCAs(t *testing.T) {
	srvCA, cliCA, otherCA := newCA(t, "servers"), newCA(t, "clients"), newCA(t, "some other CA")
	leaf := clientLeaf(t, cliCA, "client")
	store := newStore(t)
	id := add(t, store, leaf.PEM())
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			up := startUpstream(t, upstreamConfig{
				cert:          serverLeaf(t, srvCA, "up").TLS,
				clientAuth:    tls.RequireAnyClientCert,
				acceptableCAs: otherCA.Pool, // named in the CertificateRequest
				maxVersion:    v,
			})
			sel := newSelector(t, store, Policy{Certificates: Map{up.Host: id}, RootCAs: srvCA.Pool})
			r := mustGet(t, sel.RoundTripper(), up.URL)
			require.Equal(t, id, r.certID)
			require.Equal(t, []string{id}, up.presented())
		})
	}
}

// §3: "http:// requests pass through a plain transport untouched".
func TestPlainHTTPPassesThroughUntouched(t *testing.T) {
	cliCA := newCA(t, "clients")
	leaf := clientLeaf(t, cliCA, "client")
	var got atomic.Pointer[http.Request]
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r)
		io.WriteString(w, "plain "+r.Header.Get("X-Test"))
	}))
	t.Cleanup(plain.Close)
	// A mapping that fails closed and a pin that fails every TLS upstream:
	// neither is about plain HTTP.
	path := writeFile(t, t.TempDir(), "client.pem", leaf.PEM())
	sel := newSelector(t, nil, Policy{
		Certificates:     Map{"*": path},
		PinnedPublicKeys: Map{"*": pinFor(leaf.Cert)},
	})
	require.NoError(t, os.Remove(path))
	req, err := http.NewRequest(http.MethodPost, plain.URL+"/p?q=1", strings.NewReader("body"))
	require.NoError(t, err)
	req.Header.Set("X-Test", "kept")
	resp, err := (&http.Client{Transport: sel.RoundTripper()}).Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "plain kept", string(body))
	r := got.Load()
	require.NotNil(t, r)
	require.Nil(t, r.TLS)
	require.Equal(t, "/p", r.URL.Path)
	require.Equal(t, "q=1", r.URL.RawQuery)
	require.Equal(t, http.MethodPost, r.Method)
}

// §3: "TransportFor(h) returns the same transport for the same normalised
// host while its identity holds, and that transport refuses requests for
// other hosts".
func TestTransportForIsPerNormalisedHostAndRefusesOthers(t *testing.T) {
	srvCA, cliCA := newCA(t, "servers"), newCA(t, "clients")
	leaf1, leaf2 := clientLeaf(t, cliCA, "one"), clientLeaf(t, cliCA, "two")
	store := newStore(t)
	id1, id2 := add(t, store, leaf1.PEM()), add(t, store, leaf2.PEM())
	up := tlsUpstream(t, serverLeaf(t, srvCA, "up"), cliCA)
	other := tlsUpstream(t, serverLeaf(t, srvCA, "other"), cliCA)
	sel := newSelector(t, store, Policy{
		Certificates: Map{"localhost": id1, up.Host: id1, other.Host: id1},
		RootCAs:      srvCA.Pool,
	})

	a, err := sel.TransportFor("Localhost:443")
	require.NoError(t, err)
	for _, h := range []string{"localhost", "LOCALHOST.", "localhost:443"} {
		b, err := sel.TransportFor(h)
		require.NoError(t, err)
		require.Same(t, a, b, "TransportFor(%q)", h)
	}
	c, err := sel.TransportFor("localhost:8443")
	require.NoError(t, err)
	require.NotSame(t, a, c, "another port is another host")

	tr, err := sel.TransportFor(up.Host)
	require.NoError(t, err)
	require.Equal(t, id1, mustGet(t, tr, up.URL).certID)

	// The transport of up refuses other's requests: nothing reaches other.
	_, err = get(tr, other.URL)
	require.Error(t, err)
	require.Contains(t, err.Error(), other.Host)
	requireNoConnection(t, other)

	// After up's identity changes, up's old transport refuses with a clear
	// error; a new one works and presents the new certificate.
	require.NoError(t, sel.Update(Policy{Certificates: Map{up.Host: id2, other.Host: id1}, RootCAs: srvCA.Pool}))
	before := up.requests.Load()
	_, err = get(tr, up.URL)
	require.Error(t, err, "a transport of an old identity was used")
	require.Contains(t, err.Error(), "changed")
	require.Contains(t, err.Error(), up.Host)
	require.Equal(t, before, up.requests.Load())
	tr2, err := sel.TransportFor(up.Host)
	require.NoError(t, err)
	require.NotSame(t, tr, tr2)
	require.Equal(t, id2, mustGet(t, tr2, up.URL).certID)
}

// §3: GetClientCertificate "accept[s] a nil context too".
func TestGetClientCertificateAcceptsNilRequestInfo(t *testing.T) {
	cliCA := newCA(t, "clients")
	leaf := clientLeaf(t, cliCA, "client")
	store := newStore(t)
	id := add(t, store, leaf.PEM())
	sel := newSelector(t, store, Policy{Certificates: Map{"api.example.com": id}})

	cfg, err := sel.TLSConfigFor("api.example.com")
	require.NoError(t, err)
	require.NotNil(t, cfg.GetClientCertificate)
	require.Empty(t, cfg.Certificates, "certificates go through GetClientCertificate only")
	var cert *tls.Certificate
	require.NotPanics(t, func() { cert, err = cfg.GetClientCertificate(nil) })
	require.NoError(t, err)
	require.NotNil(t, cert)
	require.NotEmpty(t, cert.Certificate)
	require.Equal(t, leaf.Cert.Raw, cert.Certificate[0])
	require.NotNil(t, cert.PrivateKey)

	// A host no pattern matches: an empty certificate, not an error.
	cfg, err = sel.TLSConfigFor("other.example.com")
	require.NoError(t, err)
	require.NotPanics(t, func() { cert, err = cfg.GetClientCertificate(nil) })
	require.NoError(t, err)
	require.NotNil(t, cert)
	require.Empty(t, cert.Certificate)
}

// §2 precedence and §4 roots end to end: an API level's specific pattern,
// then its '*', then the gateway's specific, then the gateway's '*'; an
// API's nil RootCAs inherits the gateway's; the system pool only when both
// are nil.
func TestPrecedenceAPIOverGatewayEndToEnd(t *testing.T) {
	srvCA, cliCA := newCA(t, "servers"), newCA(t, "clients")
	leaves := map[string]*mtlstest.Leaf{}
	store := newStore(t)
	ids := map[string]string{}
	for _, n := range []string{"gw default", "gw specific", "api specific", "api default"} {
		leaves[n] = clientLeaf(t, cliCA, n)
		ids[n] = add(t, store, leaves[n].PEM())
	}
	up1 := tlsUpstream(t, serverLeaf(t, srvCA, "one"), cliCA)
	up2 := tlsUpstream(t, serverLeaf(t, srvCA, "two"), cliCA)
	up3 := tlsUpstream(t, serverLeaf(t, srvCA, "three"), cliCA)

	gw := newSelector(t, store, Policy{
		Certificates: Map{"*": ids["gw default"], up1.Host: ids["gw specific"], up2.Host: ids["gw specific"]},
		RootCAs:      srvCA.Pool,
	})
	// API with a specific pattern only, nil RootCAs: inherits the gateway's.
	api := forAPI(t, gw, Policy{Certificates: Map{up1.Host: ids["api specific"]}})
	// API with a '*': it beats the gateway's specific patterns.
	apiDef := forAPI(t, gw, Policy{Certificates: Map{"*": ids["api default"], up1.Host: ids["api specific"]}})

	for _, c := range []struct {
		sel  *Selector
		u    *upstream
		want string
	}{
		{gw, up1, "gw specific"}, {gw, up2, "gw specific"}, {gw, up3, "gw default"},
		{api, up1, "api specific"}, {api, up2, "gw specific"}, {api, up3, "gw default"},
		{apiDef, up1, "api specific"}, {apiDef, up2, "api default"}, {apiDef, up3, "api default"},
	} {
		r, err := get(c.sel.RoundTripper(), c.u.URL)
		require.NoError(t, err)
		assert.Equal(t, ids[c.want], r.certID, "%s expected for %s", c.want, c.u.Host)
	}

	// An API's own RootCAs replaces the gateway's for that API.
	otherRoots := newCA(t, "unrelated").Pool
	apiRoots := forAPI(t, gw, Policy{RootCAs: otherRoots})
	_, err := get(apiRoots.RoundTripper(), up1.URL)
	requireUnknownAuthority(t, err)

	// Both nil: the system pool, which does not know the test CA.
	sys := newSelector(t, store, Policy{Certificates: Map{"*": ids["gw default"]}})
	_, err = get(sys.RoundTripper(), up1.URL)
	requireUnknownAuthority(t, err)
	_, err = get(forAPI(t, sys, Policy{}).RoundTripper(), up1.URL)
	requireUnknownAuthority(t, err)
	// ... unless the API gives roots.
	r, err := get(forAPI(t, sys, Policy{RootCAs: srvCA.Pool}).RoundTripper(), up1.URL)
	require.NoError(t, err)
	require.Equal(t, ids["gw default"], r.certID)

	// ForAPI is the gateway's alone.
	_, err = api.ForAPI(Policy{})
	require.Error(t, err)
}

// §4: InsecureSkipVerify "set at either, it holds for that API", and pins
// resolve with the same precedence as certificates.
func TestPrecedenceOfPinsAndInsecureSkipVerify(t *testing.T) {
	srvCA, untrusted := newCA(t, "servers"), newCA(t, "untrusted")
	good := serverLeaf(t, srvCA, "good")
	up := tlsUpstream(t, good, nil)
	rogue := tlsUpstream(t, serverLeaf(t, untrusted, "rogue"), nil)
	wrong := serverLeaf(t, srvCA, "not the server")

	gw := newSelector(t, nil, Policy{
		PinnedPublicKeys: Map{up.Host: pinFor(wrong.Cert)},
		RootCAs:          srvCA.Pool,
	})
	_, err := get(gw.RoundTripper(), up.URL)
	require.ErrorIs(t, err, ErrPinMismatch)

	// The API's '*' beats the gateway's specific pattern.
	api := forAPI(t, gw, Policy{PinnedPublicKeys: Map{"*": pinFor(good.Cert)}})
	mustGet(t, api.RoundTripper(), up.URL)
	// An API that says nothing of pins keeps the gateway's.
	plainAPI := forAPI(t, gw, Policy{})
	_, err = get(plainAPI.RoundTripper(), up.URL)
	require.ErrorIs(t, err, ErrPinMismatch)

	// InsecureSkipVerify at the API level holds for that API only.
	_, err = get(gw.RoundTripper(), rogue.URL)
	requireUnknownAuthority(t, err)
	insecureAPI := forAPI(t, gw, Policy{InsecureSkipVerify: true})
	mustGet(t, insecureAPI.RoundTripper(), rogue.URL)
	_, err = get(plainAPI.RoundTripper(), rogue.URL)
	requireUnknownAuthority(t, err)

	// At the gateway level it holds for every API, even one that says false.
	gw2 := newSelector(t, nil, Policy{InsecureSkipVerify: true, RootCAs: srvCA.Pool})
	mustGet(t, forAPI(t, gw2, Policy{InsecureSkipVerify: false}).RoundTripper(), rogue.URL)
}

// requireUnknownAuthority checks that err is a failed chain verification.
func requireUnknownAuthority(t testing.TB, err error) {
	t.Helper()
	require.Error(t, err, "an untrusted chain was accepted")
	var ua x509.UnknownAuthorityError
	var cve *tls.CertificateVerificationError
	require.True(t, errors.As(err, &ua) || errors.As(err, &cve), "not a chain verification error: %v", err)
	require.NotErrorIs(t, err, ErrPinMismatch)
}

// §6 options: the event hook sees the certificate chosen, pin mismatches
// and retired pools.
func TestEventHookSeesChosenMismatchAndRetired(t *testing.T) {
	srvCA, cliCA := newCA(t, "servers"), newCA(t, "clients")
	leaf1, leaf2 := clientLeaf(t, cliCA, "one"), clientLeaf(t, cliCA, "two")
	store := newStore(t)
	id1, id2 := add(t, store, leaf1.PEM()), add(t, store, leaf2.PEM())
	good := serverLeaf(t, srvCA, "up")
	up := tlsUpstream(t, good, cliCA)
	pinned := tlsUpstream(t, serverLeaf(t, srvCA, "pinned"), nil)
	wrong := serverLeaf(t, srvCA, "wrong")

	var log eventLog
	p := Policy{
		Certificates:     Map{up.Host: id1},
		PinnedPublicKeys: Map{pinned.Host: pinFor(wrong.Cert)},
		RootCAs:          srvCA.Pool,
	}
	sel := newSelector(t, store, p, WithEventHook(log.hook))

	mustGet(t, sel.RoundTripper(), up.URL)
	chosen := log.of(CertificateChosen, up.Host)
	require.NotEmpty(t, chosen, "no CertificateChosen for %s; events:\n%s", up.Host, &log)
	require.Equal(t, id1, chosen[0].CertificateID)

	// A host with no certificate, asked for one: the event has an empty ID.
	asks := startUpstream(t, upstreamConfig{cert: serverLeaf(t, srvCA, "asks").TLS, clientAuth: tls.RequestClientCert})
	require.Equal(t, "none", mustGet(t, sel.RoundTripper(), asks.URL).certID)
	none := log.of(CertificateChosen, asks.Host)
	require.NotEmpty(t, none, "events:\n%s", &log)
	require.Empty(t, none[0].CertificateID)

	_, err := get(sel.RoundTripper(), pinned.URL)
	require.ErrorIs(t, err, ErrPinMismatch)
	mm := log.of(PinMismatch, pinned.Host)
	require.NotEmpty(t, mm, "no PinMismatch for %s; events:\n%s", pinned.Host, &log)
	require.ErrorIs(t, mm[0].Err, ErrPinMismatch)
	require.Contains(t, mm[0].Err.Error(), pinFor(pinned.Certificate()))

	require.Empty(t, log.of(PoolRetired, up.Host))
	p.Certificates = Map{up.Host: id2}
	require.NoError(t, sel.Update(p))
	retired := log.of(PoolRetired, up.Host)
	require.NotEmpty(t, retired, "no PoolRetired for %s; events:\n%s", up.Host, &log)
	require.Equal(t, id1, retired[0].CertificateID)

	require.Equal(t, "certificate chosen", CertificateChosen.String())
	require.Equal(t, "pin mismatch", PinMismatch.String())
	require.Equal(t, "pool retired", PoolRetired.String())
}

// §6 options: the transport cache is bounded; past the bound the least
// recently used host's pool retires.
func TestMaxTransportsRetiresLeastRecentlyUsed(t *testing.T) {
	srvCA := newCA(t, "servers")
	ups := []*upstream{
		tlsUpstream(t, serverLeaf(t, srvCA, "1"), nil),
		tlsUpstream(t, serverLeaf(t, srvCA, "2"), nil),
		tlsUpstream(t, serverLeaf(t, srvCA, "3"), nil),
	}
	var log eventLog
	sel := newSelector(t, nil, Policy{RootCAs: srvCA.Pool}, WithMaxTransports(2), WithEventHook(log.hook))
	r0 := mustGet(t, sel.RoundTripper(), ups[0].URL)
	mustGet(t, sel.RoundTripper(), ups[1].URL)
	mustGet(t, sel.RoundTripper(), ups[0].URL) // ups[1] is now the least recently used
	mustGet(t, sel.RoundTripper(), ups[2].URL)
	require.NotEmpty(t, log.of(PoolRetired, ups[1].Host), "events:\n%s", &log)
	require.Empty(t, log.of(PoolRetired, ups[0].Host), "events:\n%s", &log)
	require.Equal(t, r0.conn, mustGet(t, sel.RoundTripper(), ups[0].URL).conn)
}

// New rejects a base transport whose TLS config sets what the Policy owns.
func TestBaseTransportIsClonedAndChecked(t *testing.T) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	_, err := New(nil, Policy{}, WithBaseTransport(base))
	require.Error(t, err)

	srvCA := newCA(t, "servers")
	up := tlsUpstream(t, serverLeaf(t, srvCA, "up"), nil)
	base = http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = &tls.Config{MaxVersion: tls.VersionTLS12}
	var dialed atomic.Int64
	dial := base.DialContext
	base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed.Add(1)
		return dial(ctx, network, addr)
	}
	sel := newSelector(t, nil, Policy{RootCAs: srvCA.Pool}, WithBaseTransport(base))
	req, err := http.NewRequest(http.MethodGet, up.URL, nil)
	require.NoError(t, err)
	resp, err := sel.RoundTripper().RoundTrip(req)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.EqualValues(t, tls.VersionTLS12, resp.TLS.Version, "the base's TLS settings apply")
	require.EqualValues(t, 1, dialed.Load(), "the base's dialer applies")
}

// §3: "RoundTripper() returns one shared instance per Selector, which
// follows changes; prefer it under httputil.ReverseProxy."
func TestRoundTripperUnderReverseProxy(t *testing.T) {
	srvCA, cliCA := newCA(t, "servers"), newCA(t, "clients")
	leaf1, leaf2 := clientLeaf(t, cliCA, "one"), clientLeaf(t, cliCA, "two")
	store := newStore(t)
	id1, id2 := add(t, store, leaf1.PEM()), add(t, store, leaf2.PEM())
	up := tlsUpstream(t, serverLeaf(t, srvCA, "up"), cliCA)
	p := Policy{Certificates: Map{up.Host: id1}, RootCAs: srvCA.Pool}
	sel := newSelector(t, store, p)

	target, err := url.Parse(up.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = sel.RoundTripper()
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)

	fetch := func() (int, string) {
		resp, err := http.Get(front.URL + "/x")
		require.NoError(t, err)
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header.Get("X-Client-Cert")
	}
	code, id := fetch()
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, id1, id)

	p.Certificates = Map{up.Host: id2}
	require.NoError(t, sel.Update(p))
	code, id = fetch()
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, id2, id, "the proxy's transport did not follow Update")

	del(t, store, id2)
	before := up.requests.Load()
	code, _ = fetch()
	require.Equal(t, http.StatusBadGateway, code, "the proxy went ahead without the certificate")
	require.Equal(t, before, up.requests.Load())
}

// §3 with a held tls.Config: a certificate deleted from the store fails the
// config's next handshake; the upstream is never offered another one.
func TestTLSConfigForFailsClosedAfterDelete(t *testing.T) {
	srvCA, cliCA := newCA(t, "servers"), newCA(t, "clients")
	leaf := clientLeaf(t, cliCA, "client")
	store := newStore(t)
	id := add(t, store, leaf.PEM())
	up := tlsUpstream(t, serverLeaf(t, srvCA, "up"), cliCA)
	sel := newSelector(t, store, Policy{Certificates: Map{up.Host: id}, RootCAs: srvCA.Pool})
	cfg, err := sel.TLSConfigFor(up.Host)
	require.NoError(t, err)
	r, err := dialGet(up.Addr, cfg)
	require.NoError(t, err)
	require.Equal(t, id, r.certID)

	del(t, store, id)
	_, err = dialGet(up.Addr, cfg)
	require.ErrorIs(t, err, ErrNotFound)
	for _, seen := range up.presented() {
		require.Equal(t, id, seen, "the upstream was offered something else than the mapped certificate")
	}
	require.EqualValues(t, 1, up.requests.Load())
}

// A TLSConfigFor config is for clients other than net/http's: it names no
// application protocol, even when the base transport's config does (net/http
// adds "h2" to http.DefaultTransport's when it is first cloned or used).
func TestTLSConfigForHasNoNextProtos(t *testing.T) {
	srvCA := newCA(t, "servers")
	_ = http.DefaultTransport.(*http.Transport).Clone()
	withH2 := http.DefaultTransport.(*http.Transport).Clone()
	withH2.TLSClientConfig = &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
	for name, opts := range map[string][]Option{"default base": nil, "base with h2": {WithBaseTransport(withH2)}} {
		t.Run(name, func(t *testing.T) {
			sel := newSelector(t, newStore(t), Policy{RootCAs: srvCA.Pool}, opts...)
			cfg, err := sel.TLSConfigFor("api.example.test")
			require.NoError(t, err)
			assert.Empty(t, cfg.NextProtos)
		})
	}
}

// §3 fail closed when a certificate expires while its pool is warm: the
// next request fails with ErrExpired and reaches nothing.
func TestFailClosedWhenTheCertificateExpiresLater(t *testing.T) {
	srvCA, cliCA := newCA(t, "servers"), newCA(t, "clients")
	leaf := issue(t, cliCA, mtlstest.Options{CommonName: "short-lived", NotAfter: time.Now().Add(2 * time.Second)})
	store := newStore(t)
	id := add(t, store, leaf.PEM())
	up := tlsUpstream(t, serverLeaf(t, srvCA, "up"), cliCA)
	sel := newSelector(t, store, Policy{Certificates: Map{up.Host: id}, RootCAs: srvCA.Pool})
	require.Equal(t, id, mustGet(t, sel.RoundTripper(), up.URL).certID)

	// Wait (polling, with a deadline) until the certificate has expired.
	deadline := time.Now().Add(waitFor)
	for !time.Now().After(leaf.Cert.NotAfter) {
		require.False(t, time.Now().After(deadline), "the certificate never expired")
		time.Sleep(50 * time.Millisecond)
	}
	before := up.requests.Load()
	_, err := get(sel.RoundTripper(), up.URL)
	require.ErrorIs(t, err, ErrExpired)
	require.Contains(t, err.Error(), up.Host)
	require.Contains(t, err.Error(), id)
	require.Equal(t, before, up.requests.Load())
	require.Equal(t, 1, up.newConns())
}

// §1, §2 end to end with DNS names: patterns normalise (case, trailing
// dot), a pattern with a port beats one without, a pattern without a port
// matches any port, and an organisation-prefixed store ID names the ID.
func TestNameBasedHostsEndToEnd(t *testing.T) {
	srvCA, cliCA := newCA(t, "servers"), newCA(t, "clients")
	anyPort, thisPort := clientLeaf(t, cliCA, "any port"), clientLeaf(t, cliCA, "this port")
	store := newStore(t)
	idAny, idThis := add(t, store, anyPort.PEM()), add(t, store, thisPort.PEM())
	up1 := tlsUpstream(t, serverLeaf(t, srvCA, "one"), cliCA)
	up2 := tlsUpstream(t, serverLeaf(t, srvCA, "two"), cliCA)
	_, port1, err := net.SplitHostPort(up1.Host)
	require.NoError(t, err)
	_, port2, err := net.SplitHostPort(up2.Host)
	require.NoError(t, err)

	sel := newSelector(t, store, Policy{
		Certificates: Map{"LocalHost.": "acme7" + idAny, "localhost:" + port1: idThis},
		RootCAs:      srvCA.Pool,
	})
	r := mustGet(t, sel.RoundTripper(), "https://localhost:"+port1)
	require.Equal(t, idThis, r.certID, "a pattern with a port beats one without")
	r = mustGet(t, sel.RoundTripper(), "https://LOCALHOST:"+port2)
	require.Equal(t, idAny, r.certID, "a pattern without a port matches any port")
	// The same upstream by IP matches neither pattern: no certificate, and
	// the upstream refuses.
	_, err = get(sel.RoundTripper(), up2.URL)
	require.Error(t, err)
	for _, seen := range up2.presented() {
		require.Contains(t, []string{idAny, "none"}, seen)
	}
}

// §2 end to end with an IPv6 literal: the pattern "[0:0::1]:PORT" maps the
// host "[::1]:PORT".
func TestIPv6HostEndToEnd(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	srvCA, cliCA := newCA(t, "servers"), newCA(t, "clients")
	leaf := clientLeaf(t, cliCA, "client")
	store := newStore(t)
	id := add(t, store, leaf.PEM())
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			io.WriteString(w, Fingerprint(r.TLS.PeerCertificates[0].Raw))
		}
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = mtlstest.ServerConfig(serverLeaf(t, srvCA, "v6"), cliCA)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)

	sel := newSelector(t, store, Policy{Certificates: Map{"[0:0::1]:" + port: id}, RootCAs: srvCA.Pool})
	r := mustGet(t, sel.RoundTripper(), "https://[::1]:"+port)
	require.Equal(t, id, r.body)
	a, err := sel.TransportFor("[::1]:" + port)
	require.NoError(t, err)
	b, err := sel.TransportFor("[0:0:0::1]:" + port)
	require.NoError(t, err)
	require.Same(t, a, b)
}

// Close: "Requests through a closed selector fail" (its godoc), http://
// requests included, and closing an API selector leaves its gateway alone.
func TestCloseFailsEveryRequest(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(plain.Close)
	srvCA := newCA(t, "servers")
	up := tlsUpstream(t, serverLeaf(t, srvCA, "up"), nil)
	gw := newSelector(t, nil, Policy{RootCAs: srvCA.Pool})
	api, err := gw.ForAPI(Policy{})
	require.NoError(t, err)
	mustGet(t, api.RoundTripper(), up.URL)
	require.NoError(t, api.Close())
	_, err = get(api.RoundTripper(), up.URL)
	require.Error(t, err)
	mustGet(t, gw.RoundTripper(), up.URL)
	mustGet(t, gw.RoundTripper(), plain.URL)

	require.NoError(t, gw.Close())
	_, err = get(gw.RoundTripper(), up.URL)
	require.Error(t, err)
	_, err = get(gw.RoundTripper(), plain.URL)
	require.Error(t, err, "an http:// request went through a closed selector")
}

// §3: "Inline PEM is named in errors by its SHA-256, never by its text:
// keys must not reach logs", whatever is wrong with it and wherever it is
// used.
func TestInlinePEMNeverInErrors(t *testing.T) {
	cliCA := newCA(t, "clients")
	a, b := clientLeaf(t, cliCA, "a"), clientLeaf(t, cliCA, "b")
	mismatched := string(append(append([]byte{}, a.CertPEM...), b.KeyPEM...))
	keyOnly := string(a.KeyPEM)
	twoKeys := string(append(append(append([]byte{}, a.CertPEM...), a.KeyPEM...), b.KeyPEM...))
	garbled := strings.Replace(string(a.PEM()), "PRIVATE KEY-----\n", "PRIVATE KEY-----\n!!", 1)
	for name, v := range map[string]string{
		"key of another certificate": mismatched,
		"key alone":                  keyOnly,
		"two keys":                   twoKeys,
		"garbled key":                garbled,
	} {
		t.Run(name, func(t *testing.T) {
			list := pinFor(a.Cert) + ", " + v
			for _, c := range []struct {
				p     Policy
				value string // the Map value, which the error names
			}{
				{Policy{Certificates: Map{"api.example.com": v}}, v},
				{Policy{PinnedPublicKeys: Map{"api.example.com": v}}, v},
				{Policy{PinnedPublicKeys: Map{"api.example.com": list}}, list},
			} {
				sel, err := New(nil, c.p)
				if err == nil {
					// Not rejected when set: then the request must fail and
					// say the same.
					t.Cleanup(func() { sel.Close() })
					_, err = get(sel.RoundTripper(), "https://api.example.com")
				}
				require.Error(t, err)
				requireNamesValue(t, err, c.value, true)
				requireNamesValue(t, err, v, true) // no line of the PEM either
				require.NotContains(t, err.Error(), strings.TrimSpace(strings.Split(string(b.KeyPEM), "\n")[1]))
			}
		})
	}
}

// §6: "Close releases a selector's pools and subscriptions; the RoundTripper
// has CloseIdleConnections."
func TestCloseReleasesPoolsAndSubscriptions(t *testing.T) {
	srvCA := newCA(t, "servers")
	up := tlsUpstream(t, serverLeaf(t, srvCA, "up"), nil)
	store := &subscriptionStore{MemoryStore: NewMemoryStore([]byte("secret"))}
	sel, err := New(store, Policy{RootCAs: srvCA.Pool})
	require.NoError(t, err)
	require.EqualValues(t, 1, store.active.Load(), "New does not follow the store")

	first := mustGet(t, sel.RoundTripper(), up.URL)
	closer, ok := sel.RoundTripper().(interface{ CloseIdleConnections() })
	require.True(t, ok, "the RoundTripper has no CloseIdleConnections")
	closer.CloseIdleConnections()
	up.requireClosed(t, first.conn, "idle connection after CloseIdleConnections")

	second := mustGet(t, sel.RoundTripper(), up.URL)
	require.NotEqual(t, first.conn, second.conn)
	require.NoError(t, sel.Close())
	up.requireClosed(t, second.conn, "idle connection after Close")
	require.EqualValues(t, 0, store.active.Load(), "Close left the store subscription in place")
}

// subscriptionStore counts the Notify subscriptions in place.
type subscriptionStore struct {
	*MemoryStore
	active atomic.Int64
}

func (s *subscriptionStore) Notify(fn func(id string)) func() {
	s.active.Add(1)
	stop := s.MemoryStore.Notify(fn)
	var once sync.Once
	return func() { once.Do(func() { s.active.Add(-1); stop() }) }
}
