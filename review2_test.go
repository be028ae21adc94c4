package mtls

// Hostile review of the client-facing side (review 2), through real TLS
// handshakes on loopback; the helpers of server_test.go (srv*) build the
// servers and clients. Every wait is bounded; none is a timing assertion.
//
// Tests named TestReview2<Defect> FAIL on the reviewed commit: each shows a
// defect. Tests named TestReview2Coverage<...> PASS: they cover rules no
// other test exercises.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/require"
)

// review2PlainStore is a CertStore that is not a Notifier: "a store
// without it is read through on each new connection" (semantics §6).
type review2PlainStore struct{ s *MemoryStore }

func (p review2PlainStore) Add(ctx context.Context, b []byte) (string, error) { return p.s.Add(ctx, b) }
func (p review2PlainStore) Get(ctx context.Context, id string) (*Certificate, error) {
	return p.s.Get(ctx, id)
}
func (p review2PlainStore) Delete(ctx context.Context, id string) error { return p.s.Delete(ctx, id) }
func (p review2PlainStore) List(ctx context.Context) ([]string, error)  { return p.s.List(ctx) }

// TestReview2ResumedSessionBypassesRemovalAtTheHTTPLevel: semantics §7 "A
// change that removes a client applies to the next handshake and is never
// bypassed by resuming a session made before it."
//
// The HTTP level's verdict cache (server_http.go, verdictCache) is keyed by
// the leaf's *x509.Certificate pointer, on the assumption that "net/http
// keeps it per connection". crypto/tls parses the certificates of a resumed
// session through a process-wide intern table (crypto/tls/cache.go,
// globalCertCache, used by ParseSessionState), and the verdict cache's own
// map keys keep that pointer alive: every resumed connection of the client
// gets the same leaf pointer, and so the verdict made before the change.
// Only a store notification (slots.changes) makes a verdict stale; an
// allowlist file replaced on disk, or a Delete in a store that is not a
// Notifier, never does. The client keeps its access, on new connections,
// until its leaf expires.
//
// The TLS level does not help: where TLS cannot tell the API (several APIs
// on the domain, or no SNI, which the client chooses), the middleware alone
// decides.
func TestReview2ResumedSessionBypassesRemovalAtTheHTTPLevel(t *testing.T) {
	srvCA := newCA(t, "review2 resumption server")
	server := srvServerLeaf(t, srvCA, "server", "shared.test", "own.test")
	c := srvNewClients(t)

	type setup struct {
		store  CertStore
		p      ServerPolicy
		remove func(t *testing.T) // removes c.good from the API's allowlist
	}
	allowFile := func(t *testing.T) (string, func(t *testing.T)) {
		path := writeFile(t, t.TempDir(), "allowed.pem", c.good.CertPEM)
		return path, func(t *testing.T) { replaceFile(t, path, c.notAllowed.CertPEM) }
	}
	cases := []struct {
		name string
		sni  string // "" : none, the Host names the domain
		host string
		make func(t *testing.T) setup
	}{
		{
			name: "allowlist file replaced, two APIs share the domain", sni: "shared.test", host: "shared.test",
			make: func(t *testing.T) setup {
				store := newStore(t)
				path, remove := allowFile(t)
				return setup{store: store, remove: remove, p: ServerPolicy{
					Certificates: Map{"*": add(t, store, server.PEM())},
					APIs: []APIPolicy{
						{Name: "api", Domain: "shared.test", MutualTLS: true, ClientCAs: c.ca.Pool, AllowedClients: []string{path}},
						{Name: "other", Domain: "shared.test"},
					}}}
			},
		},
		{
			name: "allowlist file replaced, the API owns its domain, client sends no SNI", sni: "", host: "own.test",
			make: func(t *testing.T) setup {
				store := newStore(t)
				path, remove := allowFile(t)
				return setup{store: store, remove: remove, p: ServerPolicy{
					Certificates: Map{"*": add(t, store, server.PEM())},
					APIs: []APIPolicy{
						{Name: "api", Domain: "own.test", MutualTLS: true, ClientCAs: c.ca.Pool, AllowedClients: []string{path}},
					}}}
			},
		},
		{
			name: "store Delete in a store that is not a Notifier, two APIs share the domain", sni: "shared.test", host: "shared.test",
			make: func(t *testing.T) setup {
				store := review2PlainStore{newStore(t)}
				goodID := add(t, store, c.good.CertPEM)
				keepID := add(t, store, c.notAllowed.CertPEM)
				return setup{store: store, remove: func(t *testing.T) { del(t, store, goodID) }, p: ServerPolicy{
					Certificates: Map{"*": add(t, store, server.PEM())},
					APIs: []APIPolicy{
						{Name: "api", Domain: "shared.test", MutualTLS: true, AllowedClients: []string{goodID, keepID}},
						{Name: "other", Domain: "shared.test"},
					}}}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.make(t)
			e := srvNew(t, s.store, s.p, "api")
			cache := tls.NewLRUClientSessionCache(8)
			q := srvReq{sni: tc.sni, host: tc.host, path: "/api/api", cert: c.good, cache: cache, maxVersion: tls.VersionTLS13}
			if tc.sni != "" {
				q.roots = srvCA.Pool
			}
			r := e.ok(t, q) // full handshake
			require.False(t, r.resumed)
			r = e.ok(t, q) // resumed: the leaf now comes from crypto/tls's intern table
			require.True(t, r.resumed, "control: the client did not resume, the test would prove nothing")
			r = e.ok(t, q)
			require.True(t, r.resumed)

			s.remove(t)

			// Control: a new session of the removed client is refused.
			fresh := q
			fresh.cache = nil
			got, r := e.verdict(fresh)
			require.Equal(t, "403", got, "control: a new session of the removed client: %s", r.body)

			// The defect: the session made before the removal resumes, and
			// the request passes with the verdict made before it.
			got, r = e.verdict(q)
			require.True(t, r.resumed || got == "tls", "the test needs a resumed session")
			require.NotEqual(t, "200", got,
				"a client removed from the API's allowlist passed on a NEW connection that resumed a session made before the removal "+
					"(verdict cache keyed by an interned *x509.Certificate): %s", r.body)
		})
	}
}

