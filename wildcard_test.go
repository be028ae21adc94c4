package mtls

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests of the pattern syntax and of wildcard masks (wildcard.go).

func TestParsePattern(t *testing.T) {
	tests := []struct {
		pattern string
		want    parsedHost // hashes and offsets not compared
	}{
		{"*", parsedHost{name: "*", def: true}},
		{"*.", parsedHost{name: "*", def: true}},
		{"API.Example.com.", parsedHost{name: "api.example.com", n: 3}},
		{"*.Example.com:8443", parsedHost{name: "*.example.com", port: 8443, wild: true, n: 3}},
		{"a.*.*.b", parsedHost{name: "a.*.*.b", wild: true, n: 4}},
		{"*.*", parsedHost{name: "*.*", wild: true, n: 2}},
		{"10.0.0.1:443", parsedHost{name: "10.0.0.1", port: 443, ip: true}},
		{"[::1]", parsedHost{name: "::1", ip: true}},
		{"example.123", parsedHost{name: "example.123", n: 2}},
		{strings.Repeat("a.", 126) + "a", parsedHost{name: strings.Repeat("a.", 126) + "a", n: 127}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			var h parsedHost
			require.Empty(t, h.parse(tt.pattern, true))
			h.hash, h.offs, h.ends = 0, tt.want.offs, tt.want.ends
			assert.Equal(t, tt.want, h)
		})
	}
}

func TestParseLabelOffsets(t *testing.T) {
	var h parsedHost
	require.Empty(t, h.parse("Ab.c.DEF.:8443", false))
	require.Equal(t, 3, h.n)
	assert.Equal(t, []string{"ab", "c", "def"}, []string{h.labels(0, 1), h.labels(1, 2), h.labels(2, 3)})
	assert.Equal(t, "c.def", h.labels(1, 3))
	assert.Equal(t, "ab.c.def", h.labels(0, 3))
}

func TestRunHash(t *testing.T) {
	var h parsedHost
	require.Empty(t, h.parse("Ab.c_d.DEF.g:8443", false))
	assert.Equal(t, polyHash("ab.c_d.def.g"), h.hash)
	for a := range h.n {
		for b := a + 1; b <= h.n; b++ {
			assert.Equal(t, uint32(polyHash(h.labels(a, b))), h.runHash(a, b), "labels %d-%d", a, b)
		}
	}
	var v6 parsedHost
	require.Empty(t, v6.parse("[FD00::1]", false))
	assert.Equal(t, polyHash("fd00::1"), v6.hash)
	assert.NotEqual(t, polyHash("a_b"), polyHash("ab"))
}

func TestParsePort(t *testing.T) {
	for s, want := range map[string]uint16{"1": 1, "443": 443, "0443": 443, "65535": 65535, "000000000000000000001": 1} {
		got, reason := parsePort(s)
		assert.Empty(t, reason, s)
		assert.Equal(t, want, got, s)
	}
	for s, reason := range map[string]string{"": "empty port", "0": "outside", "65536": "outside", "99999999999999999999999": "outside",
		"-1": "not a number", "+1": "not a number", "1a": "not a number", " 1": "not a number", "１": "not a number"} {
		_, got := parsePort(s)
		assert.Contains(t, got, reason, s)
	}
}

func TestIsIPv4AgreesWithNetip(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "1.2.3.4", "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4",
		"1.2.3.04", "1..3.4", ".1.2.3", "1.2.3.", "0000.1.1.1", "1234.1.1.1", "10.0.0.00", "9.9.9.9"} {
		a, err := netip.ParseAddr(s)
		var h parsedHost
		reason := h.parse(s, false)
		assert.Equal(t, err == nil && a.Is4(), reason == "", "%s: %s", s, reason)
		assert.Equal(t, err == nil && a.Is4(), h.ip, s)
	}
}

func TestMask(t *testing.T) {
	tests := []struct {
		pattern      string
		shape        string
		runs         []run
		right, wilds int
		key          string
	}{
		{"*.example.com", "*.x.x", []run{{1, 3}}, 2, 1, "example.com/"},
		{"api.*.example.com", "x.*.x.x", []run{{0, 1}, {2, 4}}, 2, 1, "api/example.com/"},
		{"api.example.*", "x.x.*", []run{{0, 2}}, 0, 1, "api.example/"},
		{"*.*", "*.*", nil, 0, 2, ""},
		{"a.*.b.*.c.d", "x.*.x.*.x.x", []run{{0, 1}, {2, 3}, {4, 6}}, 2, 2, "a/b/c.d/"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			var p parsedHost
			require.Empty(t, p.parse(tt.pattern, true))
			m := newMask(&p)
			assert.Equal(t, tt.shape, m.shape)
			assert.Equal(t, tt.runs, m.runs)
			assert.Equal(t, tt.right, m.right)
			assert.Equal(t, tt.wilds, m.wilds)
			assert.Equal(t, tt.key, m.key(&p))
			assert.True(t, m.keyMatches([]byte(tt.key), &p))
		})
	}
}

func TestMaskKeyMatches(t *testing.T) {
	var p parsedHost
	require.Empty(t, p.parse("api.*.example.com", true))
	m := newMask(&p)
	for host, want := range map[string]bool{
		"api.x.example.com":   true,
		"api.y.example.com":   true,
		"apix.y.example.com":  false,
		"api.y.example.co":    false,
		"api.y.example.comx":  false,
		"web.x.example.com":   false,
		"api.x.examplez.com":  false,
		"api.x.example.com.":  true, // trailing dot removed
		"API.X.EXAMPLE.COM":   true,
		"api.x.example.com:1": true,
	} {
		var h parsedHost
		require.Empty(t, h.parse(host, false), host)
		require.Equal(t, 4, h.n, host)
		assert.Equal(t, want, m.keyMatches([]byte(m.key(&p)), &h), host)
	}
	var h parsedHost
	require.Empty(t, h.parse("api.x.example.com", false))
	for _, key := range []string{"", "api/", "api/example.com", "api/example.com//", "api/example.comx/", "apiexample.com/"} {
		assert.False(t, m.keyMatches([]byte(key), &h), strconv.Quote(key))
	}
}

func TestMasksInPrecedenceOrder(t *testing.T) {
	r, err := NewResolver(values("x.*.b.c", "*.*.b.c"), values("*.a.b.c", "x.y.z.*", "*.*.*.c"))
	require.NoError(t, err)
	var shapes [2][]string
	for i := range r.masks {
		for _, m := range r.masks[i][4] {
			shapes[i] = append(shapes[i], m.shape)
		}
	}
	assert.Equal(t, []string{"x.*.x.x", "*.*.x.x"}, shapes[0], "API level")
	assert.Equal(t, []string{"*.x.x.x", "x.*.x.x", "*.*.x.x", "*.*.*.x", "x.x.x.*"}, shapes[1], "all")
}
