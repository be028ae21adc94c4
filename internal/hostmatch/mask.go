package hostmatch

import "strings"

// mask is the shape of wildcard patterns: their label count and where their
// '*' labels are. A host matches at most one pattern of a mask: its own name
// with '*' for the labels at the mask's positions. So a host is looked up
// once per mask of its label count, however many patterns there are. '*'
// never matches an IP address: IP addresses have no labels to count.
type mask struct {
	id    uint32  // its number in Table.masks, from 1 (0 is no mask: an exact name)
	stars []uint8 // positions of the '*' labels
	right int     // literal labels right of the rightmost '*'
	shape string  // the pattern with literal labels as "x", to sort masks
	api   bool    // some API level pattern has this mask
}

// newMask returns the mask of a wildcard pattern.
func newMask(p *Host) *mask {
	m := &mask{}
	shape := make([]byte, 0, 2*p.labels)
	for i := range p.labels {
		if i > 0 {
			shape = append(shape, '.')
		}
		if p.label(i, i+1) == "*" {
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
func (m *mask) hash(h *Host) uint64 {
	x := h.sum
	for _, i := range m.stars {
		label := labelHash(h.label(int(i), int(i)+1))
		x += (starHash - label) * sumPowers[h.labels-1-int(i)]
	}
	return mix(x)
}

// matches reports whether pattern, of mask m, is h's name with '*' for
// the labels at m's positions.
func (m *mask) matches(pattern string, h *Host) bool {
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

// addMask adds m to the masks of n labels.
func addMask(byLen [][]*mask, n int, m *mask) [][]*mask {
	for len(byLen) <= n {
		byLen = append(byLen, nil)
	}
	byLen[n] = append(byLen[n], m)
	return byLen
}