// TestReview2KeptAliveConnectionAfterAllowlistFileChange: the same cache,
// on one kept-alive connection. TestServerRemovalAppliesToTheNextRequest
// shows the intent (a client removed by store Delete or Update is refused
// on its next request over a connection kept alive from before); a client
// removed by replacing an allowlist file (a value that is a file path, which
// the TLS level follows at the next handshake) keeps passing on that
// connection, forever, because a file change never makes a verdict stale.
// Same root cause: verdictCache.check only compares slots.changes, which
// file changes (and stores that are not Notifiers) never bump.
func TestReview2KeptAliveConnectionAfterAllowlistFileChange(t *testing.T) {
	srvCA := newCA(t, "review2 keep-alive server")
	server := srvServerLeaf(t, srvCA, "server", "a.test")
	c := srvNewClients(t)
	store := newStore(t)
	path := writeFile(t, t.TempDir(), "allowed.pem", c.good.CertPEM)
	keep := writeFile(t, t.TempDir(), "keep.pem", c.notAllowed.CertPEM)
	e := srvNew(t, store, ServerPolicy{Certificates: Map{"*": add(t, store, server.PEM())}, AllowedClients: []string{path, keep}}, "api")
	getStatus := srvKeptAlive(t, srvCA.Pool, c.good.TLS, "https://"+e.addr+"/", "a.test")
	status, _ := getStatus()
	require.Equal(t, http.StatusOK, status)

	replaceFile(t, path, c.selfUnlisted.CertPEM) // c.good is no longer allowed
	got, _ := e.verdict(srvReq{sni: "a.test", cert: c.good, roots: srvCA.Pool})
	require.Equal(t, "tls", got, "control: a new handshake of the removed client is refused")

	status, reused := getStatus()
	require.True(t, reused, "the test needs the same connection")
	require.Equal(t, http.StatusForbidden, status,
		"a client removed from an allowlist file passed over a kept-alive connection (a store Delete or Update would refuse it)")
}

// review2Chain makes root -> intermediate (valid until interNotAfter) ->
// client leaf (valid a day), the leaf's TLS certificate carrying the
// intermediate.
func review2Chain(t *testing.T, interNotAfter time.Time) (*x509.CertPool, *mtlstest.Leaf) {
	t.Helper()
	mk := func(tmpl, parent *x509.Certificate, pub any, signer any) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		require.NoError(t, err)
		c, err := x509.ParseCertificate(der)
		require.NoError(t, err)
		return c
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		return k
	}
	now := time.Now()
	rootKey, interKey, leafKey := key(), key(), key()
	rootT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "review2 root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	root := mk(rootT, rootT, rootKey.Public(), rootKey)
	interT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "review2 short-lived intermediate"},
		NotBefore: now.Add(-time.Hour), NotAfter: interNotAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	inter := mk(interT, root, interKey.Public(), rootKey)
	leafT := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "review2 client"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	leaf := mk(leafT, inter, leafKey.Public(), interKey)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw})...)
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	require.NoError(t, err)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	tc, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	return pool, &mtlstest.Leaf{Cert: leaf, Key: leafKey, CertPEM: certPEM, KeyPEM: keyPEM, TLS: tc}
}

