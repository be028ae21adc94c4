// Host resolution (contract section 2, "Resolving a host"): which pattern of
// an API-level Map and a gateway-level Map applies to a request host.
//
// Where each rule of the contract lives:
//
//   - Normalisation (lowercase, trailing dot, port 443, IPv6 canonical form)
//     and the rejected patterns: parsedHost.parse in wildcard.go. Two
//     patterns of one map that normalise alike with different values:
//     NewResolver (with the same value: kept once, as the one that sorts
//     first).
//   - Matching: '*' alone is its map's default (Resolver.def); '*' as a label
//     matches one label (mask in wildcard.go); no port matches any port, a
//     port only that port (Resolver.entry).
//   - Precedence, API specific, API '*', gateway specific, gateway '*', and
//     exact host before wildcards: Resolver.find.
//   - Tie-breaks: exact with a port before without (Resolver.entry); between
//     wildcards, longer literal run from the right, then with a port, then
//     fewer wildcards, then the normalised pattern that sorts first
//     (rankWildcards, and the mask order of searchWild). Patterns are
//     processed in sorted order: nothing depends on map order.
//
// # Design
//
// NewResolver compiles both maps into one open-addressing hash table of
// records, one per exact name and one per wildcard pattern, keyed by the
// name in normal form. Each record holds the entries of both levels, by
// port. A lookup parses and hashes the host in one pass over its bytes, then
// probes its exact name and, once per mask (the shape of a wildcard
// pattern's '*' labels, see wildcard.go) of the host's label count, the
// pattern of that mask the host would match, whose hash is the host's with a
// term changed per '*' label. It builds no string and does not allocate for
// a host in normal form, and its cost depends on the variety of masks, not on
// the number of patterns. Wildcard entries carry a precomputed rank, so
// comparing two candidates is one comparison.
package mtls

import (
	"cmp"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

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
	tags  []uint8      // open addressing: 0 for an empty slot, else the tag of its record's hash
	used  []uint64     // bit i%64 of used[i/64] is set when slot i is used
	ranks []uint32     // ranks[g]: the used slots before slot 64*g
	recs  []record     // the records of the used slots, in slot order
	keys  []byte       // keys too long for record.short
	ents  []entry      // entries of names that have more than one
	masks [2][][]*mask // wildcard masks by label count, in precedence order: API level's, all
	def   [2]*entry    // the '*' of the API and of the gateway level
}

// record holds the patterns of one exact or wildcard name, at both levels,
// in two cache lines: what a probe compares, then the entry that most names
// have alone. Both are found from the record's index, so a processor loads
// them together.
type record struct {
	hash  uint64
	mask  *mask    // nil for an exact name
	klen  uint16   // length of the key: the name in normal form
	short [46]byte // the key, when it fits

	one  entry  // the entry, when the name has one
	long uint32 // the key is keys[long:long+klen] when it does not fit short
	more uint32 // the entries are ents[more:more+n] when n > 1
	n    uint32 // entries, by level then port, port 0 (any port) first
}

// key returns the key of rec.
func (r *Resolver) key(rec *record) []byte {
	if int(rec.klen) <= len(rec.short) {
		return rec.short[:rec.klen]
	}
	return r.keys[rec.long : rec.long+uint32(rec.klen)]
}

// entry is one pattern.
type entry struct {
	Match
	port  uint16 // 0: any port
	right uint8  // wildcards: literal labels right of the rightmost '*'
	rank  int32  // wildcards: precedence within the level, lower first
}

// entry returns the entry of rec for a level and a port: the one with that
// port, else the one without a port.
func (r *Resolver) entry(rec *record, level Level, port uint16) *entry {
	if rec.n == 1 {
		if e := &rec.one; e.Level == level && (e.port == port || e.port == 0) {
			return e
		}
		return nil
	}
	ents := r.ents[rec.more : rec.more+rec.n]
	if len(ents) > 8 { // many ports for one name: binary search
		for _, p := range [2]uint16{port, 0} {
			if i, ok := slices.BinarySearchFunc(ents, entry{Match: Match{Level: level}, port: p}, compareEntries); ok {
				return &ents[i]
			}
		}
		return nil
	}
	var anyPort *entry
	for i := range ents {
		if e := &ents[i]; e.Level == level {
			if e.port == port {
				return e
			}
			if e.port == 0 {
				anyPort = e
			}
		}
	}
	return anyPort
}

