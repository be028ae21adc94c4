// Pattern syntax, normalisation, hashing and wildcard masks (contract
// section 2, "Resolving a host").
//
// Where each rule of the contract lives in this file:
//
//   - Normalisation, of patterns and hosts alike (lowercase, one trailing dot
//     removed, IPv6 in canonical form with or without brackets):
//     parsedHost.parse. "No port is port 443" is applied by its callers,
//     because a pattern without a port means any port.
//   - Rejections (ErrInvalidPattern, with the reason from parsedHost.parse):
//     scheme, path, empty label, '*' inside a label, a port that is not a
//     number in 1-65535, '*:PORT'; and the rules decided for this package:
//     ASCII letters, digits, '-', '_' and '.' only (internationalised names
//     in their xn-- form), labels of at most 63 bytes, names of at most 253,
//     no empty pattern, no wildcard in an IP address. Two patterns that
//     normalise alike with different values: NewResolver in resolver.go.
//   - IP literals: a name whose labels are all decimal digits (or '*', with
//     at least one digit) is an IPv4 address and must be a valid one, four
//     parts without leading zeros ("1.2.3" and "010.0.0.1" are rejected
//     rather than guessed at). An IPv4-mapped IPv6 address is its IPv4
//     address; IPv6 zones are rejected. A bare IPv6 literal ("::1") has no
//     port: write "[::1]:8443" for one.
//   - '*' as a label matches exactly one non-empty label, in any position,
//     and never an IP address: mask.
//
// parsedHost.parse scans a name once: it validates it, finds its labels and
// computes a polynomial hash whose value at each label end lets any run of
// labels be hashed in constant time (runHash), so that the resolver probes
// its table without building or rehashing strings.
package mtls

import (
	"fmt"
	"net/netip"
	"strings"
)

const (
	maxName   = 253 // bytes in a DNS name, trailing dot removed
	maxLabel  = 63  // bytes in a label
	maxLabels = (maxName + 1) / 2
)

// parsedHost is a normalised host or pattern.
type parsedHost struct {
	name string // lowercase, no trailing dot, IPv6 canonical without brackets; "*" for the default
	port uint16 // 0 when none was written
	ip   bool   // name is an IP address
	wild bool   // name has a '*' label
	def  bool   // the pattern is '*' alone
	n    int    // labels of a DNS name, 0 for an IP address
	hash uint64 // polyHash of name

	// lazyIPv6, set before parse, leaves an IPv6 literal as written, for
	// canonicalIPv6 to check and canonicalise when it is not an exact
	// pattern as written: formatting an address costs more than a probe.
	lazyIPv6 bool

	// Label i of a DNS name is name[offs[i]:offs[i+1]-1], and ends[i] is
	// the polyHash of name[:offs[i+1]-1], up to the end of label i, in 32
	// bits (the low half of the 64 bits: the same polynomial modulo 2^32).
	offs [maxLabels + 1]uint8
	ends [maxLabels + 1]uint32
}

// labels returns labels [a, b) of a DNS name, without the dot after them.
func (h *parsedHost) labels(a, b int) string { return h.name[h.offs[a] : h.offs[b]-1] }

// runHash returns the polyHash of labels [a, b), from the hashes of the
// label ends: hash(s[i:j]) = hash(s[:j]) - hash(s[:i]) * polyBase^(j-i).
func (h *parsedHost) runHash(a, b int) uint32 {
	var start uint32 // hash of name[:offs[a]], the dot after label a-1 included
	if a > 0 {
		start = h.ends[a-1]*polyBase32 + '.'
	}
	return h.ends[b-1] - start*polyPowers[h.offs[b]-1-h.offs[a]]
}

// polyHash is a polynomial hash of a name's bytes, case folded by setting
// bit 0x20, which keeps valid names apart: '_' becomes 0x7f, not in any name.
// It is computed in the scan of parseName, and lets runHash hash any run of
// labels in constant time. It is mixed before use; keys are compared anyway.
func polyHash(s string) uint64 {
	var x uint64
	for i := 0; i < len(s); i++ {
		x = x*polyBase + uint64(s[i]|0x20)
	}
	return x
}

const (
	polyBase   = 0x9e3779b97f4a7c15 // odd, and so is its low half
	polyBase32 = polyBase & 0xffffffff
)

var polyPowers = func() (p [maxName + 1]uint32) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * polyBase32
	}
	return p
}()