// TestReview2CachedVerdictOutlivesTheIntermediate: semantics §7 and the
// README ("an expired or not yet valid client certificate fails, at either
// level"; the verdict cache stops at the leaf's NotAfter so that expiry
// applies on kept-alive connections). The cache keeps a verdict until the
// LEAF's NotAfter (server_http.go, verdictCache.check: until:
// chain[0].NotAfter), but the verdict also rested on the intermediate (and
// the CA), which may expire first: after the intermediate expired, a new
// handshake is refused, while the cached verdict lets the same client
// through, on kept-alive and (see above) resumed connections, until its
// leaf expires.
//
// It waits (bounded, about three seconds) for a real intermediate to expire.
func TestReview2CachedVerdictOutlivesTheIntermediate(t *testing.T) {
	srvCA := newCA(t, "review2 inter expiry server")
	server := srvServerLeaf(t, srvCA, "server", "shared.test")
	interNotAfter := time.Now().Add(3 * time.Second).Truncate(time.Second)
	roots, client := review2Chain(t, interNotAfter)
	store := newStore(t)
	e := srvNew(t, store, ServerPolicy{
		Certificates: Map{"*": add(t, store, server.PEM())},
		APIs: []APIPolicy{
			{Name: "api", Domain: "shared.test", MutualTLS: true, ClientCAs: roots, VerifyDepth: 1},
			{Name: "other", Domain: "shared.test"},
		}}, "api")
	getStatus := srvKeptAlive(t, srvCA.Pool, client.TLS, "https://"+e.addr+"/api/api", "shared.test")
	status, _ := getStatus()
	require.Equal(t, http.StatusOK, status)

	// Wait, bounded, until the intermediate has expired (x509 compares
	// whole seconds).
	deadline := interNotAfter.Add(waitFor)
	for !time.Now().After(interNotAfter.Add(1500 * time.Millisecond)) {
		require.True(t, time.Now().Before(deadline))
		time.Sleep(50 * time.Millisecond)
	}
	got, r := e.verdict(srvReq{sni: "shared.test", path: "/api/api", cert: client, roots: srvCA.Pool})
	require.Equal(t, "403", got, "control: a new connection whose intermediate expired is refused: %s", r.body)

	status, reused := getStatus()
	require.True(t, reused, "the test needs the same connection")
	require.Equal(t, http.StatusForbidden, status,
		"a client whose intermediate expired passed over a kept-alive connection: the cached verdict lives until the leaf's NotAfter")
}

