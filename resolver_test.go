package mtls

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests of contract section 2, "Resolving a host", rule by rule.

// requestMatch resolves host as the request path does: read as net/http
// dials it, normalised, then found in r.
func requestMatch(r *Resolver, host string) (Match, bool, error) {
	var h requestHost
	if err := parseRequestHost(host, &h); err != nil {
		return Match{}, false, err
	}
	m, ok := r.match(r.t.Find(&h.parsed, h.key.port))
	return m, ok, nil
}

// normalizeHost normalises a request host as the request path does.
func normalizeHost(host string) (string, uint16, error) {
	var h requestHost
	err := parseRequestHost(host, &h)
	return h.key.name, h.key.port, err
}

// bareIPv6 reports a host of two colons or more outside brackets.
func bareIPv6(host string) bool { return !strings.HasPrefix(host, "[") && strings.Count(host, ":") > 1 }

// ipWithTrailingDot reports an IPv4 address with a trailing dot, which the
// request path refuses (net/http looks it up as a name) and Resolve, for
// tools, normalises.
func ipWithTrailingDot(host string) bool {
	name, _ := splitPort(host)
	return strings.HasSuffix(name, ".") && strings.Trim(name, "0123456789.") == ""
}

func TestNormalizeHost(t *testing.T) {
	tests := []struct {
		host string
		name string
		port uint16
	}{
		// Lowercase, one trailing dot removed.
		{"Api.Example.COM.", "api.example.com", 443},
		{"api.example.com", "api.example.com", 443},
		{"API.EXAMPLE.COM.:8443", "api.example.com", 8443},
		// No port: port 443.
		{"api.example.com:443", "api.example.com", 443},
		{"api.example.com:0443", "api.example.com", 443},
		{"api.example.com:1", "api.example.com", 1},
		{"api.example.com:65535", "api.example.com", 65535},
		// Letters, digits, '-', '_'.
		{"_svc-1.xn--bcher-kva.example", "_svc-1.xn--bcher-kva.example", 443},
		{"localhost", "localhost", 443},
		{"123.example.com", "123.example.com", 443},
		{"example.123", "example.123", 443},
		// IP literals: IPv4, IPv6 canonical with or without brackets.
		{"10.0.0.1", "10.0.0.1", 443},
		{"[::1]:8443", "::1", 8443},
		{"[0:0::1]:8443", "::1", 8443},
		{"[0:0:0:0:0:0:0:1]", "::1", 443},
		{"[FD00::ABCD]:1", "fd00::abcd", 1},
		{"[::ffff:10.0.0.1]:8443", "10.0.0.1", 8443}, // IPv4-mapped: the IPv4 address
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			name, port, err := normalizeHost(tt.host)
			require.NoError(t, err)
			assert.Equal(t, tt.name, name)
			assert.Equal(t, tt.port, port)
		})
	}
}

func TestNormalizeHostErrors(t *testing.T) {
	tests := []struct{ host, reason string }{
		{"", "empty"},
		{"https://api.example.com", "scheme"},
		{"api.example.com/v1", "path"},
		{"api..example.com", "empty label"},
		{".api.example.com", "empty label"},
		{"api.example.com..", "empty label"},
		{".", "empty name"},
		{":443", "empty name"},
		{"api.example.com:", "empty port"},
		{"api.example.com:0", "outside 1-65535"},
		{"api.example.com:65536", "outside 1-65535"},
		{"api.example.com:99999999999999999999", "outside 1-65535"},
		{"api.example.com:https", "not a number"},
		{"api.example.com:+443", "not a number"},
		{"*.example.com", "invalid character '*'"},
		{"api example.com", "invalid character ' '"},
		{"api@example.com", "invalid character '@'"},
		{"bücher.example", "non-ASCII"},
		{strings.Repeat("a", 64) + ".example.com", "label longer than 63"},
		{strings.Repeat("a.", 127) + "com", "longer than 253"},
		{"1.2.3", "not a valid IPv4"},
		{"010.0.0.1", "not a valid IPv4"},
		{"256.0.0.1", "not a valid IPv4"},
		{"[::1", "no closing"},
		{"[::1]8443", "not a port"},
		{"[10.0.0.1]:443", "not a valid IPv6"},
		{"[fe80::1%eth0]:443", "zones"},
		{"[::1]:", "empty port"},
		{"::g", "must be in brackets"},
		// What net/http dials: a bare IPv6 literal is not one to it.
		{"::1", "must be in brackets"},
		{"0:0::1", "must be in brackets"},
		{"::1:4000", "net/http would dial \"[::1]:4000\""},
		{"fd00::1:443", "must be in brackets"},
		{"api.example.com:443:", "must be in brackets"},
		{"10.0.0.1.:80", "an IP address with a trailing dot"},
		{"10.0.0.1.", "an IP address with a trailing dot"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			_, _, err := normalizeHost(tt.host)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "mtls: "), err.Error())
			assert.Contains(t, err.Error(), quotePattern(tt.host))
			assert.Contains(t, err.Error(), tt.reason)

			if bareIPv6(tt.host) || ipWithTrailingDot(tt.host) {
				return // Resolver.Resolve, for tools, reads these as addresses
			}
			r, err := NewResolver(Map{"*": "default"}, nil)
			require.NoError(t, err)
			_, ok := r.Resolve(tt.host)
			assert.False(t, ok, "an invalid host matches nothing, not even '*'")
		})
	}
}

