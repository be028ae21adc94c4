package certkit

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"slices"
)

// Data is an entry as a store keeps it: everything but the private key in
// clear.
type Data struct {
	ID     string
	Chain  [][]byte          // certificate DER, leaf first; nil for a bare public key
	Leaf   *x509.Certificate // nil for a bare public key
	Pub    crypto.PublicKey
	SPKI   []byte // SubjectPublicKeyInfo DER of Pub
	Sealed []byte // Seal's output; nil when the entry has no private key
}

// NewData returns the entry of p with the given chain and sealed key.
func NewData(p *Parsed, chain [][]byte, sealed []byte) *Data {
	return &Data{ID: p.ID, Chain: chain, Leaf: p.Leaf, Pub: p.Pub, SPKI: p.SPKI, Sealed: sealed}
}

// Merge decides what adding p over the entry cur (nil when absent) gives:
// the chain to keep, the sealed key to keep, whether p's key must be sealed,
// and whether anything changes. The longer chain is kept; of two chains of
// one length, the one added last. A key already stored is kept.
func Merge(cur *Data, p *Parsed) (chain [][]byte, sealed []byte, sealNew, changed bool) {
	if cur == nil {
		return p.Chain, nil, p.Key != nil, true
	}
	chain, sealed = cur.Chain, cur.Sealed
	if len(p.Chain) > len(cur.Chain) || (len(p.Chain) == len(cur.Chain) && !slices.EqualFunc(p.Chain, cur.Chain, bytes.Equal)) {
		chain, changed = p.Chain, true
	}
	if sealed == nil && p.Key != nil {
		sealNew, changed = true, true
	}
	return chain, sealed, sealNew, changed
}