// TestReview2VerdictMadeDuringAStoreChangeOutlivesIt: semantics §6 "A store
// or file read that began before a change notification is never cached
// after it" and §7 (removal applies to the next handshake, never bypassed
// by resuming). slots.invalidate (slots.go) bumps slots.changes BEFORE it
// invalidates the slots (it bumps, then waits for slots.mu, then drops the
// cached clients). A request whose verdict runs in that window reads the
// new counter and the old allowlist slot, and caches "allowed" under the
// new counter: when the Delete returns, the verdict is not stale, and the
// deleted client keeps passing on later requests and on resumed
// connections (see TestReview2ResumedSessionBypassesRemovalAtTheHTTPLevel
// for why a resumed connection finds the same cache key).
//
// The test widens the window deterministically by holding slots.mu (which
// a concurrent Update or another notification also holds in production)
// while the store's Delete notifies.
func TestReview2VerdictMadeDuringAStoreChangeOutlivesIt(t *testing.T) {
	srvCA := newCA(t, "review2 race server")
	server := srvServerLeaf(t, srvCA, "server", "shared.test")
	c := srvNewClients(t)
	store := newStore(t)
	goodID := add(t, store, c.good.CertPEM)
	keepID := add(t, store, c.notAllowed.CertPEM)
	e := srvNew(t, store, ServerPolicy{
		Certificates: Map{"*": add(t, store, server.PEM())},
		APIs: []APIPolicy{
			{Name: "api", Domain: "shared.test", MutualTLS: true, AllowedClients: []string{goodID, keepID}},
			{Name: "other", Domain: "shared.test"},
		}}, "api")
	cache := tls.NewLRUClientSessionCache(8)
	q := srvReq{sni: "shared.test", path: "/api/api", cert: c.good, roots: srvCA.Pool, cache: cache, maxVersion: tls.VersionTLS13}
	r := e.ok(t, q)
	require.False(t, r.resumed)

	v := e.s.slots
	v.mu.Lock()
	deleted := make(chan struct{})
	go func() {
		defer close(deleted)
		del(t, store, goodID)
	}()
	deadline := time.Now().Add(waitFor)
	for { // the store has deleted the entry and is notifying, blocked on v.mu
		ids, err := store.List(context.Background())
		require.NoError(t, err)
		if !slices.Contains(ids, goodID) {
			break
		}
		if time.Now().After(deadline) {
			v.mu.Unlock()
			t.Fatal("the store never deleted the entry")
		}
		time.Sleep(time.Millisecond)
	}
	// The Delete is under way: a request racing with it may pass.
	r, err := e.do(q)
	v.mu.Unlock()
	require.NoError(t, err)
	require.True(t, r.resumed)
	require.Equal(t, 200, r.status, "the racing request: %s", r.body)
	select {
	case <-deleted:
	case <-time.After(waitFor):
		t.Fatal("Delete did not return")
	}

	// Delete has returned. Control: a new session is refused.
	fresh := q
	fresh.cache = nil
	got, r := e.verdict(fresh)
	require.Equal(t, "403", got, "control: %s", r.body)
	// The defect: a connection resuming the session gets the verdict made
	// during the Delete.
	got, r = e.verdict(q)
	require.True(t, r.resumed || got == "tls")
	require.NotEqual(t, "200", got, "a client deleted from the store passed after Delete returned, on a new (resumed) connection: %s", r.body)
}

// review2Cert signs tmpl with parent (self-signed when parent is nil) and
// returns the certificate, its key, and, for a leaf, its TLS certificate
// carrying chain above it.
func review2Cert(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, chain ...*x509.Certificate) (*x509.Certificate, *ecdsa.PrivateKey, *mtlstest.Leaf) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	require.NoError(t, err)
	tmpl.SerialNumber = serial
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	}
	signer := key
	if parent == nil {
		parent = tmpl
	} else {
		signer = parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for _, c := range chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	tc, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	return cert, key, &mtlstest.Leaf{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM, TLS: tc}
}

