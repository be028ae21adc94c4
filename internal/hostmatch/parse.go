package hostmatch

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Parsing and normal form, of patterns and hosts alike.
//
// Rejected (the reasons Parse and ParsePattern return): a scheme, a path, an
// empty label, a '*' inside a label, a port that is not a number in 1-65535,
// '*:PORT'; and the rules decided for this package: ASCII letters, digits,
// '-', '_' and '.' only (internationalised names in their xn-- form),
// labels of at most 63 bytes, names of at most 253, no empty pattern, no
// wildcard in an IP address.
//
// IP literals: a name whose labels are all decimal digits (or '*', with at
// least one digit) is an IPv4 address and must be a valid one, four parts
// without leading zeros ("1.2.3" and "010.0.0.1" are rejected rather than
// guessed at). An IPv4-mapped IPv6 address is its IPv4 address; IPv6 zones
// are rejected. A bare IPv6 literal ("::1") has no port: "[::1]:8443" has.

const (
	maxName   = 253 // bytes in a DNS name, trailing dot removed
	maxLabel  = 63  // bytes in a label
	maxLabels = (maxName + 1) / 2
)

// Host is a host or a pattern in normal form.
type Host struct {
	name      string // lowercase, no trailing dot, IPv6 canonical without brackets; "*" for the default
	port      uint16 // 0 when none was written
	ip        bool   // name is an IP address
	wild      bool   // name has a '*' label
	isDefault bool   // the pattern is '*' alone
	labels    int    // labels of a DNS name, 0 for an IP address

	// lazyIPv6, set by Match before parsing, leaves an IPv6 literal as
	// written, for canonicalIPv6 to check and canonicalise when it is not an
	// exact pattern as written: formatting an address costs more than a
	// probe. Only a literal with a ':' is left so: the stored names that
	// have one are IPv6 addresses in canonical form, so a literal equal to
	// one of them is valid ("[localhost]" equal to "localhost" would not be).
	lazyIPv6 bool

	// sum is the hash of the name before its final mix (see labelHash).
	sum uint64

	// Label i of a DNS name is name[offs[i]:offs[i+1]-1].
	offs [maxLabels + 1]uint8
}

// Name returns the name in normal form: an IPv6 address without brackets.
func (h *Host) Name() string { return h.name }

// Port returns the port written, 0 for none.
func (h *Host) Port() uint16 { return h.port }

// IsIP reports whether the name is an IP address.
func (h *Host) IsIP() bool { return h.ip }

// IsDefault reports whether a pattern is '*' alone.
func (h *Host) IsDefault() bool { return h.isDefault }

// String returns the host in normal form, "name" or "name:port", with an
// IPv6 name in brackets when a port follows.
func (h *Host) String() string {
	if h.port == 0 {
		return h.name
	}
	name := h.name
	if strings.IndexByte(name, ':') >= 0 {
		name = "[" + name + "]"
	}
	return name + ":" + strconv.Itoa(int(h.port))
}

// label returns labels [a, b) of a DNS name, without the dot after them.
func (h *Host) label(a, b int) string { return h.name[h.offs[a] : h.offs[b]-1] }

// Parse normalises a host, a DNS name or an IP literal with an optional
// ":port", into h, and returns why it is not valid, or "". It allocates only
// to lowercase a name and to canonicalise an IPv6 literal not written
// canonically.
func (h *Host) Parse(s string) string { return h.parse(s, false) }

// ParsePattern is Parse for a pattern, in which '*' may stand for one label
// or, alone, for every host.
func (h *Host) ParsePattern(s string) string { return h.parse(s, true) }

func (h *Host) parse(s string, pattern bool) string {
	reason := h.parseAny(s, pattern)
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

func (h *Host) parseAny(s string, pattern bool) (reason string) {
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
func (h *Host) canonicalIPv6() (changed bool, reason string) {
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
func (h *Host) parseName(s string, pattern bool) string {
	s = strings.TrimSuffix(s, ".")
	switch {
	case s == "":
		return "empty name"
	case pattern && s == "*":
		if h.port != 0 {
			return "'*' with a port: use '*' alone, or a wildcard label as in '*.example.com:8443'"
		}
		h.name, h.isDefault = s, true
		return ""
	case len(s) > maxName:
		return "name longer than 253 bytes"
	}
	seen, n, reason := h.scanLabels(s)
	if reason != "" {
		return reason
	}
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
	h.name, h.labels = s, n
	return ""
}

// scanLabels makes one pass over a name, a label at a time: it returns the
// kinds of bytes seen and the number of labels, and records where labels
// start and the name's sum of label hashes (see labelHash).
func (h *Host) scanLabels(s string) (seen uint8, n int, reason string) {
	var sum uint64
	mul := hashMul
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
			return 0, 0, reason
		}
		sum = sum*sumBase + x
		n++
		h.offs[n] = uint8(i + 1)
		if i == len(s) {
			break
		}
	}
	h.sum = sum
	return seen, n, ""
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