// mix is the finaliser of SplitMix64: it spreads every bit of x over all.
func mix(x uint64) uint64 {
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// parse normalises a host or, when pattern is true, a pattern, and returns
// why it is invalid when it is. It allocates only to lowercase a name, to
// canonicalise an IPv6 literal not written canonically, and to report an
// error.
func (h *parsedHost) parse(s string, pattern bool) string {
	reason := h.parse1(s, pattern)
	if reason != "" {
		// The checks reject '/' anyway; name the likely mistake.
		switch {
		case strings.Contains(s, "://"):
			reason = "has a scheme: write the host alone"
		case strings.IndexByte(s, '/') >= 0:
			reason = "has a path: write the host alone"
		}
	}
	return reason
}

func (h *parsedHost) parse1(s string, pattern bool) (reason string) {
	if s == "" {
		return "empty"
	}
	name, ipv6 := s, false
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "no closing ']'"
		}
		name, ipv6 = s[1:end], true
		if rest := s[end+1:]; rest != "" {
			if rest[0] != ':' {
				return "text after ']' that is not a port"
			}
			if h.port, reason = parsePort(rest[1:]); reason != "" {
				return reason
			}
		}
	} else if i := strings.IndexByte(s, ':'); i >= 0 {
		if strings.IndexByte(s[i+1:], ':') >= 0 {
			ipv6 = true // a bare IPv6 literal: it has no port
		} else {
			name = s[:i]
			if h.port, reason = parsePort(s[i+1:]); reason != "" {
				return reason
			}
		}
	}
	if ipv6 {
		h.ip = true
		if h.lazyIPv6 {
			h.name, h.hash = name, polyHash(name) // checked by canonicalIPv6
			return ""
		}
		h.name, reason = parseIPv6(name)
		h.hash = polyHash(h.name)
		return reason
	}
	h.lazyIPv6 = false
	return h.parseName(name, pattern)
}

// parsePort parses a decimal port in 1-65535.
func parsePort(s string) (uint16, string) {
	if s == "" {
		return 0, "empty port"
	}
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, "port is not a number"
		}
		v = min(v*10+int(c-'0'), 1<<16)
	}
	if v < 1 || v > 65535 {
		return 0, "port outside 1-65535"
	}
	return uint16(v), ""
}

// canonicalIPv6 checks and canonicalises an IPv6 literal left as written by
// a parse with lazyIPv6, and reports whether name changed.
func (h *parsedHost) canonicalIPv6() (changed bool, reason string) {
	h.lazyIPv6 = false
	name, reason := parseIPv6(h.name)
	if reason != "" || name == h.name {
		return false, reason
	}
	h.name, h.hash = name, polyHash(name)
	return true, ""
}

// parseIPv6 returns the canonical form of an IPv6 literal, or the IPv4
// address of an IPv4-mapped one. It does not allocate when s is canonical.
func parseIPv6(s string) (string, string) {
	if strings.IndexByte(s, '*') >= 0 {
		return "", "wildcard in an IP address"
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil || !a.Is6():
		return "", "not a valid IPv6 address"
	case a.Zone() != "":
		return "", "IPv6 zones are not supported"
	case a.Is4In6():
		return a.Unmap().String(), ""
	}
	var buf [64]byte
	if b := a.AppendTo(buf[:0]); string(b) != s {
		return string(b), ""
	}
	return s, ""
}

// Character classes of names.
const (
	cLetter = 1 << iota // a-z, '-', '_'
	cUpper              // A-Z
	cDigit
	cDot
	cStar
	cBad // anything else

	cDotShift = 3
)

var _ = [1]int{}[cDot-1<<cDotShift] // cDotShift is the bit of cDot

var classes = func() (t [256]uint8) {
	for c := range t {
		switch {
		case 'a' <= c && c <= 'z', c == '-', c == '_':
			t[c] = cLetter
		case 'A' <= c && c <= 'Z':
			t[c] = cUpper
		case '0' <= c && c <= '9':
			t[c] = cDigit
		case c == '.':
			t[c] = cDot
		case c == '*':
			t[c] = cStar
		default:
			t[c] = cBad
		}
	}
	return t
}()