// TestReview2CoverageChainTricks: COVERAGE (passes). Rules of §7 that no
// other test exercises, at the TLS level (the policy's rules) and at the
// HTTP level (two APIs share the domain), with the same verdict at either:
//   - a chain that lists the allowed leaf second (mallory's leaf first,
//     with mallory's key) is mallory's;
//   - a leaf of the CA whose extended key usage is serverAuth only is not
//     a client certificate, even when listed;
//   - a name-constrained intermediate (permitted DNS team-a.test) cannot
//     make a DNS name outside its subtree pass AuthorizeDNSName.
func TestReview2CoverageChainTricks(t *testing.T) {
	srvCA := newCA(t, "review2 tricks server")
	server := srvServerLeaf(t, srvCA, "server", "a.test", "shared.test")
	root, rootKey, _ := review2Cert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "review2 tricks root"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	constrained, consKey, _ := review2Cert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "team-a CA"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		PermittedDNSDomainsCritical: true, PermittedDNSDomains: []string{"team-a.test"}}, root, rootKey)
	client := func(cn string, eku x509.ExtKeyUsage, dns ...string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{eku}}
	}
	aliceCert, _, alice := review2Cert(t, client("alice", x509.ExtKeyUsageClientAuth), root, rootKey)
	_, _, mallory := review2Cert(t, client("mallory", x509.ExtKeyUsageClientAuth), root, rootKey)
	malloryThenAlice := mallory.TLS
	malloryThenAlice.Certificate = append([][]byte{mallory.TLS.Certificate[0]}, aliceCert.Raw)
	_, _, serverOnly := review2Cert(t, client("server-only", x509.ExtKeyUsageServerAuth), root, rootKey)
	_, _, outside := review2Cert(t, client("outside", x509.ExtKeyUsageClientAuth, "admin.test"), constrained, consKey, constrained)
	_, _, inside := review2Cert(t, client("inside", x509.ExtKeyUsageClientAuth, "ok.team-a.test"), constrained, consKey, constrained)

	store := newStore(t)
	serverID := add(t, store, server.PEM())
	aliceID, serverOnlyID := add(t, store, alice.CertPEM), add(t, store, serverOnly.CertPEM)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	allow := []string{aliceID, serverOnlyID}
	byDNS := AuthorizeDNSName("admin.test", "ok.team-a.test")
	for _, level := range []struct {
		name, sni, path, refused string
		byName                   bool // Authorize, not the allowlist
		p                        ServerPolicy
	}{
		{"TLS level, allowlist", "a.test", "/", "tls", false, ServerPolicy{Certificates: Map{"*": serverID}, ClientCAs: pool, AllowedClients: allow}},
		{"HTTP level, allowlist", "shared.test", "/api/api", "403", false, ServerPolicy{Certificates: Map{"*": serverID}, APIs: []APIPolicy{
			{Name: "api", Domain: "shared.test", MutualTLS: true, ClientCAs: pool, AllowedClients: allow}, {Name: "other", Domain: "shared.test"}}}},
		{"TLS level, Authorize", "a.test", "/", "tls", true, ServerPolicy{Certificates: Map{"*": serverID}, ClientCAs: pool, VerifyDepth: 1, Authorize: byDNS}},
		{"HTTP level, Authorize", "shared.test", "/api/api", "403", true, ServerPolicy{Certificates: Map{"*": serverID}, APIs: []APIPolicy{
			{Name: "api", Domain: "shared.test", MutualTLS: true, ClientCAs: pool, VerifyDepth: 1, Authorize: byDNS}, {Name: "other", Domain: "shared.test"}}}},
	} {
		t.Run(level.name, func(t *testing.T) {
			e := srvNew(t, store, level.p, "api")
			try := func(cert tls.Certificate) string {
				got, r := e.verdict(srvReq{sni: level.sni, path: level.path, roots: srvCA.Pool,
					cert: &mtlstest.Leaf{TLS: cert}})
				if got != "200" && got != "tls" {
					t.Logf("%s: %s", got, r.body)
				}
				return got
			}
			if !level.byName {
				require.Equal(t, "200", try(alice.TLS), "control")
				require.Equal(t, level.refused, try(malloryThenAlice), "mallory's chain with alice's leaf second")
				require.Equal(t, level.refused, try(serverOnly.TLS), "a listed leaf whose extended key usage is serverAuth only")
				return
			}
			require.Equal(t, "200", try(inside.TLS), "control: a DNS name inside the constrained subtree")
			require.Equal(t, level.refused, try(outside.TLS), "a DNS name outside the intermediate's name constraints")
		})
	}
}

// TestReview2CoverageAuthorityTricks: COVERAGE (passes). The 421 rule
// (§7 "SNI and Host agree") against the spellings of the target that
// TestServerHostMustMatchSNI does not try: an HTTP/1.1 absolute-form
// request line naming another host than its Host header (net/http takes
// the request line's), and HTTP/2's :authority over a connection whose
// SNI is another domain's (connection coalescing). The client connects to
// the open domain, without a certificate, and asks for the owned one.
func TestReview2CoverageAuthorityTricks(t *testing.T) {
	srvCA := newCA(t, "review2 authority server")
	server := srvServerLeaf(t, srvCA, "server", "own.test", "open.test")
	c := srvNewClients(t)
	store := newStore(t)
	e := srvNew(t, store, ServerPolicy{
		Certificates: Map{"*": add(t, store, server.PEM())},
		APIs: []APIPolicy{
			{Name: "own", Domain: "own.test", MutualTLS: true, ClientCAs: c.ca.Pool},
			{Name: "open", Domain: "open.test"},
		}}, "own", "open")

	for _, line := range []string{"https://own.test/api/own", "https://OWN.test.:443/api/own", "//own.test/api/own"} {
		conn, err := tls.Dial("tcp", e.addr, &tls.Config{ServerName: "open.test", RootCAs: srvCA.Pool})
		require.NoError(t, err)
		require.NoError(t, conn.SetDeadline(time.Now().Add(waitFor)))
		_, err = io.WriteString(conn, "GET "+line+" HTTP/1.1\r\nHost: open.test\r\nConnection: close\r\n\r\n")
		require.NoError(t, err)
		b, _ := io.ReadAll(conn)
		conn.Close()
		require.NotContains(t, string(b), "api=own", "request line %q over the open domain's connection reached the owned API", line)
	}

	tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{ServerName: "open.test", RootCAs: srvCA.Pool}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, "https://"+e.addr+"/api/own", nil)
	require.NoError(t, err)
	req.Host = "own.test" // :authority
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "HTTP/2.0", resp.Proto)
	require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
}