func TestNewResolverRejects(t *testing.T) {
	tests := []struct{ pattern, reason string }{
		{"https://api.example.com", "has a scheme"},
		{"http://api.example.com:8443/", "has a scheme"},
		{"api.example.com/v1", "has a path"},
		{"api..example.com", "empty label"},
		{".example.com", "empty label"},
		{"*..example.com", "empty label"},
		{"a*.example.com", "'*' inside a label"},
		{"*a.example.com", "'*' inside a label"},
		{"api.e*e.com", "'*' inside a label"},
		{"**.example.com", "'*' inside a label"},
		{"api.example.com:0", "outside 1-65535"},
		{"api.example.com:65536", "outside 1-65535"},
		{"api.example.com:-1", "not a number"},
		{"api.example.com:http", "not a number"},
		{"api.example.com:", "empty port"},
		{"*:443", "'*' with a port"},
		{"*.:8443", "'*' with a port"},
		{"", "empty"},
		{"bücher.example", "non-ASCII"},
		{"api example.com", "invalid character"},
		{"api.example.com?x=1", "invalid character"},
		{strings.Repeat("a", 64) + ".example.com", "label longer than 63 bytes"},
		{strings.Repeat("a.", 127) + "com", "longer than 253 bytes"},
		{"10.0.*.1", "wildcard in an IP address"},
		{"*.0.0.1", "wildcard in an IP address"},
		{"[::*]:443", "wildcard in an IP address"},
		{"10.0.0.256", "not a valid IPv4"},
		{"[::1]:0", "outside 1-65535"},
		{"[fe80::1%eth0]", "zones"},
	}
	for _, tt := range tests {
		for _, level := range []Level{LevelAPI, LevelGateway} {
			t.Run(level.String()+"/"+tt.pattern, func(t *testing.T) {
				m := Map{tt.pattern: "v", "ok.example.com": "w"}
				var err error
				if level == LevelAPI {
					_, err = NewResolver(m, nil)
				} else {
					_, err = NewResolver(nil, m)
				}
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrInvalidPattern)
				assert.Contains(t, err.Error(), quotePattern(tt.pattern))
				assert.Contains(t, err.Error(), "("+level.String()+" level)")
				assert.Contains(t, err.Error(), tt.reason)
			})
		}
	}
}

