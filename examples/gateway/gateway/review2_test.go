package gateway

// Hostile review of the gateway (review 2): each test shows a defect
// through the gateway run in-process (startGateway) and real TLS clients
// on loopback. Every wait is bounded; none is a timing assertion.

import (
	"crypto/tls"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReview2GatewayRevokedClientResumesIntoAPI: a client revoked by
// removing its certificate file (client_certificates: ["../alice.pem"], a
// file path, as the scenario and the demo write them) is refused on a new
// session, but a session it made before the revocation resumes and its
// requests to billing (shared.test: two protected APIs share the domain, so
// only the middleware decides) pass, with a new TCP and TLS connection each.
//
// Semantics §7: a change that removes a client applies to the next
// handshake and is never bypassed by resuming a session made before it.
// Root cause in package mtls (server_http.go, verdictCache): the verdict
// cache is keyed by the leaf's *x509.Certificate, which crypto/tls interns
// across resumed connections (crypto/tls/cache.go), and a file change
// never makes a verdict stale. See TestReview2ResumedSessionBypassesRemovalAtTheHTTPLevel
// in the root package.
func TestReview2GatewayRevokedClientResumesIntoAPI(t *testing.T) {
	s := newScenario(t, nil, nil)
	s.start(t)
	alice := s.leaves["alice"]
	newClient := func(cache tls.ClientSessionCache) *http.Client {
		c := s.client(s.gw, alice)
		tr := c.Transport.(*http.Transport)
		tr.DisableKeepAlives = true // a new TCP and TLS connection per request
		tr.TLSClientConfig.ClientSessionCache = cache
		tr.TLSClientConfig.MaxVersion = tls.VersionTLS13
		return c
	}
	resumed := func(c *http.Client, url string) (int, bool) {
		resp, err := c.Get(url)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode, resp.TLS != nil && resp.TLS.DidResume
	}
	cache := tls.NewLRUClientSessionCache(4)
	c := newClient(cache)
	url := s.url("shared.test", "/billing/x")
	status, _ := resumed(c, url)
	require.Equal(t, 200, status)
	status, res := resumed(c, url)
	require.Equal(t, 200, status)
	require.True(t, res, "control: the client did not resume")

	// The operator revokes alice: her certificate file is removed.
	require.NoError(t, os.Remove(s.file("alice.pem")))

	status, _ = resumed(newClient(nil), url)
	require.Equal(t, 403, status, "control: a new session of the revoked client is refused")

	status, res = resumed(c, url)
	require.True(t, res, "the test needs a resumed session")
	require.Equal(t, 403, status, "the revoked client reached billing on a new connection that resumed a session made before the revocation")
}

// TestReview2GatewayDotSegmentsEscapeTheTarget: the gateway routes on the
// path as it arrived and forwards it with its dot segments: a client
// without a certificate sends GET /open/../b/secret, which the gateway
// routes to "open" (no mutual TLS, target up1/open) and forwards to up1 as
// /open/../b/secret; an upstream that resolves dot segments (RFC 3986
// §5.2.4, as nginx, Tomcat and most frameworks do) serves /b/secret, the
// resource of billing (use_mutual_tls_auth, allows alice only, target
// up1/b). The same with %2e%2e. A client reaches an API it is not allowed,
// through another API on the same upstream host (the class of Traefik's
// CVE-2025-32431 and of gravitee-api-management#19120).
//
// Root cause: examples/gateway routes.go, gateway.ServeHTTP / table.match
// route on r.URL.Path, and newRoute's Rewrite forwards the escaped path,
// without resolving or refusing dot segments.
//
// Fixed by refusing, before routing, a path that has a "." or ".." segment
// once decoded (so encoded dots and encoded slashes count, and so does a
// backslash): 400, and nothing reaches an upstream. The reviewer's test
// expected a forwarded path that stays under /open/; it now checks the
// refusal, and that clean paths, encoded slashes included, still go
// through under /open/.
func TestReview2GatewayDotSegmentsEscapeTheTarget(t *testing.T) {
	s := newScenario(t, nil, nil)
	s.writeAPI("open", apiDef("open", "shared.test", "/open/", s.up1.URL+"/open", obj{
		"upstream_certificates": obj{s.up1.Host: "../gw-u1-full.pem"},
	}))
	s.start(t)
	anon := s.client(s.gw, nil)

	status, body, err := get(anon, s.url("shared.test", "/billing/secret"))
	require.NoError(t, err)
	require.Equal(t, 403, status, "control: billing needs a client certificate: %s", body)
	for p, want := range map[string]string{
		"/open/page":          "/open/page",
		"/open/a%2Fb":         "/open/a/b", // an encoded slash, decoded by the upstream
		"/open/..x/.y/x../.":  "",          // not dot segments; the last one is
		"/open/..x/.y/x../z.": "/open/..x/.y/x../z.",
	} {
		status, body, err = get(anon, s.url("shared.test", p))
		require.NoError(t, err)
		if want == "" {
			assert.Equal(t, 400, status, "%s: %s", p, body)
			continue
		}
		require.Equal(t, 200, status, "%s: %s", p, body)
		assert.Equal(t, "upstream=up1 path="+want, strings.TrimSpace(body), "control: open's target is up1/open")
	}

	for _, p := range []string{
		"/open/../b/secret", "/open/%2e%2e/b/secret", "/open/.%2E/b/secret", "/open/%2E./b/secret",
		"/open/..%2fb/secret", "/open%2f..%2fb%2fsecret", "/open/..%5cb/secret", "/open/x/%2e%2e%2f%2e%2e%2fb/secret",
		"/open/./page", "/open/%2e/page", "/open/..", "/open/x/..", "/..", "/tyk/../open/page", "/tyk/certs/..%2f..%2fopen",
	} {
		seen := len(s.up1.Seen())
		status, body, err = get(anon, s.url("shared.test", p))
		require.NoError(t, err)
		assert.Equal(t, 400, status, "%s: %s", p, body)
		assert.JSONEq(t, `{"error": "Bad Request: the path has a . or .. segment"}`, body, p)
		assert.Len(t, s.up1.Seen(), seen, "%s, sent without a client certificate, reached up1", p)
	}
	require.True(t, s.gw.waitLog(`api=- GET "/open/x/../../b/secret" status=400 client=- error="the path has a . or .. segment"`),
		"the refusal is logged, its path quoted")
}

// TestReview2GatewayLogLinesForgedThroughThePath: the request log writes
// r.URL.Path, decoded, as it is: a %0A in the request line starts a new
// log line with whatever the client wrote, here a line saying that alice
// got billing's /billing/forged with status 200. The log is where the
// gateway records which client certificate reached which API; a forged
// line defeats it. The admin log line does the same.
//
// Root cause: examples/gateway routes.go, gateway.logRequest and
// gateway.ServeHTTP (and adminHandler's log line) write r.URL.Path
// unquoted; quote it (strconv.Quote) or write r.URL.EscapedPath().
func TestReview2GatewayLogLinesForgedThroughThePath(t *testing.T) {
	s := newScenario(t, nil, nil)
	s.start(t)
	anon := s.client(s.gw, nil)
	forged := "api=billing GET /billing/forged status=200 client=" + s.leaves["alice"].ID()
	status, _, err := get(anon, s.url("shared.test", "/public/x%0A"+strings.ReplaceAll(forged, " ", "%20")))
	require.NoError(t, err)
	require.Equal(t, 200, status)
	status, _, err = get(anon, s.url("shared.test", "/nowhere%0A"+strings.ReplaceAll(forged, " ", "%20")))
	require.NoError(t, err)
	require.Equal(t, 404, status)
	require.True(t, s.gw.waitLog("status=404"))
	// The admin side's log line too (403: no secret).
	status, _, err = get(anon, s.url("shared.test", "/tyk/certs%0A"+strings.ReplaceAll(forged, " ", "%20")))
	require.NoError(t, err)
	require.Equal(t, 403, status)
	require.True(t, s.gw.waitLog("admin GET "))
	for _, line := range strings.Split(s.gw.stderr.String(), "\n") {
		require.False(t, strings.HasPrefix(line, forged), "a log line written by the client: %q\nlog:\n%s", line, s.gw.stderr.String())
	}
}
