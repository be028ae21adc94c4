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
// hashes it (see labelHash), so that the resolver probes its table for the
// host and for the patterns of each mask the host could match (mask.hash)
// without building strings.
package mtls

import (
	"fmt"
	"math/rand/v2"
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

	// lazyIPv6, set before parse, leaves an IPv6 literal as written, for
	// canonicalIPv6 to check and canonicalise when it is not an exact
	// pattern as written: formatting an address costs more than a probe.
	// Only a literal with a ':' is left so: the stored names that have one
	// are IPv6 addresses in canonical form, so a literal equal to one of
	// them is valid ("[localhost]" equal to "localhost" would not be).
	lazyIPv6 bool

	// sum is the hash of the name before its final mix (see labelHash).
	sum uint64

	// Label i of a DNS name is name[offs[i]:offs[i+1]-1].
	offs [maxLabels + 1]uint8
}

// labels returns labels [a, b) of a DNS name, without the dot after them.
func (h *parsedHost) labels(a, b int) string { return h.name[h.offs[a] : h.offs[b]-1] }

// Hashing. The resolver's table is keyed by names: exact names, and
// wildcard patterns in normal form. A name of labels l0.l1...ln-1 hashes to
// the polynomial sum of its label hashes, labelHash(li) * sumBase^(n-1-i),
// so that the hash of a host with some labels replaced by '*' (what a mask
// probes for) is the host's sum plus one term per replaced label: the
// resolver hashes a host once, in the scan that validates it, and each mask
// in constant time, and builds no string. An IP address hashes as one
// label.

const sumBase = 0x9e3779b97f4a7c15 // odd

// hashMul is random per process and odd. Names whose hashes collide cost
// a comparison of keys, never a wrong match; a random multiplier keeps
// anyone from choosing patterns that all collide and so slow every lookup
// (labels of one byte hash to themselves, but there are few of them).
var hashMul = rand.Uint64() | 1

// sumPowers[i] is sumBase^i.
var sumPowers = func() (p [maxLabels]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * sumBase
	}
	return p
}()

// starHash is the labelHash of '*'.
var starHash = labelHash("*")

// labelHash returns the hash of a label, case folded by setting bit 0x20,
// which keeps the bytes of names apart ('_' becomes 0x7f, not in a name).
// parseName computes the same in its scan.
func labelHash(s string) uint64 {
	var x uint64
	for i := 0; i < len(s); i++ {
		x = x*hashMul + uint64(s[i]|0x20)
	}
	return x
}

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
		if h.lazyIPv6 && strings.IndexByte(name, ':') >= 0 {
			h.name, h.sum = name, labelHash(name) // checked by canonicalIPv6
			return ""
		}
		h.name, reason = parseIPv6(name)
		h.sum = labelHash(h.name)
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
	h.name, h.sum = name, labelHash(name)
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

// Kinds of bytes in names.
const (
	kLetter = 1 << iota // a-z, A-Z, '-', '_'
	kUpper              // A-Z
	kDigit
	kDot // never met by the scan, which stops at dots; allowed all the same
	kStar
	kOther
)

var kinds = func() (t [256]uint8) {
	for c := range t {
		switch {
		case 'a' <= c && c <= 'z', c == '-', c == '_':
			t[c] = kLetter
		case 'A' <= c && c <= 'Z':
			t[c] = kLetter | kUpper
		case '0' <= c && c <= '9':
			t[c] = kDigit
		case c == '.':
			t[c] = kDot
		case c == '*':
			t[c] = kStar
		default:
			t[c] = kOther
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
	// One pass, a label at a time: the kinds of bytes, where labels start,
	// and the name's sum of label hashes (see labelHash).
	var seen uint8
	var sum uint64
	n, mul := 0, hashMul
	h.offs[0] = 0
	for i := 0; ; i++ {
		start := i
		var x uint64 // labelHash of the label, as it goes
		for ; i < len(s) && s[i] != '.'; i++ {
			c := s[i]
			seen |= kinds[c]
			x = x*mul + uint64(c|0x20)
		}
		if reason := checkLabel(i - start); reason != "" {
			return reason
		}
		sum = sum*sumBase + x
		n++
		h.offs[n] = uint8(i + 1)
		if i == len(s) {
			break
		}
	}
	h.sum = sum
	if seen&(kOther|kStar) != 0 {
		if reason := checkStarsAndBytes(s, pattern); reason != "" {
			return reason
		}
		h.wild = seen&kStar != 0
	}
	if seen&(kLetter|kDigit) == kDigit { // digits, dots and '*': an IPv4 address
		switch {
		case h.wild:
			return "wildcard in an IP address"
		case !isIPv4(s, n, &h.offs):
			return "not a valid IPv4 address"
		}
		h.ip, n, h.sum = true, 0, labelHash(s) // as an IPv4-mapped IPv6 address hashes
	}
	if seen&kUpper != 0 {
		s = strings.ToLower(s)
	}
	h.name, h.n = s, n
	return ""
}

// checkLabel reports a label of l bytes that is empty or too long.
func checkLabel(l int) string {
	switch {
	case l == 0:
		return "empty label"
	case l > maxLabel:
		return "label longer than 63 bytes"
	}
	return ""
}

// checkStarsAndBytes reports a character that is not allowed, or a '*' that
// is not a whole label of a pattern.
func checkStarsAndBytes(s string, pattern bool) string {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 0x80:
			return "non-ASCII character: write internationalised names in their xn-- form"
		case kinds[c] == kOther, c == '*' && !pattern:
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

// mask is the shape of wildcard patterns: their label count and where their
// '*' labels are. A host matches at most one pattern of a mask: its own name
// with '*' for the labels at the mask's positions. So a host is looked up
// once per mask of its label count, however many patterns there are.
type mask struct {
	stars []uint8 // positions of the '*' labels
	right int     // literal labels right of the rightmost '*'
	shape string  // the pattern with literal labels as "x", to sort masks
	api   bool    // some API level pattern has this mask
}

// newMask returns the mask of a wildcard pattern.
func newMask(p *parsedHost) *mask {
	m := &mask{}
	shape := make([]byte, 0, 2*p.n)
	for i := range p.n {
		if i > 0 {
			shape = append(shape, '.')
		}
		if p.labels(i, i+1) == "*" {
			shape = append(shape, '*')
			m.stars, m.right = append(m.stars, uint8(i)), 0
		} else {
			shape = append(shape, 'x')
			m.right++
		}
	}
	m.shape = string(shape)
	return m
}

// hash returns the hash of the pattern of m that h would match: h's sum
// with starHash for the labels at m's positions (see labelHash).
func (m *mask) hash(h *parsedHost) uint64 {
	x := h.sum
	for _, i := range m.stars {
		label := labelHash(h.labels(int(i), int(i)+1))
		x += (starHash - label) * sumPowers[h.n-1-int(i)]
	}
	return mix(x)
}

// matches reports whether pattern, of mask m, is h's name with '*' for
// the labels at m's positions.
func (m *mask) matches(pattern string, h *parsedHost) bool {
	from := 0 // the host's text not compared yet starts here
	for _, i := range m.stars {
		lit := h.name[from:h.offs[i]] // the labels before label i, with their dots
		if !strings.HasPrefix(pattern, lit) || !strings.HasPrefix(pattern[len(lit):], "*") {
			return false
		}
		pattern = pattern[len(lit)+1:]
		from = int(h.offs[i+1]) - 1 // the dot after label i, if any
	}
	return pattern == h.name[from:]
}