func TestNewResolverDuplicates(t *testing.T) {
	t.Run("different values", func(t *testing.T) {
		for _, pair := range [][2]string{
			{"api.example.com", "API.Example.COM."},
			{"*.example.com:8443", "*.EXAMPLE.com.:8443"},
			{"[::1]:8443", "[0:0::1]:8443"},
			{"::1", "[::1]"},
			{"*", "*."},
		} {
			_, err := NewResolver(nil, Map{pair[0]: "a", pair[1]: "b"})
			require.Error(t, err, pair)
			assert.ErrorIs(t, err, ErrInvalidPattern)
			// Patterns are checked in sorted order: the later one is named,
			// with the one it collides with.
			assert.Contains(t, err.Error(), strconv.Quote(pair[0]))
			assert.Contains(t, err.Error(), strconv.Quote(pair[1]))
			assert.Contains(t, err.Error(), "gateway level")
		}
	})
	t.Run("same value", func(t *testing.T) {
		r, err := NewResolver(Map{"api.example.com": "a", "API.EXAMPLE.COM.": "a"}, nil)
		require.NoError(t, err)
		m, ok := r.Match("api.example.com")
		require.True(t, ok)
		assert.Equal(t, Match{Value: "a", Pattern: "API.EXAMPLE.COM.", Level: LevelAPI}, m, "the pattern that sorts first")
	})
	t.Run("not duplicates", func(t *testing.T) {
		for _, m := range []Map{
			{"api.example.com": "a", "api.example.com:443": "b"},
			{"api.example.com:8443": "a", "api.example.com:443": "b"},
			{"*.example.com": "a", "*.example.com:443": "b"},
		} {
			_, err := NewResolver(m, m) // the same pattern at two levels is fine too
			assert.NoError(t, err, m)
		}
	})
}

func TestNewResolverNilMaps(t *testing.T) {
	r, err := NewResolver(nil, nil)
	require.NoError(t, err)
	_, ok := r.Resolve("api.example.com")
	assert.False(t, ok)

	var nilResolver *Resolver
	_, ok = nilResolver.Resolve("api.example.com")
	assert.False(t, ok)
	m, ok := nilResolver.Match("api.example.com")
	assert.False(t, ok)
	assert.Zero(t, m)

	var zero Resolver
	assert.NotPanics(t, func() { _, ok = zero.Resolve("api.example.com") })
	assert.False(t, ok)
}

// resolveCase is one host resolved against two maps.
type resolveCase struct {
	name         string
	api, gateway Map
	host         string
	want         string // pattern and level as "api:PATTERN" or "gateway:PATTERN"; "" for no match
}

func runResolveCases(t *testing.T, tests []resolveCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewResolver(tt.api, tt.gateway)
			require.NoError(t, err)
			m, ok := r.Match(tt.host)
			if tt.want == "" {
				assert.False(t, ok, "matched %+v", m)
				assert.Zero(t, m)
				return
			}
			require.True(t, ok, "no match")
			level, pattern, _ := strings.Cut(tt.want, ":")
			want := Match{Pattern: pattern, Level: LevelAPI, Value: tt.api[pattern]}
			if level == "gateway" {
				want.Level, want.Value = LevelGateway, tt.gateway[pattern]
			}
			assert.Equal(t, want, m)
			v, ok := r.Resolve(tt.host)
			assert.True(t, ok)
			assert.Equal(t, want.Value, v)
		})
	}
}

// values gives each pattern a value of its own.
func values(patterns ...string) Map {
	m := Map{}
	for i, p := range patterns {
		m[p] = "value" + strconv.Itoa(i) + ":" + p
	}
	return m
}

func TestResolveNormalisation(t *testing.T) {
	runResolveCases(t, []resolveCase{
		{"case and trailing dot of host", nil, values("api.example.com"), "Api.Example.COM.", "gateway:api.example.com"},
		{"case and trailing dot of pattern", nil, values("API.Example.Com."), "api.example.com", "gateway:API.Example.Com."},
		{"no port is 443", nil, values("api.example.com:443"), "api.example.com", "gateway:api.example.com:443"},
		{"IPv6 brackets and canonical form", nil, values("[::1]:8443"), "[0:0::1]:8443", "gateway:[::1]:8443"},
		{"IPv6 bare pattern", nil, values("0:0::1"), "[::1]:9000", "gateway:0:0::1"},
		{"IPv6 bare host", nil, values("[::1]"), "::1", "gateway:[::1]"},
		{"IPv6 other address", nil, values("[::1]"), "[::2]", ""},
		{"IPv4-mapped IPv6", nil, values("10.0.0.1"), "[::ffff:10.0.0.1]:8443", "gateway:10.0.0.1"},
		{"IPv4 trailing dot", nil, values("10.0.0.1"), "10.0.0.1.", "gateway:10.0.0.1"},
	})
}

