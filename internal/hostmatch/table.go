package hostmatch

import (
	"math/bits"
	"slices"
)

// Table is the compiled form of an API-level and a gateway-level map. It is
// immutable and safe for concurrent use; a nil *Table and the zero Table
// match nothing.
type Table struct {
	// The hash table: open addressing, at most half full. A slot is used
	// when its tag is not 0; the records of the used slots are in slot
	// order, so the record of used slot i is recs[rank(i)].
	tags  []uint8  // 0 for an empty slot, else tagOf the record's hash
	used  []uint64 // bit i%64 of used[i/64] is set when slot i is used
	ranks []uint32 // ranks[g]: the used slots before slot 64*g
	recs  []record

	keys     string    // the records' names, one after another
	entries  []entry   // entries of records that have more than one
	patterns []Pattern // by entry.pattern

	masks    []*mask      // by mask.id - 1
	byLabels [2][][]*mask // masks by label count, in precedence order: the API level's, all
	defaults [2]int32     // pattern of '*' of the API and of the gateway level; -1 for none
}

// Pattern is one pattern of a map, with its value.
type Pattern struct {
	Text  string // as written in the map
	Value string
	Level uint8 // 1 for the API level, 2 for the gateway level
}

// record holds the patterns of one exact or wildcard name, at both levels.
// A probe that finds it reads its first 16 bytes, then the name in keys;
// most names have one entry, held in the record itself.
type record struct {
	hash   uint64
	keyOff uint32 // the name is keys[keyOff : keyOff+keyLen]
	mask   uint32 // mask.id, or 0 for an exact name
	keyLen uint16
	count  uint32 // entries, by level then port, port 0 (any port) first
	more   uint32 // the entries are entries[more : more+count] when count > 1
	only   entry  // the entry when count == 1
}

// entry is one pattern of a record: the level and port it applies to, and
// for wildcards what ranks it among the level's other wildcards.
type entry struct {
	pattern uint32 // index in Table.patterns
	port    uint16 // 0: any port
	level   uint8  // 1 API, 2 gateway
	right   uint8  // wildcards: literal labels right of the rightmost '*'
	rank    int32  // wildcards: precedence within the level, lower first
}

// key returns the name of rec.
func (t *Table) key(rec *record) string {
	return t.keys[rec.keyOff : rec.keyOff+uint32(rec.keyLen)]
}

// get returns the record of hash h, mask id m (0: exact) and host ph. Most
// probes find no record: they read tags alone, a byte a slot, which stay in
// cache for tables of hundreds of thousands of names. A probe that finds
// one reads its record: its index is the count of used slots before its
// slot, from used and ranks, which stay in cache too.
func (t *Table) get(h uint64, m *mask, ph *Host) *record {
	if len(t.tags) == 0 {
		return nil // the zero Table
	}
	var id uint32
	if m != nil {
		id = m.id
	}
	slots, tag := uint64(len(t.tags)-1), tagOf(h)
	for i := h & slots; t.tags[i] != 0; i = (i + 1) & slots {
		if t.tags[i] != tag {
			continue
		}
		rec := &t.recs[t.rank(i)]
		if rec.hash != h || rec.mask != id {
			continue
		}
		if key := t.key(rec); m == nil && key == ph.name || m != nil && m.matches(key, ph) {
			return rec
		}
	}
	return nil
}

// rank returns the index in recs of the record of used slot i: the number
// of used slots before it.
func (t *Table) rank(i uint64) uint32 {
	g := i / 64
	return t.ranks[g] + uint32(bits.OnesCount64(t.used[g]&(1<<(i%64)-1)))
}

// draft is a record being built.
type draft struct {
	hash uint64
	mask uint32
	key  string
	ents []entry
}

// place makes the table: tags at most half full, and the records in slot
// order.
func (t *Table) place(drafts []draft) {
	size := max(64, 1<<bits.Len(uint(2*len(drafts))))
	t.tags = make([]uint8, size)
	t.used, t.ranks = make([]uint64, size/64), make([]uint32, size/64)
	slots := make([]int, len(drafts))
	for i, d := range drafts {
		j := int(d.hash) & (size - 1)
		for t.tags[j] != 0 {
			j = (j + 1) & (size - 1)
		}
		t.tags[j], slots[i] = tagOf(d.hash), j
		t.used[j/64] |= 1 << (j % 64)
	}
	for g := 1; g < len(t.ranks); g++ {
		t.ranks[g] = t.ranks[g-1] + uint32(bits.OnesCount64(t.used[g-1]))
	}
	inOrder := make([]draft, len(drafts))
	for i, d := range drafts {
		inOrder[t.rank(uint64(slots[i]))] = d
	}
	t.pack(inOrder)
}

// pack makes the records of the drafts.
func (t *Table) pack(drafts []draft) {
	t.recs = make([]record, len(drafts))
	var keys []byte
	for i, d := range drafts {
		slices.SortFunc(d.ents, compareEntries)
		rec := &t.recs[i]
		rec.hash, rec.mask = d.hash, d.mask
		rec.keyOff, rec.keyLen = uint32(len(keys)), uint16(len(d.key))
		keys = append(keys, d.key...)
		rec.count = uint32(len(d.ents))
		if len(d.ents) == 1 {
			rec.only = d.ents[0]
		} else {
			rec.more = uint32(len(t.entries))
			t.entries = append(t.entries, d.ents...)
		}
	}
	t.keys = string(keys)
}

// compareEntries orders the entries of a record: by level, then port.
func compareEntries(a, b entry) int {
	if a.level != b.level {
		return int(a.level) - int(b.level)
	}
	return int(a.port) - int(b.port)
}
