package mtls

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// This file holds public key pinning (semantics §4): the pin list of a Map
// value, its resolution, and the check of the upstream's leaf.
//
// Pinning restricts, never replaces: the check below runs in addition to
// chain and hostname verification (which crypto/tls does first), on the
// leaf only, and a host left with no usable pin fails every handshake.

// pinPrefix introduces a pin in the form of curl's --pinnedpubkey and
// Envoy's verify_certificate_spki: the base64 SHA-256 of the SPKI DER.
const pinPrefix = "sha256//"

// hashPin returns the SHA-256 of a SubjectPublicKeyInfo DER in the sha256//
// form.
func hashPin(sum [32]byte) string {
	return pinPrefix + base64.StdEncoding.EncodeToString(sum[:])
}

// pinItem is one item of a pin list.
type pinItem struct {
	kind valueKind // kindInline also stands for a sha256// pin: both are fixed
	ref  string    // the store ID or the path
	hash [32]byte  // a fixed item's SHA-256 of the SPKI
}

// pinState is the set of pins of a slot as last resolved.
type pinState struct {
	hashes [][32]byte  // sorted, without repeats; empty: no usable pin left
	key    string      // names the set in a TLS identity
	stamps []fileStamp // of the slot's file items, in order
}

// pinSlot is one Map value of Policy.PinnedPublicKeys with the pins it
// resolves to. Like certSlot, it is shared by the selectors of a gateway.
type pinSlot struct {
	value    string
	items    []pinItem
	files    []int // indexes of the file items
	hasStore bool

	mu  sync.Mutex // serialises loads
	cur atomic.Pointer[pinState]
}

// newPinSlot parses a pin list. Every item must resolve now: a pin that
// cannot be resolved when the policy is set is an error.
func newPinSlot(ctx context.Context, value string, store CertStore) (*pinSlot, error) {
	s := &pinSlot{value: value}
	for raw := range strings.SplitSeq(value, ",") {
		item, err := parsePinItem(ctx, strings.TrimSpace(raw), store)
		if err != nil {
			return nil, fmt.Errorf("mtls: pin list %s: %w", describe(value), err)
		}
		switch item.kind {
		case kindFile:
			s.files = append(s.files, len(s.items))
		case kindStoreID:
			s.hasStore = true
		}
		s.items = append(s.items, item)
	}
	return s, nil
}

// parsePinItem parses one item of a pin list and checks that it resolves.
func parsePinItem(ctx context.Context, item string, store CertStore) (pinItem, error) {
	if item == "" {
		return pinItem{}, fmt.Errorf("empty item")
	}
	if b64, ok := strings.CutPrefix(item, pinPrefix); ok {
		sum, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sum) != sha256.Size {
			return pinItem{}, fmt.Errorf("pin %q is not %s followed by the base64 of a SHA-256", item, pinPrefix)
		}
		return pinItem{kind: kindInline, hash: [32]byte(sum)}, nil
	}
	kind, ref := classify(item)
	p := pinItem{kind: kind, ref: ref}
	hash, err := p.resolve(ctx, store)
	if err != nil {
		return pinItem{}, fmt.Errorf("pin %s: %w", describe(item), err)
	}
	if kind == kindInline {
		p.ref, p.hash = "", hash
	}
	return p, nil
}

// resolve returns the SHA-256 of the SPKI an item names.
func (p pinItem) resolve(ctx context.Context, store CertStore) ([32]byte, error) {
	switch p.kind {
	case kindStoreID:
		if store == nil {
			return [32]byte{}, fmt.Errorf("%w: no store for ID %s", ErrNotFound, p.ref)
		}
		c, err := store.Get(ctx, p.ref)
		if err != nil {
			return [32]byte{}, err
		}
		if c.Leaf != nil {
			return sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo), nil
		}
		spki, err := x509.MarshalPKIXPublicKey(c.PublicKey)
		if err != nil {
			return [32]byte{}, fmt.Errorf("mtls: store entry %s: %w", p.ref, err)
		}
		return sha256.Sum256(spki), nil
	case kindFile:
		data, err := readLimited(p.ref)
		if err != nil {
			return [32]byte{}, err
		}
		return spkiHashOfPEM(data)
	default:
		return spkiHashOfPEM([]byte(p.ref))
	}
}

func spkiHashOfPEM(data []byte) ([32]byte, error) {
	parsed, err := parsePEM(data)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(parsed.spki), nil
}

// load returns the current pins. Items that can no longer be resolved (a
// deleted key, an unreadable file) drop out; the set may end up empty,
// which fails every handshake.
func (s *pinSlot) load(ctx context.Context, c *core) *pinState {
	ps := s.cur.Load()
	if ps != nil && s.hasStore && !c.notifying {
		ps = nil
	}
	if ps != nil {
		for i, at := range s.files {
			if stamp, _ := statFile(s.items[at].ref); stamp != ps.stamps[i] {
				ps = nil
				break
			}
		}
	}
	if ps == nil {
		s.mu.Lock()
		ps = s.read(context.WithoutCancel(ctx), c.store) // shared: see certSlot.load
		s.cur.Store(ps)
		s.mu.Unlock()
	}
	return ps
}

// invalidate drops the resolved pins: the next load resolves them again.
func (s *pinSlot) invalidate() { s.cur.Store(nil) }

func (s *pinSlot) read(ctx context.Context, store CertStore) *pinState {
	ps := &pinState{stamps: make([]fileStamp, len(s.files))}
	for i, at := range s.files {
		ps.stamps[i], _ = statFile(s.items[at].ref) // a missing file has the zero stamp
	}
	for _, item := range s.items {
		hash := item.hash
		if item.kind != kindInline {
			var err error
			if hash, err = item.resolve(ctx, store); err != nil {
				continue // drops out
			}
		}
		ps.hashes = append(ps.hashes, hash)
	}
	slices.SortFunc(ps.hashes, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	ps.hashes = slices.Compact(ps.hashes)
	var key strings.Builder
	key.WriteString("pins:")
	for _, h := range ps.hashes {
		key.WriteString(hex.EncodeToString(h[:]))
		key.WriteByte(',')
	}
	ps.key = key.String()
	return ps
}

// verify checks the SPKI of the leaf that host presented against the pins.
// The error wraps ErrPinMismatch and names the host and the presented key.
func (ps *pinState) verify(host string, spki []byte) error {
	sum := sha256.Sum256(spki)
	for _, h := range ps.hashes {
		if h == sum {
			return nil
		}
	}
	presented := hashPin(sum)
	if len(ps.hashes) == 0 {
		return fmt.Errorf("%w: host %s presented %s, and no pin of the host can be resolved any more", ErrPinMismatch, host, presented)
	}
	return fmt.Errorf("%w: host %s presented %s, which is not among its %d pins", ErrPinMismatch, host, presented, len(ps.hashes))
}

// verifyLeaf checks the first certificate the server sent. Only the leaf
// counts: a chain that carries a pinned key elsewhere does not pass.
func (ps *pinState) verifyLeaf(host string, leaf *x509.Certificate) error {
	if leaf == nil {
		return fmt.Errorf("%w: host %s presented no certificate", ErrPinMismatch, host)
	}
	return ps.verify(host, leaf.RawSubjectPublicKeyInfo)
}