func TestResolveMatching(t *testing.T) {
	runResolveCases(t, []resolveCase{
		// '*' alone is the default of its map: every host, IPs included.
		{"default matches names", nil, values("*"), "anything.example.org:1234", "gateway:*"},
		{"default matches IPv4", nil, values("*"), "10.1.2.3", "gateway:*"},
		{"default matches IPv6", values("*"), nil, "[fd00::1]:8443", "api:*"},
		{"default with trailing dot", values("*."), nil, "x.y", "api:*."},
		// '*' as a label: exactly one non-empty label, in any position.
		{"left wildcard", nil, values("*.production.myservice.com:8443"), "api.production.myservice.com:8443", "gateway:*.production.myservice.com:8443"},
		{"middle wildcard", nil, values("api.*.myservice.com:8443"), "api.production.myservice.com:8443", "gateway:api.*.myservice.com:8443"},
		{"right wildcard", nil, values("api.example.*"), "api.example.org", "gateway:api.example.*"},
		{"two wildcards", nil, values("*.*.example.com"), "a.b.example.com", "gateway:*.*.example.com"},
		{"wildcard is one label, not two", nil, values("*.myservice.com:8443"), "api.production.myservice.com:8443", ""},
		{"wildcard is not zero labels", nil, values("*.example.com"), "example.com", ""},
		{"middle wildcard needs its literal labels", nil, values("api.*.myservice.com"), "web.production.myservice.com", ""},
		{"wildcard label is not a suffix match", nil, values("*.example.com"), "a.notexample.com", ""},
		{"wildcard is case-insensitive", nil, values("*.Example.COM"), "API.example.com", "gateway:*.Example.COM"},
		// Wildcards never match IP addresses; IPs match exact IPs and '*'.
		{"wildcards do not match IPv4", nil, values("*.*.*.*", "*.0.0.example"), "10.0.0.1", ""},
		{"IPv4 exact", nil, values("10.0.0.1"), "10.0.0.1:8443", "gateway:10.0.0.1"},
		{"IPv4 exact with port", nil, values("10.0.0.1:8443"), "10.0.0.1:9443", ""},
		{"all-wildcard pattern matches names", nil, values("*.*.*.*"), "a.b.c.d", "gateway:*.*.*.*"},
		// Ports: without a port, any port; with a port, 443 included, that port only.
		{"no port matches any port", nil, values("api.example.com"), "api.example.com:8443", "gateway:api.example.com"},
		{"443 matches no port", nil, values("api.example.com:443"), "api.example.com", "gateway:api.example.com:443"},
		{"443 matches 443", nil, values("api.example.com:443"), "api.example.com:443", "gateway:api.example.com:443"},
		{"443 does not match 8443", nil, values("api.example.com:443"), "api.example.com:8443", ""},
		{"8443 does not match no port", nil, values("api.example.com:8443"), "api.example.com", ""},
		{"wildcard with port", nil, values("*.example.com:8443"), "a.example.com:8443", "gateway:*.example.com:8443"},
		{"wildcard with other port", nil, values("*.example.com:8443"), "a.example.com:9443", ""},
		{"no match", nil, values("api.example.com", "*.example.org"), "web.example.com", ""},
	})
}

