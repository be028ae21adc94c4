package hostmatch

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests of the pattern syntax (parse.go), hashing (hash.go) and wildcard masks
// (mask.go).

func TestParsePattern(t *testing.T) {
	tests := []struct {
		pattern string
		want    Host // offsets and sum not compared
	}{
		{"*", Host{name: "*", isDefault: true}},
		{"*.", Host{name: "*", isDefault: true}},
		{"API.Example.com.", Host{name: "api.example.com", labels: 3}},
		{"*.Example.com:8443", Host{name: "*.example.com", port: 8443, wild: true, labels: 3}},
		{"a.*.*.b", Host{name: "a.*.*.b", wild: true, labels: 4}},
		{"*.*", Host{name: "*.*", wild: true, labels: 2}},
		{"10.0.0.1:443", Host{name: "10.0.0.1", port: 443, ip: true}},
		{"[::1]", Host{name: "::1", ip: true}},
		{"example.123", Host{name: "example.123", labels: 2}},
		{strings.Repeat("a.", 126) + "a", Host{name: strings.Repeat("a.", 126) + "a", labels: 127}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			var h Host
			require.Empty(t, h.ParsePattern(tt.pattern))
			h.offs, h.sum = tt.want.offs, 0
			assert.Equal(t, tt.want, h)
		})
	}
}

func TestParseLabelOffsets(t *testing.T) {
	var h Host
	require.Empty(t, h.Parse("Ab.c.DEF.:8443"))
	require.Equal(t, 3, h.labels)
	assert.Equal(t, []string{"ab", "c", "def"}, []string{h.label(0, 1), h.label(1, 2), h.label(2, 3)})
	assert.Equal(t, "c.def", h.label(1, 3))
	assert.Equal(t, "ab.c.def", h.label(0, 3))
}

// TestNameSum checks the sum that scanLabels computes against
// labelHash, which the masks use.
func TestNameSum(t *testing.T) {
	for _, name := range []string{"a", "Ab.c_d.DEF.g", "x.y-z.example.com", strings.Repeat("ab.", 80) + "c"} {
		var h Host
		require.Empty(t, h.Parse(name), name)
		var want uint64
		for _, label := range strings.Split(strings.ToLower(name), ".") {
			want = want*sumBase + labelHash(label)
		}
		assert.Equal(t, want, h.sum, name)
	}
	assert.NotEqual(t, labelHash("a_b"), labelHash("a.b"))
	var a, b Host
	require.Empty(t, a.Parse("a.b"))
	require.Empty(t, b.Parse("a_b"))
	assert.NotEqual(t, a.sum, b.sum)
	assert.Equal(t, labelHash("AbC"), labelHash("abc"))
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
		var h Host
		reason := h.Parse(s)
		assert.Equal(t, err == nil && a.Is4(), reason == "", "%s: %s", s, reason)
		assert.Equal(t, err == nil && a.Is4(), h.ip, s)
	}
}

func TestMask(t *testing.T) {
	tests := []struct {
		pattern string
		shape   string
		stars   []uint8
		right   int
	}{
		{"*.example.com", "*.x.x", []uint8{0}, 2},
		{"api.*.example.com", "x.*.x.x", []uint8{1}, 2},
		{"api.example.*", "x.x.*", []uint8{2}, 0},
		{"*.*", "*.*", []uint8{0, 1}, 0},
		{"a.*.b.*.c.d", "x.*.x.*.x.x", []uint8{1, 3}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			var p Host
			require.Empty(t, p.ParsePattern(tt.pattern))
			m := newMask(&p)
			assert.Equal(t, tt.shape, m.shape)
			assert.Equal(t, tt.stars, m.stars)
			assert.Equal(t, tt.right, m.right)
		})
	}
}

// TestMaskMatches checks, for hosts of a pattern's label count, that
// mask.matches and mask.hash agree on which hosts the pattern matches.
func TestMaskMatches(t *testing.T) {
	for pattern, hosts := range map[string]map[string]bool{
		"api.*.Example.com:8443": {
			"api.x.example.com":                     true,
			"API.y.EXAMPLE.com.":                    true,
			"api.a-much-longer-label.example.com:1": true,
			"web.x.example.com":                     false,
			"api.x.example.org":                     false,
			"api.x.examplecom.x":                    false,
		},
		"api.*.example.*": {
			"api.x.example.com":   true,
			"api.yy.example.c":    true,
			"apix.y.example.com":  false,
			"ap.y.example.com":    false,
			"api.y.examplez.com":  false,
			"api.y.exampl.com":    false,
			"web.x.example.com":   false,
			"api.x.example.com.":  true, // trailing dot removed
			"API.X.EXAMPLE.COM":   true,
			"api.x.example.com:1": true,
		},
		"a.b.c.d.e.*.g": { // a '*' past the first labels
			"a.b.c.d.e.F.g":  true,
			"a.b.c.d.e.ff.g": true,
			"a.b.c.d.x.f.g":  false,
		},
	} {
		var p Host
		require.Empty(t, p.ParsePattern(pattern))
		m := newMask(&p)
		for host, want := range hosts {
			var h Host
			require.Empty(t, h.Parse(host), host)
			require.Equal(t, p.labels, h.labels, host)
			assert.Equal(t, want, m.matches(p.name, &h), "%s ~ %s", pattern, host)
			assert.Equal(t, want, m.hash(&h) == mix(p.sum), "%s ~ %s: hash", pattern, host)
		}
	}
	var p, h Host
	require.Empty(t, p.ParsePattern("api.*.example.*"))
	require.Empty(t, h.Parse("api.x.example.com"))
	m := newMask(&p)
	for _, pattern := range []string{"", "api.*", "api.*.example", "api.*.example.*.", "*.*.example.*", "api.x.example.com", "api.*.example.*x"} {
		assert.False(t, m.matches(pattern, &h), strconv.Quote(pattern))
	}
}

func TestMasksInPrecedenceOrder(t *testing.T) {
	r, err := Compile(map[string]string{"x.*.b.c": "1", "*.*.b.c": "2"},
		map[string]string{"*.a.b.c": "3", "x.y.z.*": "4", "*.*.*.c": "5"})
	require.NoError(t, err)
	var shapes [2][]string
	for i := range r.byLabels {
		for _, m := range r.byLabels[i][4] {
			shapes[i] = append(shapes[i], m.shape)
		}
	}
	assert.Equal(t, []string{"x.*.x.x", "*.*.x.x"}, shapes[0], "API level")
	assert.Equal(t, []string{"*.x.x.x", "x.*.x.x", "*.*.x.x", "*.*.*.x", "x.x.x.*"}, shapes[1], "all")
}
