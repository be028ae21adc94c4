package redisstore

// Review 2, COVERAGE (these tests pass): the client-facing side of package
// mtls on a fleet store, which no other test of this module exercises
// (they drive Selectors only). Each node runs an mtls.Server whose API
// allows a client by store ID; the API shares its domain with another, so
// that the middleware alone decides (the HTTP level and its verdict cache).

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/require"
)

// review2Server serves srv on loopback: /api behind Middleware("api").
func review2Server(t *testing.T, srv *mtls.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/api", srv.Middleware("api", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})))
	hs := &http.Server{Handler: mux, TLSConfig: srv.TLSConfig(), ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: waitFor}
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// review2Get makes a new TLS connection (resuming from cache when it can)
// and one request; it returns the status ("tls" when the connection
// failed) and whether the session was resumed.
func review2Get(addr string, cert tls.Certificate, cache tls.ClientSessionCache) (string, bool) {
	cfg := &tls.Config{ServerName: "shared.test", InsecureSkipVerify: true, Certificates: []tls.Certificate{cert},
		ClientSessionCache: cache, MaxVersion: tls.VersionTLS13}
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := c.Get("https://shared.test/api")
	if err != nil {
		return "tls", false
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return http.StatusText(resp.StatusCode), resp.TLS.DidResume
}

// TestReview2ServerOnAFleetStore: a client deleted on node a is refused by
// node b's Server on b's next connection, resumed or not, once the change
// log reaches b; and a node that was cut off while the deletion happened
// (it serves its cache meanwhile, as documented) refuses the client after
// it reconnects. An organisation's store never allows another
// organisation's ID.
func TestReview2ServerOnAFleetStore(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	ca := mtlstest.MustCA(t, "review2 fleet server")
	server := ca.MustIssue(t, mtlstest.Options{CommonName: "server", DNSNames: []string{"shared.test"}})
	clients := mtlstest.MustCA(t, "review2 fleet clients")
	alice := clients.MustIssue(t, mtlstest.Options{CommonName: "alice"})
	keep := clients.MustIssue(t, mtlstest.Options{CommonName: "keep"})

	a := newNode(t, srv.Addr(), "a")
	serverID, err := a.store.Add(ctx, server.PEM())
	require.NoError(t, err)
	aliceID, err := a.store.Add(ctx, alice.CertPEM)
	require.NoError(t, err)
	keepID, err := a.store.Add(ctx, keep.CertPEM)
	require.NoError(t, err)
	policy := mtls.ServerPolicy{
		Certificates: mtls.Map{"*": serverID},
		APIs: []mtls.APIPolicy{
			{Name: "api", Domain: "shared.test", MutualTLS: true, AllowedClients: []string{aliceID, keepID}},
			{Name: "other", Domain: "shared.test"},
		},
	}
	proxy := newProxy(t, srv.Addr())
	var servers []string
	for _, n := range []*node{newNode(t, srv.Addr(), "b"), newNode(t, proxy.Addr(), "c")} {
		s, err := mtls.NewServer(n.store, policy)
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		servers = append(servers, review2Server(t, s))
	}
	b, c := servers[0], servers[1]
	caches := map[string]tls.ClientSessionCache{b: tls.NewLRUClientSessionCache(4), c: tls.NewLRUClientSessionCache(4)}
	for _, addr := range servers {
		got, _ := review2Get(addr, alice.TLS, caches[addr])
		require.Equal(t, "OK", got)
		got, resumed := review2Get(addr, alice.TLS, caches[addr])
		require.Equal(t, "OK", got)
		require.True(t, resumed, "control: no resumption")
	}

	proxy.cut() // c loses Redis
	require.NoError(t, a.store.Delete(ctx, aliceID))
	eventually(t, "b refuses alice on a resumed connection", func() bool {
		got, resumed := review2Get(b, alice.TLS, caches[b])
		return got == "Forbidden" && resumed
	})
	got, _ := review2Get(b, alice.TLS, nil)
	require.Equal(t, "Forbidden", got, "b, a new session")
	got, _ = review2Get(c, alice.TLS, caches[c])
	t.Logf("c, cut off from Redis, answers alice %s (it serves its cache during an outage, as documented)", got)

	proxy.restore()
	eventually(t, "c refuses alice after it reconnects", func() bool {
		got, resumed := review2Get(c, alice.TLS, caches[c])
		return got == "Forbidden" && resumed
	})

	// Organisations: a store of acme never allows an ID of beta.
	acme := newNode(t, srv.Addr(), "acme", WithOrg("acme"))
	beta := newNode(t, srv.Addr(), "beta", WithOrg("beta"))
	betaID, err := beta.store.Add(ctx, alice.CertPEM)
	require.NoError(t, err)
	acmeServer, err := acme.store.Add(ctx, server.PEM())
	require.NoError(t, err)
	_, err = mtls.NewServer(acme.store, mtls.ServerPolicy{Certificates: mtls.Map{"*": acmeServer}, AllowedClients: []string{betaID}})
	require.True(t, errors.Is(err, mtls.ErrNotFound), "acme's server allowed beta's ID: %v", err)
}