func TestResolvePrecedence(t *testing.T) {
	all := func() (Map, Map) {
		return values("api.example.com", "*"), values("api.example.com", "*")
	}
	api, gw := all()
	runResolveCases(t, []resolveCase{
		// The four tiers.
		{"1. API specific", api, gw, "api.example.com", "api:api.example.com"},
		{"2. API default", api, gw, "web.example.com", "api:*"},
		{"3. gateway specific", values("other.example.com"), gw, "api.example.com", "gateway:api.example.com"},
		{"4. gateway default", values("other.example.com"), gw, "web.example.com", "gateway:*"},
		{"API wildcard beats gateway exact", values("*.example.com"), values("api.example.com:443"), "api.example.com", "api:*.example.com"},
		{"API default beats gateway exact with port", values("*"), values("api.example.com:443"), "api.example.com", "api:*"},
		{"API specific with the wrong port falls to gateway", values("api.example.com:8443"), values("api.example.com"), "api.example.com", "gateway:api.example.com"},
		{"API wildcard with the wrong port falls to API default", values("*.example.com:8443", "*"), values("api.example.com"), "api.example.com", "api:*"},
		// Within one level: exact beats wildcards, with a port beats without.
		{"exact beats wildcard", nil, values("api.example.com", "*.example.com:443"), "api.example.com", "gateway:api.example.com"},
		{"exact beats wildcard with more labels", nil, values("a.b.example.com", "*.b.example.com:443"), "a.b.example.com:443", "gateway:a.b.example.com"},
		{"exact with port beats exact without", nil, values("api.example.com", "api.example.com:8443"), "api.example.com:8443", "gateway:api.example.com:8443"},
		{"exact without port for another port", nil, values("api.example.com", "api.example.com:8443"), "api.example.com:9443", "gateway:api.example.com"},
		{"exact 443 beats exact without port", values("api.example.com", "api.example.com:443"), nil, "api.example.com", "api:api.example.com:443"},
		// Between wildcards: 1. longer literal run from the right.
		{"longer literal run from the right", nil, values("*.production.myservice.com", "api.*.myservice.com"), "api.production.myservice.com", "gateway:*.production.myservice.com"},
		{"longer literal run beats port", nil, values("*.production.myservice.com", "api.*.myservice.com:8443"), "api.production.myservice.com:8443", "gateway:*.production.myservice.com"},
		{"longer literal run beats fewer wildcards", nil, values("*.*.c.example.com", "a.b.*.example.com"), "a.b.c.example.com", "gateway:*.*.c.example.com"},
		{"right wildcard loses to left", nil, values("api.example.*", "*.example.com"), "api.example.com", "gateway:*.example.com"},
		// 2. then with a port.
		{"then with a port", nil, values("*.example.com", "*.example.com:8443"), "a.example.com:8443", "gateway:*.example.com:8443"},
		{"port beats fewer wildcards", nil, values("a.*.example.com", "*.*.example.com:8443"), "a.b.example.com:8443", "gateway:*.*.example.com:8443"},
		{"443 pattern counts as a port", nil, values("a.*.example.com", "*.*.example.com:443"), "a.b.example.com", "gateway:*.*.example.com:443"},
		// 3. then fewer wildcards.
		{"then fewer wildcards", nil, values("a.*.example.com", "*.*.example.com"), "a.b.example.com", "gateway:a.*.example.com"},
		// 4. then the normalised pattern that sorts first.
		{"then sorts first", nil, values("a.*.*.example.com", "*.b.*.example.com"), "a.b.c.example.com", "gateway:*.b.*.example.com"},
		{"sorts first, normalised", nil, values("A.*.*.x.com", "*.B.*.X.com."), "a.b.c.x.com", "gateway:*.B.*.X.com."},
		{"sorts first, with ports", nil, values("a.*.*.example.com:8443", "*.b.*.example.com:8443"), "a.b.c.example.com:8443", "gateway:*.b.*.example.com:8443"},
		// API wildcard, any tie-break, still beats everything at the gateway.
		{"weakest API wildcard beats gateway", values("*.*.*.*.com"), values("a.b.c.example.com:443"), "a.b.c.example.com", "api:*.*.*.*.com"},
	})
}