// parseName parses a DNS name, a pattern of labels or an IPv4 address.
func (h *parsedHost) parseName(s string, pattern bool) string {
	s = strings.TrimSuffix(s, ".")
	switch {
	case s == "":
		return "empty name"
	case pattern && s == "*":
		if h.port != 0 {
			return "'*' with a port: use '*' alone, or a wildcard label as in '*.example.com:8443'"
		}
		h.name, h.def = s, true
		return ""
	case len(s) > maxName:
		return "name longer than 253 bytes"
	}
	// One pass without a branch per dot, which finds the labels and hashes
	// their ends: offs[0] takes the writes for other characters until it
	// is set at the end, and ends[n] is rewritten until label n ends.
	var seen uint8
	var hash uint64
	n := 0
	for i := 0; i < len(s); i++ {
		b := s[i]
		c := classes[b]
		seen |= c
		dot := int(c>>cDotShift) & 1
		h.offs[(n+1)&-dot&maxLabels] = uint8(i + 1)
		h.ends[n&maxLabels] = uint32(hash)
		hash = hash*polyBase + uint64(b|0x20)
		n += dot
	}
	if n >= maxLabels {
		return "empty label" // more dots than a name of 253 bytes can have
	}
	h.ends[n], h.hash = uint32(hash), hash
	n++
	h.offs[0], h.offs[n] = 0, uint8(len(s)+1)
	for i := range n {
		if l := h.offs[i+1] - h.offs[i] - 1; l == 0 {
			return "empty label"
		} else if l > maxLabel {
			return "label longer than 63 bytes"
		}
	}
	if seen&(cBad|cStar) != 0 {
		if reason := checkStarsAndBytes(s, pattern); reason != "" {
			return reason
		}
		h.wild = seen&cStar != 0
	}
	if seen&(cLetter|cUpper) == 0 && seen&cDigit != 0 { // digits, dots and '*': an IPv4 address
		switch {
		case h.wild:
			return "wildcard in an IP address"
		case !isIPv4(s, n, &h.offs):
			return "not a valid IPv4 address"
		}
		h.ip, n = true, 0
	}
	if seen&cUpper != 0 {
		s = strings.ToLower(s)
	}
	h.name, h.n = s, n
	return ""
}

// checkStarsAndBytes reports a character that is not allowed, or a '*' that
// is not a whole label of a pattern.
func checkStarsAndBytes(s string, pattern bool) string {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 0x80:
			return "non-ASCII character: write internationalised names in their xn-- form"
		case classes[c] == cBad, c == '*' && !pattern:
			return fmt.Sprintf("invalid character %q", c)
		case c == '*' && (i > 0 && s[i-1] != '.' || i+1 < len(s) && s[i+1] != '.'):
			return "'*' inside a label: '*' stands for a whole label"
		}
	}
	return ""
}

// isIPv4 reports whether a name of digits and dots, whose labels are at
// offs, is an IPv4 address in dotted-quad form without leading zeros.
func isIPv4(s string, n int, offs *[maxLabels + 1]uint8) bool {
	if n != 4 {
		return false
	}
	for i := range 4 {
		label := s[offs[i] : offs[i+1]-1]
		switch len(label) {
		case 1:
		case 2:
			if label[0] == '0' {
				return false
			}
		case 3:
			if label[0] == '0' || label > "255" {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// run is a range [a, b) of literal labels.
type run struct{ a, b uint8 }

// mask is the shape of wildcard patterns: their label count and where their
// '*' labels are. For one mask, a host's labels at the literal positions
// name at most one pattern, so a host is looked up once per mask of its
// label count, however many patterns there are.
type mask struct {
	id    uint64 // mixed into the hash of the literal runs
	runs  []run  // the runs of literal labels
	right int    // literal labels right of the rightmost '*'
	wilds int    // '*' labels
	shape string // the pattern with literal labels as "x", to sort masks
	api   bool   // some API level pattern has this mask
}

// newMask returns the mask of a wildcard pattern.
func newMask(h *parsedHost) *mask {
	m := &mask{}
	shape := make([]byte, 0, 2*h.n)
	for i := range h.n {
		if i > 0 {
			shape = append(shape, '.')
		}
		if h.labels(i, i+1) == "*" {
			shape = append(shape, '*')
			m.wilds, m.right = m.wilds+1, 0
			continue
		}
		shape = append(shape, 'x')
		m.right++
		if i == 0 || h.labels(i-1, i) == "*" {
			m.runs = append(m.runs, run{uint8(i), uint8(i + 1)})
		} else {
			m.runs[len(m.runs)-1].b++
		}
	}
	m.shape = string(shape)
	return m
}

// hash returns the hash of a host's labels at the literal positions of m.
func (m *mask) hash(seed uint64, h *parsedHost) uint64 {
	x := seed ^ m.id
	for _, r := range m.runs {
		x = mix(x + uint64(h.runHash(int(r.a), int(r.b))))
	}
	return x
}

// key returns a host's literal runs for m, each followed by '/'. It is used
// when the resolver is built; lookups compare with keyMatches.
func (m *mask) key(h *parsedHost) string {
	var b strings.Builder
	for _, r := range m.runs {
		b.WriteString(h.labels(int(r.a), int(r.b)))
		b.WriteByte('/')
	}
	return b.String()
}

// keyMatches reports whether key is m.key(h), without building it.
func (m *mask) keyMatches(key []byte, h *parsedHost) bool {
	for _, r := range m.runs {
		s := h.labels(int(r.a), int(r.b))
		if len(key) <= len(s) || string(key[:len(s)]) != s || key[len(s)] != '/' {
			return false
		}
		key = key[len(s)+1:]
	}
	return len(key) == 0
}