// compareEntries orders the entries of a record: by level, then port.
func compareEntries(a, b entry) int {
	return cmp.Or(cmp.Compare(a.Level, b.Level), cmp.Compare(a.port, b.port))
}

// get returns the record of hash h, mask m (nil: exact) and host ph. Most
// probes find no record: they read tags alone, a byte a slot, which stay in
// cache for tables of hundreds of thousands of names. A probe that finds
// one reads one record more: its index is the count of used slots before
// its slot, from used and ranks, which stay in cache too.
func (r *Resolver) get(h uint64, m *mask, ph *parsedHost) *record {
	if len(r.tags) == 0 {
		return nil // the zero Resolver
	}
	mask, tag := uint64(len(r.tags)-1), tagOf(h)
	for i := h & mask; r.tags[i] != 0; i = (i + 1) & mask {
		if r.tags[i] != tag {
			continue
		}
		rec := &r.recs[r.rank(i)]
		if rec.hash != h || rec.mask != m {
			continue
		}
		if key := r.key(rec); m == nil && string(key) == ph.name || m != nil && m.matches(string(key), ph) {
			return rec
		}
	}
	return nil
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
// the same maps.
func NewResolver(api, gateway Map) (*Resolver, error) {
	r := &Resolver{}
	masks := map[string]*mask{} // by shape
	index := map[string]int{}   // drafts by name
	var drafts []draft
	for li, m := range [2]Map{api, gateway} {
		level := Level(li + 1)
		type key struct {
			name string
			port uint16
		}
		seen := map[key]string{}
		var wild []wildEntry
		for _, pat := range slices.Sorted(maps.Keys(m)) {
			p := &parsedHost{}
			if reason := p.parse(pat, true); reason != "" {
				return nil, fmt.Errorf("%w %q (%s level): %s", ErrInvalidPattern, pat, level, reason)
			}
			if first, ok := seen[key{p.name, p.port}]; ok {
				if m[first] != m[pat] {
					return nil, fmt.Errorf("%w %q (%s level): same host as %q, with a different value",
						ErrInvalidPattern, pat, level, first)
				}
				continue
			}
			seen[key{p.name, p.port}] = pat
			e := entry{Match: Match{Value: m[pat], Pattern: pat, Level: level}, port: p.port}
			if p.def {
				r.def[li] = &e
				continue
			}
			var pm *mask
			if p.wild {
				pm = newMask(p)
				if known := masks[pm.shape]; known != nil {
					pm = known
				} else {
					masks[pm.shape] = pm
					r.masks[1] = addMask(r.masks[1], p.n, pm)
				}
				if li == 0 && !pm.api {
					pm.api = true
					r.masks[0] = addMask(r.masks[0], p.n, pm)
				}
			}
			ri, ok := index[p.name]
			if !ok {
				ri = len(drafts)
				index[p.name] = ri
				drafts = append(drafts, draft{hash: mix(p.sum), mask: pm, key: p.name})
			}
			if p.wild {
				e.right = uint8(pm.right)
				wild = append(wild, wildEntry{e, ri, len(pm.stars), normString(p)})
			} else {
				drafts[ri].ents = append(drafts[ri].ents, e)
			}
		}
		rankWildcards(wild)
		for _, w := range wild {
			drafts[w.rec].ents = append(drafts[w.rec].ents, w.entry)
		}
	}
	for _, byLen := range r.masks {
		for _, ms := range byLen {
			slices.SortFunc(ms, func(a, b *mask) int {
				return cmp.Or(cmp.Compare(b.right, a.right), cmp.Compare(len(a.stars), len(b.stars)), cmp.Compare(a.shape, b.shape))
			})
		}
	}
	r.place(drafts)
	return r, nil
}

// tagOf returns the tag of a record's hash in Resolver.tags: its top seven
// bits, never 0.
func tagOf(h uint64) uint8 { return uint8(h>>56) | 1 }

// addMask adds m to the masks of n labels.
func addMask(byLen [][]*mask, n int, m *mask) [][]*mask {
	for len(byLen) <= n {
		byLen = append(byLen, nil)
	}
	byLen[n] = append(byLen[n], m)
	return byLen
}

// draft is a record being built.
type draft struct {
	hash uint64
	mask *mask
	key  string
	ents []entry
}

// place makes the table: tags at most half full, and the records in slot
// order.
func (r *Resolver) place(drafts []draft) {
	size := max(64, 1<<bits.Len(uint(2*len(drafts))))
	r.tags = make([]uint8, size)
	r.used, r.ranks = make([]uint64, size/64), make([]uint32, size/64)
	slots := make([]int, len(drafts))
	for i, d := range drafts {
		j := int(d.hash) & (size - 1)
		for r.tags[j] != 0 {
			j = (j + 1) & (size - 1)
		}
		r.tags[j], slots[i] = tagOf(d.hash), j
		r.used[j/64] |= 1 << (j % 64)
	}
	for g := 1; g < len(r.ranks); g++ {
		r.ranks[g] = r.ranks[g-1] + uint32(bits.OnesCount64(r.used[g-1]))
	}
	inOrder := make([]draft, len(drafts))
	for i, d := range drafts {
		inOrder[r.rank(uint64(slots[i]))] = d
	}
	r.pack(inOrder)
}

// rank returns the index in recs of the record of used slot i: the number
// of used slots before it.
func (r *Resolver) rank(i uint64) uint32 {
	g := i / 64
	return r.ranks[g] + uint32(bits.OnesCount64(r.used[g]&(1<<(i%64)-1)))
}

// pack makes the records of the drafts.
func (r *Resolver) pack(drafts []draft) {
	r.recs = make([]record, len(drafts))
	for i, d := range drafts {
		slices.SortFunc(d.ents, compareEntries)
		rec := &r.recs[i]
		rec.hash, rec.mask, rec.klen, rec.n = d.hash, d.mask, uint16(len(d.key)), uint32(len(d.ents))
		if len(d.key) <= len(rec.short) {
			copy(rec.short[:], d.key)
		} else {
			rec.long = uint32(len(r.keys))
			r.keys = append(r.keys, d.key...)
		}
		if len(d.ents) == 1 {
			rec.one = d.ents[0]
		} else {
			rec.more = uint32(len(r.ents))
			r.ents = append(r.ents, d.ents...)
		}
	}
}

// wildEntry is a wildcard entry being ranked.
type wildEntry struct {
	entry
	rec   int // index of its record
	wilds int
	norm  string
}

// rankWildcards sets the rank of the wildcard entries of one level: longer
// literal run from the right first, then with a port, then fewer wildcards,
// then the normalised pattern that sorts first.
func rankWildcards(ws []wildEntry) {
	hasPort := func(w wildEntry) int {
		if w.port != 0 {
			return 0
		}
		return 1
	}
	slices.SortFunc(ws, func(a, b wildEntry) int {
		return cmp.Or(cmp.Compare(b.right, a.right), cmp.Compare(hasPort(a), hasPort(b)),
			cmp.Compare(a.wilds, b.wilds), cmp.Compare(a.norm, b.norm))
	})
	for i := range ws {
		ws[i].rank = int32(i)
	}
}

// normString returns a pattern in normal form: name, then ":port" if any,
// with an IPv6 name in brackets.
func normString(h *parsedHost) string {
	if h.port == 0 {
		return h.name
	}
	name := h.name
	if strings.IndexByte(name, ':') >= 0 {
		name = "[" + name + "]"
	}
	return name + ":" + strconv.Itoa(int(h.port))
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
	h := parsedHost{lazyIPv6: true}
	if r == nil || h.parse(host, false) != "" {
		return Match{}, false
	}
	return r.find(&h, h.port)
}

// normalizeHost normalises a request host (req.URL.Host: DNS name or IP
// literal, optional :port) per the contract: lowercase, one trailing dot
// removed, no port => 443, IPv6 canonical form (returned WITHOUT brackets in
// name). It returns an error naming the host for a host that is not valid.
func normalizeHost(host string) (name string, port uint16, err error) {
	var h parsedHost
	k, err := parseRequestHost(host, &h)
	return k.name, k.port, err
}

// parseRequestHost parses a request host into h, for lookupParsed, and
// returns it normalised: the lookups of one request parse its host once.
func parseRequestHost(host string, h *parsedHost) (hostKey, error) {
	if reason := h.parse(host, false); reason != "" {
		return hostKey{}, fmt.Errorf("mtls: invalid host %q: %s", host, reason)
	}
	return hostKey{h.name, cmp.Or(h.port, 443)}, nil
}

// lookup finds the pattern for a host name and port as returned by
// normalizeHost; port 0 is port 443. It does not allocate.
func (r *Resolver) lookup(name string, port uint16) (Match, bool) {
	h := parsedHost{lazyIPv6: true}
	if r == nil || h.parse(name, false) != "" || h.port != 0 {
		return Match{}, false
	}
	return r.find(&h, port)
}

// lookupParsed is lookup for a host that parseRequestHost parsed.
func (r *Resolver) lookupParsed(h *parsedHost, port uint16) (Match, bool) {
	if r == nil {
		return Match{}, false
	}
	return r.find(h, port)
}

// find finds the pattern for a parsed host. Precedence, highest first: API
// level exact name, API level wildcard, API level '*', then the same at the
// gateway level; an exact name's entry for the port before its port-less one.
func (r *Resolver) find(h *parsedHost, port uint16) (Match, bool) {
	if port == 0 {
		port = 443
	}
	rec := r.get(mix(h.sum), nil, h)
	if rec == nil && h.lazyIPv6 {
		// An IPv6 literal that is not an exact pattern as written: check it
		// and try again in canonical form. (IP addresses match exact
		// patterns and '*' only.)
		changed, reason := h.canonicalIPv6()
		if reason != "" {
			return Match{}, false
		}
		if changed {
			rec = r.get(mix(h.sum), nil, h)
		}
	}
	var gwExact *entry
	if rec != nil {
		if e := r.entry(rec, LevelAPI, port); e != nil {
			return e.Match, true
		}
		gwExact = r.entry(rec, LevelGateway, port)
	}
	gw := r.def[0] == nil && gwExact == nil // the gateway level's wildcards can answer
	api, gwWild := r.searchWild(h, port, gw)
	for _, e := range [...]*entry{api, r.def[0], gwExact, gwWild, r.def[1]} {
		if e != nil {
			return e.Match, true
		}
	}
	return Match{}, false
}

// searchWild returns the best wildcard entry of the API level and, when gw
// is true and the API level has none, of the gateway level, trying the
// masks of the host's label count in precedence order.
func (r *Resolver) searchWild(h *parsedHost, port uint16, gw bool) (api, gate *entry) {
	byLen := r.masks[0] // the masks of API level patterns
	if gw {
		byLen = r.masks[1]
	}
	if h.n >= len(byLen) {
		return nil, nil
	}
	for _, m := range byLen[h.n] {
		if api != nil && m.right < int(api.right) {
			break // no later mask can beat it: masks come longest literal suffix first
		}
		rec := r.get(m.hash(h), m, h)
		if rec == nil {
			continue
		}
		if e := r.entry(rec, LevelAPI, port); e != nil && (api == nil || e.rank < api.rank) {
			api = e
		}
		if gw && api == nil {
			if e := r.entry(rec, LevelGateway, port); e != nil && (gate == nil || e.rank < gate.rank) {
				gate = e
			}
		}
	}
	return api, gate
}