func TestResolveLongNamesAndManyPorts(t *testing.T) {
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + ".example.com" // longer than a record holds inline
	gw := Map{long: "long", "*." + long[64:]: "long-wild", "x.*." + long[64:]: "long-middle"}
	api := Map{}
	for port := 8000; port < 8040; port++ { // many ports on one name, at both levels
		gw["svc.example.com:"+strconv.Itoa(port)] = "gw" + strconv.Itoa(port)
		if port%2 == 0 {
			api["svc.example.com:"+strconv.Itoa(port)] = "api" + strconv.Itoa(port)
		}
	}
	gw["svc.example.com"] = "gw-any"
	r, err := NewResolver(api, gw)
	require.NoError(t, err)
	for host, want := range map[string]string{
		long:                        "long",
		strings.ToUpper(long) + ".": "long",
		"c" + long[1:]:              "long-wild",
		"x.y." + long[64:] + ":1":   "long-middle",
		"svc.example.com:8000":      "api8000",
		"svc.example.com:8001":      "gw8001",
		"svc.example.com:8038":      "api8038",
		"svc.example.com:8039":      "gw8039",
		"svc.example.com:8040":      "gw-any",
		"svc.example.com":           "gw-any",
	} {
		v, ok := r.Resolve(host)
		assert.True(t, ok, host)
		assert.Equal(t, want, v, host)
	}
	// Both levels on one name, a few ports.
	r, err = NewResolver(Map{"a.example.com:1": "api1", "*.example.com:2": "apiw2"},
		Map{"a.example.com": "gw", "a.example.com:2": "gw2", "a.example.com:3": "gw3", "*.example.com:2": "gww2"})
	require.NoError(t, err)
	for host, want := range map[string]string{"a.example.com:1": "api1", "a.example.com:2": "apiw2", "a.example.com:3": "gw3", "a.example.com:4": "gw"} {
		v, _ := r.Resolve(host)
		assert.Equal(t, want, v, host)
	}
}

func TestResolveDeterministic(t *testing.T) {
	patterns := []string{
		"api.example.com", "api.example.com:8443", "*.example.com", "*.example.com:8443", "api.*.com",
		"*.*.com", "*.*.com:8443", "a.*.*.example.com", "*.b.*.example.com", "*.*.c.example.com", "*",
		"10.0.0.1", "[::1]:8443", "x.*.example.com",
	}
	hosts := []string{
		"api.example.com", "api.example.com:8443", "web.example.com:8443", "a.b.c.example.com", "api.x.com",
		"x.y.com:8443", "10.0.0.1", "[::1]:8443", "x.y.example.com", "nothing",
	}
	want := map[string]Match{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		// Maps built in a different order each time, and a random split of
		// patterns between the levels that stays the same.
		api, gw := Map{}, Map{}
		for _, j := range rng.Perm(len(patterns)) {
			p := patterns[j]
			if j%3 == 0 {
				api[p] = "a" + p
			} else {
				gw[p] = "g" + p
			}
		}
		r, err := NewResolver(api, gw)
		require.NoError(t, err)
		for _, h := range hosts {
			m, _ := r.Match(h)
			if i == 0 {
				want[h] = m
				continue
			}
			require.Equal(t, want[h], m, "host %q, build %d", h, i)
		}
	}
	// The first error is the same too.
	bad := Map{"a*.x": "1", "b*.x": "2", "c/x": "3", "https://d": "4"}
	_, first := NewResolver(bad, nil)
	for range 50 {
		_, err := NewResolver(bad, nil)
		require.EqualError(t, err, first.Error())
	}
}

func TestMatchReportsPatternAndLevel(t *testing.T) {
	r, err := NewResolver(Map{"API.example.com.:8443": "cert-a"}, Map{"*.example.com": "cert-g", "*": "cert-d"})
	require.NoError(t, err)
	got := map[string]Match{}
	for _, h := range []string{"api.example.com:8443", "api.example.com", "10.0.0.1"} {
		got[h], _ = r.Match(h)
	}
	want := map[string]Match{
		"api.example.com:8443": {Value: "cert-a", Pattern: "API.example.com.:8443", Level: LevelAPI},
		"api.example.com":      {Value: "cert-g", Pattern: "*.example.com", Level: LevelGateway},
		"10.0.0.1":             {Value: "cert-d", Pattern: "*", Level: LevelGateway},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Match (-want +got):\n%s", diff)
	}
}

func TestLevelString(t *testing.T) {
	assert.Equal(t, "api", LevelAPI.String())
	assert.Equal(t, "gateway", LevelGateway.String())
	assert.Equal(t, "none", Level(0).String())
	assert.Equal(t, "Level(7)", Level(7).String())
	assert.Equal(t, "gateway", fmt.Sprint(LevelGateway))
}

