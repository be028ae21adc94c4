package gateway

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls/tykconf"
)

func TestListenMatch(t *testing.T) {
	for _, tc := range []struct {
		lp, path      string
		loose, strict bool
	}{
		{"/billing/", "/billing/x", true, true},
		{"/billing/", "/billing/", true, true},
		{"/billing/", "/billing", true, true},
		{"/billing/", "/billingx", false, false},
		{"/billing", "/billing", true, true},
		{"/billing", "/billing/x", true, true},
		{"/billing", "/billingx", true, false}, // Tyk's loose prefix; enable_strict_routes stops it
		{"/bill", "/billing", true, false},
		{"/", "/anything", true, true},
		{"/a/b/", "/a/", false, false},
	} {
		assert.Equal(t, tc.loose, listenMatch(tc.lp, tc.path, false), "loose %q %q", tc.lp, tc.path)
		assert.Equal(t, tc.strict, listenMatch(tc.lp, tc.path, true), "strict %q %q", tc.lp, tc.path)
	}
}

// TestTableMatch: the API of a request: by domain (exact before wildcard),
// longest listen path first, then the APIs on every domain.
func TestTableMatch(t *testing.T) {
	conf := &tykconf.Gateway{EnableCustomDomains: true}
	mk := func(id, domain, lp string) *route {
		return &route{api: &tykconf.API{APIID: id, Domain: domain, ListenPath: lp}, domain: domain, target: &url.URL{}}
	}
	tb := &table{}
	for _, r := range []*route{
		mk("root", "", "/"),
		mk("any-api", "", "/api/"),
		mk("shared", "shared.test", "/"),
		mk("shared-api", "shared.test", "/api/"),
		mk("shared-api-v2", "shared.test", "/api/v2/"),
		mk("wild", "*.example.com", "/"),
		mk("exact", "a.example.com", "/x/"),
	} {
		tb.add(r)
	}
	require.NoError(t, tb.compile(conf))
	for _, tc := range []struct{ host, path, want string }{
		{"shared.test", "/api/v2/x", "shared-api-v2"},
		{"shared.test:8443", "/api/v1", "shared-api"},
		{"SHARED.test.", "/other", "shared"},
		{"other.test", "/api/x", "any-api"},
		{"other.test", "/z", "root"},
		{"a.example.com", "/x/1", "exact"},
		{"a.example.com", "/y", "root"}, // the exact domain has no "/": APIs on every domain, not the wildcard
		{"b.example.com", "/y", "wild"},
		{"127.0.0.1:443", "/api/", "any-api"},
		{"", "/z", "root"},
	} {
		r := tb.match(tc.host, tc.path)
		require.NotNil(t, r, "%s %s", tc.host, tc.path)
		assert.Equal(t, tc.want, r.api.APIID, "%s %s", tc.host, tc.path)
	}
	empty := &table{}
	require.NoError(t, empty.compile(conf))
	assert.Nil(t, empty.match("a", "/"))
}

// TestStripListenPath: what is forwarded of a path without its listen
// path: the client's escaping kept (an encoded slash stays encoded), or,
// when the client encoded part of the listen path, the decoded rest.
func TestStripListenPath(t *testing.T) {
	for _, tc := range []struct {
		lp, target, path, raw string
	}{
		{"/open/", "/open/a/b", "/a/b", "/a/b"},
		{"/open/", "/open/a%2Fb", "/a/b", "/a%2Fb"},
		{"/open/", "/open", "/", "/"},
		{"/open/", "/open/", "/", "/"},
		{"/open", "/open/x", "/x", "/x"},
		{"/bill", "/billing", "/ing", "/ing"}, // Tyk's loose prefix
		{"/open/", "/%6Fpen/a%2Fb", "/a/b", ""},
		{"/", "/x%20y", "/x y", "/x%20y"},
	} {
		u, err := url.Parse("https://h" + tc.target)
		require.NoError(t, err)
		p, raw := stripListenPath(u, tc.lp)
		assert.Equal(t, tc.path, p, "%s %s", tc.lp, tc.target)
		assert.Equal(t, tc.raw, raw, "%s %s", tc.lp, tc.target)
	}
}
