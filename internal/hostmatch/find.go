package hostmatch

import "slices"

// Patterns returns the table's patterns, by the index Find returns. Of two
// patterns of one map that normalise alike (with the same value), only the
// one that sorts first is there. The caller must not modify the slice.
func (t *Table) Patterns() []Pattern {
	if t == nil {
		return nil
	}
	return t.patterns
}

// Default returns the index of the '*' pattern that applies to every host:
// the API level's, else the gateway level's, or -1.
func (t *Table) Default() int {
	if t == nil {
		return -1
	}
	if t.defaults[0] >= 0 {
		return int(t.defaults[0])
	}
	return int(t.defaults[1])
}

// Match parses host as Host.Parse does and returns the index of the pattern
// that applies to it, or -1. An IPv6 literal is canonicalised only when it is
// not an exact pattern as written.
func (t *Table) Match(host string) int {
	h := Host{lazyIPv6: true}
	if t == nil || h.parse(host, false) != "" {
		return -1
	}
	return t.Find(&h, h.port)
}

// Find returns the index of the pattern that applies to a host that Parse
// parsed, on port (0 is port 443), or -1. Precedence, highest first: API
// level exact name, API level wildcard, API level '*', then the same at the
// gateway level; an exact name's entry for the port before its port-less
// one. It does not allocate.
func (t *Table) Find(h *Host, port uint16) int {
	if t == nil {
		return -1
	}
	if port == 0 {
		port = 443
	}
	rec := t.get(mix(h.sum), nil, h)
	if rec == nil && h.lazyIPv6 {
		// An IPv6 literal that is not an exact pattern as written: check it
		// and try again in canonical form. (IP addresses match exact
		// patterns and '*' only.)
		changed, reason := h.canonicalIPv6()
		if reason != "" {
			return -1
		}
		if changed {
			rec = t.get(mix(h.sum), nil, h)
		}
	}
	var gwExact *entry
	if rec != nil {
		if e := t.entryFor(rec, 1, port); e != nil {
			return int(e.pattern)
		}
		gwExact = t.entryFor(rec, 2, port)
	}
	gw := t.defaults[0] < 0 && gwExact == nil // the gateway level's wildcards can answer
	api, gwWild := t.searchWild(h, port, gw)
	switch {
	case api != nil:
		return int(api.pattern)
	case t.defaults[0] >= 0:
		return int(t.defaults[0])
	case gwExact != nil:
		return int(gwExact.pattern)
	case gwWild != nil:
		return int(gwWild.pattern)
	}
	return int(t.defaults[1])
}

// searchWild returns the best wildcard entry of the API level and, when gw
// is true and the API level has none, of the gateway level, trying the
// masks of the host's label count in precedence order.
func (t *Table) searchWild(h *Host, port uint16, gw bool) (api, gate *entry) {
	byLen := t.byLabels[0] // the masks of API level patterns
	if gw {
		byLen = t.byLabels[1]
	}
	if h.labels >= len(byLen) {
		return nil, nil
	}
	for _, m := range byLen[h.labels] {
		if api != nil && m.right < int(api.right) {
			break // no later mask can beat it: masks come longest literal suffix first
		}
		rec := t.get(m.hash(h), m, h)
		if rec == nil {
			continue
		}
		if e := t.entryFor(rec, 1, port); e != nil && (api == nil || e.rank < api.rank) {
			api = e
		}
		if gw && api == nil {
			if e := t.entryFor(rec, 2, port); e != nil && (gate == nil || e.rank < gate.rank) {
				gate = e
			}
		}
	}
	return api, gate
}

// entryFor returns the entry of rec for a level and a port: the one with
// that port, else the one without a port.
func (t *Table) entryFor(rec *record, level uint8, port uint16) *entry {
	if rec.count == 1 {
		if e := &rec.only; e.level == level && (e.port == port || e.port == 0) {
			return e
		}
		return nil
	}
	ents := t.entries[rec.more : rec.more+rec.count]
	if len(ents) > 8 { // many ports for one name: binary search
		for _, p := range [2]uint16{port, 0} {
			if i, ok := slices.BinarySearchFunc(ents, entry{level: level, port: p}, compareEntries); ok {
				return &ents[i]
			}
		}
		return nil
	}
	var anyPort *entry
	for i := range ents {
		if e := &ents[i]; e.level == level {
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

// Tiers returns, for each step of the precedence (API level specific, API
// level '*', gateway level specific, gateway level '*'), the index of the
// pattern that step would give h on port, or -1: what Find chooses, and
// what it passed over, for tools that explain a choice.
func (t *Table) Tiers(h *Host, port uint16) [4]int {
	tiers := [4]int{-1, -1, -1, -1}
	if t == nil {
		return tiers
	}
	if port == 0 {
		port = 443
	}
	if h.lazyIPv6 {
		if _, reason := h.canonicalIPv6(); reason != "" {
			return tiers
		}
	}
	rec := t.get(mix(h.sum), nil, h)
	for li, level := range [2]uint8{1, 2} {
		var best *entry
		if rec != nil {
			best = t.entryFor(rec, level, port)
		}
		if best == nil {
			best = t.searchLevel(h, port, level)
		}
		if best != nil {
			tiers[2*li] = int(best.pattern)
		}
		tiers[2*li+1] = int(t.defaults[li])
	}
	return tiers
}

// searchLevel returns the best wildcard entry of one level for h.
func (t *Table) searchLevel(h *Host, port uint16, level uint8) *entry {
	byLen := t.byLabels[1]
	if h.labels >= len(byLen) {
		return nil
	}
	var best *entry
	for _, m := range byLen[h.labels] {
		if rec := t.get(m.hash(h), m, h); rec != nil {
			if e := t.entryFor(rec, level, port); e != nil && (best == nil || e.rank < best.rank) {
				best = e
			}
		}
	}
	return best
}