// The request path, which parses a host once for both lookups, finds what
// Match finds.
func TestRequestPathAgreesWithMatch(t *testing.T) {
	r, err := NewResolver(values("api.example.com:8443", "*.example.com"), values("10.0.0.1", "[::1]:8443", "*"))
	require.NoError(t, err)
	for _, h := range []string{"API.example.com.:8443", "api.example.com", "a.example.com:1", "10.0.0.1", "[0::1]:8443", "[::1]", "x.y"} {
		want, wantOK := r.Match(h)
		got, ok, err := requestMatch(r, h)
		require.NoError(t, err, h)
		assert.Equal(t, wantOK, ok, h)
		assert.Equal(t, want, got, h)
	}
}

func TestResolveAllocs(t *testing.T) {
	api, gw, hosts := benchWorkload(1000)
	r, err := NewResolver(api, gw)
	require.NoError(t, err)
	normalised := []string{
		"svc1.team1.example.com", "svc1.team1.example.com:8443", "h1.team1.corp1.example.net",
		"api.x.region1.example.org:9443", "x.grp0.example.io:9443", "10.0.0.1", "10.0.0.1:8443",
		"[fd00::1]:8443", "::1", "miss.example.com", "a.b.c.d.e.f.g.h.i",
	}
	for _, h := range append(normalised, hosts[:200]...) {
		allocs := testing.AllocsPerRun(100, func() { r.Resolve(h) })
		assert.Zero(t, allocs, "Resolve(%q) allocates", h)
	}
	var h requestHost
	require.NoError(t, parseRequestHost("svc1.team1.example.com:8443", &h))
	assert.Zero(t, testing.AllocsPerRun(100, func() { r.t.Find(&h.parsed, h.key.port) }), "the request path's lookup allocates")
}

func TestResolveConcurrent(t *testing.T) {
	api, gw, hosts := benchWorkload(1000)
	r, err := NewResolver(api, gw)
	require.NoError(t, err)
	want := make([]Match, len(hosts))
	for i, h := range hosts {
		want[i], _ = r.Match(h)
	}
	done := make(chan bool)
	for g := range 8 {
		go func() {
			ok := true
			for i := g; i < len(hosts); i += 3 {
				m, _ := r.Match(hosts[i])
				ok = ok && m == want[i]
			}
			done <- ok
		}()
	}
	for range 8 {
		assert.True(t, <-done, "same answers from concurrent goroutines")
	}
}

func TestResolveInvalidHostNeverPanics(t *testing.T) {
	r, err := NewResolver(values("*.example.com", "api.example.com"), values("*"))
	require.NoError(t, err)
	for _, h := range []string{"", "[", "]", "[]", "[]:", ":", "::", ":::", "a:b:c", "*", "*.example.com", ".", "..",
		"a.", "\x00", "\xff.example.com", strings.Repeat("a.", 200), strings.Repeat(".", 300), "[::1]:99999"} {
		assert.NotPanics(t, func() { r.Match(h) }, h)
	}
	_, ok := r.Resolve("*.example.com")
	assert.False(t, ok, "'*' is not a host")
	_, ok = r.Resolve("a.")
	assert.True(t, ok, "a trailing dot alone is fine")
}

// Brackets hold an IPv6 address and nothing else: a name or an IPv4 address
// in brackets is not a valid host, and matches nothing, not even an exact
// pattern of the same text.
func TestResolveBracketsHoldIPv6Only(t *testing.T) {
	r, err := NewResolver(Map{"localhost": "L", "1.2.3.4": "IP4", "fd00::1": "V6"}, Map{"*": "DEF"})
	require.NoError(t, err)
	for _, h := range []string{"[localhost]", "[localhost]:8443", "[1.2.3.4]", "[1.2.3.4]:443", "[::ffff:1.2.3.4]x"} {
		m, ok := r.Match(h)
		assert.False(t, ok, "%s matched %+v", h, m)
	}
	for h, want := range map[string]string{"localhost": "L", "1.2.3.4": "IP4", "[::ffff:1.2.3.4]": "IP4", "[FD00::1]:8443": "V6", "fd00:0::1": "V6"} {
		v, ok := r.Resolve(h)
		assert.True(t, ok, h)
		assert.Equal(t, want, v, h)
	}
}
