package hostmatch

import "math/rand/v2"

// Hashing. The table is keyed by names: exact names, and wildcard patterns
// in normal form. A name of labels l0.l1...ln-1 hashes to the polynomial sum
// of its label hashes, labelHash(li) * sumBase^(n-1-i), so that the hash of
// a host with some labels replaced by '*' (what a mask probes for) is the
// host's sum plus one term per replaced label: a host is hashed once, in the
// scan that validates it, and each mask in constant time, with no string
// built. An IP address hashes as one label.

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
// Host.scanLabels computes the same in its scan.
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

// tagOf returns the tag of a record's hash in Table.tags: its top seven
// bits, never 0.
func tagOf(h uint64) uint8 { return uint8(h>>56) | 1 }
