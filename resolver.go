package mtls

import (
	"errors"
	"strconv"

	"github.com/mtlsgo/mtls/internal/hostmatch"
)

// Map maps host patterns to values: certificate references or pin lists.
// See [NewResolver] for the pattern syntax and [Policy] for the values.
type Map map[string]string

// Level says which map a pattern came from. The zero Level is no level: the
// Level of a Match that did not match.
type Level uint8

// Levels, in precedence order: an API level's patterns win over the gateway's.
const (
	// LevelAPI is the map of one API, route or service.
	LevelAPI Level = iota + 1
	// LevelGateway is the map that applies to every API.
	LevelGateway
)

// String returns "api", "gateway", or "none" for the zero Level.
func (l Level) String() string {
	switch l {
	case 0:
		return "none"
	case LevelAPI:
		return "api"
	case LevelGateway:
		return "gateway"
	}
	return "Level(" + strconv.Itoa(int(l)) + ")"
}

// Match tells which pattern a host matched. The zero Match is no match.
type Match struct {
	// Value is the pattern's value in its Map.
	Value string
	// Pattern is the pattern as written in the Map. When several patterns
	// normalise alike (and carry the same value), it is the one that sorts
	// first.
	Pattern string
	// Level is the map the pattern came from.
	Level Level
}

// A Resolver finds the value that applies to a host, from an API-level Map
// (one API, route or service) and a gateway-level Map (every API). Make one
// with [NewResolver]. It is immutable and safe for concurrent use; a nil
// *Resolver and the zero Resolver match nothing.
//
// Matching: '*' alone matches every host. '*' as a label matches exactly one
// non-empty label, in any position: "*.example.com" and "api.*.com" match
// "api.example.com", while "*.example.com" matches neither "example.com" nor
// "a.b.example.com". Wildcards never match IP addresses, which match exact
// IP patterns and '*' only. A pattern without a port matches any port; one
// with a port, 443 included, only that port ("api.example.com:443" matches
// "api.example.com" and "api.example.com:443", not "api.example.com:8443").
//
// Precedence, highest first: 1. an API level pattern other than '*'; 2. the
// API level '*'; 3. a gateway level pattern other than '*'; 4. the gateway
// level '*'. Within one level, an exact host beats any wildcard, and a
// pattern with a port beats the same without. Between wildcards, the longer
// run of literal labels counted from the right wins ("*.prod.example.com"
// beats "api.*.example.com"), then the one with a port, then the one with
// fewer wildcards, then the normalised pattern that sorts first. The order of
// the maps never matters.
type Resolver struct {
	t *hostmatch.Table
}

// NewResolver compiles an API-level and a gateway-level Map; either may be
// nil, and then matches nothing. A pattern is a host, optionally with
// ":port": a DNS name, an IPv4 address or an IPv6 address (bracketed when a
// port follows, as in "[::1]:8443"), in which '*' stands for one whole
// label; or '*' alone, the default of its map. Patterns are normalised like
// hosts (see [Resolver.Resolve]). A name whose labels are all digits is an
// IPv4 address and must be a valid one ("1.2.3" and "010.0.0.1" are
// rejected); internationalised names are written in their xn-- form; IPv6
// zones are not supported.
//
// The error wraps [ErrInvalidPattern] and names the pattern and its level
// for a pattern that has a scheme or a path, an empty label, a '*' inside a
// label, a port that is not a number in 1-65535, '*' with a port, characters
// other than ASCII letters, digits, '-', '_' and '.', a label over 63 bytes,
// a name over 253 bytes, a wildcard in an IP address, or that is empty; and
// for two patterns of one map that normalise alike but carry different
// values. Patterns are checked in sorted order, so the error is the same for
// the same maps. A pattern is quoted in the error only when it is short and
// holds no PEM: a key pasted by mistake never reaches a log.
func NewResolver(api, gateway Map) (*Resolver, error) {
	t, err := hostmatch.Compile(api, gateway)
	if err != nil {
		return nil, patternError(err)
	}
	return &Resolver{t: t}, nil
}

// patternError reports an error of hostmatch.Compile.
func patternError(err error) error {
	var pe *hostmatch.Error
	if !errors.As(err, &pe) {
		return errorf("%w", err)
	}
	if pe.Same != "" {
		return errorf("%w %s (%s level): same host as %s, with a different value",
			ErrInvalidPattern, quotePattern(pe.Pattern), Level(pe.Level), quotePattern(pe.Same))
	}
	return errorf("%w %s (%s level): %s", ErrInvalidPattern, quotePattern(pe.Pattern), Level(pe.Level), pe.Reason)
}

// Resolve returns the value of the pattern that applies to host, and whether
// one does. host is what a request targets, req.URL.Host (not req.Host): a
// DNS name or an IP address, optionally with ":port". It is normalised like
// the patterns: lowercase, one trailing dot removed, IPv6 in canonical form
// with or without brackets (a bare IPv6 address has no port), an IPv4-mapped
// IPv6 address taken as its IPv4 address, and no port meaning port 443. A
// host that is not valid matches nothing, not even '*'. Resolve does not
// allocate for a host already in normal form.
func (r *Resolver) Resolve(host string) (value string, ok bool) {
	m, ok := r.Match(host)
	return m.Value, ok
}

// Match is [Resolver.Resolve] that also tells which pattern matched, and at
// which level, for tools and logs.
func (r *Resolver) Match(host string) (Match, bool) {
	if r == nil {
		return Match{}, false
	}
	return r.match(r.t.Match(host))
}

// match returns the Match of pattern i of the table, -1 for none.
func (r *Resolver) match(i int) (Match, bool) {
	if i < 0 {
		return Match{}, false
	}
	p := r.t.Patterns()[i]
	return Match{Value: p.Value, Pattern: p.Text, Level: Level(p.Level)}, true
}
