package hostmatch

import (
	"cmp"
	"maps"
	"slices"
)

// Error is a pattern that Compile rejects.
type Error struct {
	Pattern string // as written
	Level   uint8  // 1 API, 2 gateway
	Reason  string // why, when the pattern itself is invalid
	Same    string // the pattern it normalises alike with, carrying another value
}

func (e *Error) Error() string {
	if e.Same != "" {
		return "pattern " + e.Pattern + ": same host as " + e.Same + ", with a different value"
	}
	return "pattern " + e.Pattern + ": " + e.Reason
}

// Compile compiles an API-level and a gateway-level map; either may be nil,
// and then matches nothing. Patterns are checked in sorted order, so the
// error, an *Error, is the same for the same maps.
func Compile(api, gateway map[string]string) (*Table, error) {
	t := &Table{defaults: [2]int32{-1, -1}}
	shapes := map[string]*mask{}
	index := map[string]int{} // drafts by name
	var drafts []draft
	for li, m := range [2]map[string]string{api, gateway} {
		level := uint8(li + 1)
		type key struct {
			name string
			port uint16
		}
		seen := map[key]string{}
		var wild []wildEntry
		for _, pat := range slices.Sorted(maps.Keys(m)) {
			p := &Host{}
			if reason := p.ParsePattern(pat); reason != "" {
				return nil, &Error{Pattern: pat, Level: level, Reason: reason}
			}
			if first, ok := seen[key{p.name, p.port}]; ok {
				if m[first] != m[pat] {
					return nil, &Error{Pattern: pat, Level: level, Same: first}
				}
				continue
			}
			seen[key{p.name, p.port}] = pat
			e := entry{pattern: uint32(len(t.patterns)), port: p.port, level: level}
			t.patterns = append(t.patterns, Pattern{Text: pat, Value: m[pat], Level: level})
			if p.isDefault {
				t.defaults[li] = int32(e.pattern)
				continue
			}
			var pm *mask
			if p.wild {
				pm = t.maskOf(shapes, p, li == 0)
				e.right = uint8(pm.right)
			}
			ri, ok := index[p.name]
			if !ok {
				ri = len(drafts)
				index[p.name] = ri
				d := draft{hash: mix(p.sum), key: p.name}
				if pm != nil {
					d.mask = pm.id
				}
				drafts = append(drafts, d)
			}
			if p.wild {
				wild = append(wild, wildEntry{e, ri, len(pm.stars), p.String()})
			} else {
				drafts[ri].ents = append(drafts[ri].ents, e)
			}
		}
		rankWildcards(wild)
		for _, w := range wild {
			drafts[w.rec].ents = append(drafts[w.rec].ents, w.entry)
		}
	}
	t.sortMasks()
	t.place(drafts)
	return t, nil
}

// maskOf returns the mask of wildcard pattern p, adding it to the table the
// first time its shape is seen, and to the API level's masks the first time
// an API level pattern has it.
func (t *Table) maskOf(shapes map[string]*mask, p *Host, api bool) *mask {
	pm := newMask(p)
	if known := shapes[pm.shape]; known != nil {
		pm = known
	} else {
		shapes[pm.shape] = pm
		t.masks = append(t.masks, pm)
		pm.id = uint32(len(t.masks))
		t.byLabels[1] = addMask(t.byLabels[1], p.labels, pm)
	}
	if api && !pm.api {
		pm.api = true
		t.byLabels[0] = addMask(t.byLabels[0], p.labels, pm)
	}
	return pm
}

// sortMasks puts the masks of each label count in precedence order: longer
// literal run from the right first, then fewer wildcards.
func (t *Table) sortMasks() {
	for _, byLen := range t.byLabels {
		for _, ms := range byLen {
			slices.SortFunc(ms, func(a, b *mask) int {
				return cmp.Or(cmp.Compare(b.right, a.right), cmp.Compare(len(a.stars), len(b.stars)), cmp.Compare(a.shape, b.shape))
			})
		}
	}
}

// wildEntry is a wildcard entry being ranked.
type wildEntry struct {
	entry
	rec   int // index of its draft
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
