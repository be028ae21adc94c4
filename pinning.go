package mtls

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"slices"
	"strings"

	"github.com/mtlsgo/mtls/internal/certkit"
)

// This file holds public key pinning (semantics §4): the pin list of a Map
// value, its resolution, and the check of the upstream's leaf.
//
// Pinning restricts, never replaces: the check runs in addition to chain
// and hostname verification (which crypto/tls does first), on the leaf
// only, and a host left with no usable pin fails every handshake.

// pinPrefix introduces a pin in the form of curl's --pinnedpubkey and
// Envoy's verify_certificate_spki: the base64 SHA-256 of the SPKI DER.
const pinPrefix = "sha256//"

// hashPin returns the SHA-256 of a SubjectPublicKeyInfo DER in the sha256//
// form.
func hashPin(sum [32]byte) string {
	return pinPrefix + base64.StdEncoding.EncodeToString(sum[:])
}

// pinItem is one item of a pin list: a fixed hash, or a source to resolve.
type pinItem struct {
	src  source   // zero for a sha256// pin
	hash [32]byte // a sha256// pin's or an inline PEM's SHA-256 of the SPKI
}

func (p pinItem) fixed() bool { return p.src.kind == 0 || p.src.kind == fromInline }

// pinSlot is one value of Policy.PinnedPublicKeys with the pins it resolves
// to, shared by the selectors of a gateway.
type pinSlot struct {
	value string
	items []pinItem
	slot[pinState]
}

// pinState is the set of pins of a slot as last resolved.
type pinState struct {
	hashes   [][32]byte    // sorted, without repeats; empty: no usable pin left
	key      string        // names the set in a TLS identity
	versions []fileVersion // of the slot's file items, in order
}

// parsePinList parses a pin list: comma-separated items, spaces around
// them ignored. It reads nothing: parsePinList checks the form of each item,
// resolvePin whether it resolves.
func parsePinList(value string) ([]pinItem, error) {
	if strings.Contains(value, ";") && !strings.Contains(value, "-----BEGIN") {
		return nil, errorf("%w: pin list %s: pins are separated by commas, not semicolons", ErrInvalidValue, describe(value))
	}
	var items []pinItem
	for raw := range strings.SplitSeq(value, ",") {
		item, err := parsePinItem(strings.TrimSpace(raw))
		if err != nil {
			return nil, errorf("pin list %s: %w", describe(value), err)
		}
		items = append(items, item)
	}
	return items, nil
}

// parsePinItem parses one item of a pin list. Inline PEM is hashed now.
func parsePinItem(item string) (pinItem, error) {
	if b64, ok := strings.CutPrefix(item, pinPrefix); ok {
		sum, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sum) != sha256.Size {
			return pinItem{}, errorf("%w: pin %s is not %s followed by the base64 of a SHA-256", ErrInvalidValue, describe(item), pinPrefix)
		}
		return pinItem{hash: [32]byte(sum)}, nil
	}
	if lower := strings.ToLower(item); strings.HasPrefix(lower, "sha256/") || strings.HasPrefix(lower, "sha256:") {
		return pinItem{}, errorf("%w: pin %s: write %s followed by the base64 SHA-256 of the public key, in lower case with two slashes, as curl --pinnedpubkey takes it",
			ErrInvalidValue, describe(item), pinPrefix)
	}
	src, err := parseSource(item)
	if err != nil {
		return pinItem{}, errorf("pin %s: %w", describe(item), err)
	}
	p := pinItem{src: src}
	if src.kind == fromInline {
		if p.hash, err = spkiHashOfPEM([]byte(src.value)); err != nil {
			return pinItem{}, errorf("pin %s: %w", describe(item), err)
		}
	}
	return p, nil
}

// resolvePin returns the SHA-256 of the SPKI an item names.
func resolvePin(ctx context.Context, store CertStore, p pinItem) ([32]byte, fileVersion, error) {
	switch p.src.kind {
	case fromStore:
		if store == nil {
			return [32]byte{}, fileVersion{}, errorf("%w: no store to hold ID %s", ErrNotFound, p.src.id)
		}
		c, err := store.Get(ctx, p.src.value)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				// The hex SHA-256 of a public key reads as an ID.
				return [32]byte{}, fileVersion{}, errorf("%w (if %s is the hex SHA-256 of a public key, write it as %s)", err, p.src.id, hexToPin(p.src.id))
			}
			return [32]byte{}, fileVersion{}, err
		}
		return spkiHash(c)
	case fromFile:
		data, v, err := readMapFile(p.src.value)
		if err == nil {
			var sum [32]byte
			if sum, err = spkiHashOfPEM(data); err == nil {
				return sum, v, nil
			}
		}
		return [32]byte{}, v, errorf("pin file %s: %w", describe(p.src.value), err)
	}
	return p.hash, fileVersion{}, nil
}

func hexToPin(id string) string {
	sum, _ := hex.DecodeString(id)
	return hashPin([32]byte(sum))
}

func spkiHash(c *Certificate) ([32]byte, fileVersion, error) {
	if c.Leaf != nil {
		return sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo), fileVersion{}, nil
	}
	spki, err := x509.MarshalPKIXPublicKey(c.PublicKey)
	if err != nil {
		return [32]byte{}, fileVersion{}, errorf("store entry %s: %w", c.ID, err)
	}
	return sha256.Sum256(spki), fileVersion{}, nil
}

func spkiHashOfPEM(data []byte) ([32]byte, error) {
	parsed, err := certkit.Parse(data)
	if err != nil {
		return [32]byte{}, errorf("%w: %w", ErrInvalidValue, fromKit(err))
	}
	return sha256.Sum256(parsed.SPKI), nil
}

// pins returns the slot's current pins. Items that can no longer be
// resolved (a deleted key, an unreadable file) drop out; the set may end up
// empty, which fails every handshake. Store items are resolved again after
// a change notification (or every time, for a store without them), file
// items when their version changes.
func (v *slots) pinSet(ctx context.Context, s *pinSlot) *pinState {
	ps := s.cached()
	if ps != nil {
		f := 0
		for _, item := range s.items {
			if item.src.kind == fromFile && v.stale(item.src, ps.versions[f]) || item.src.kind == fromStore && v.stale(item.src, fileVersion{}) {
				ps = nil
				break
			}
			if item.src.kind == fromFile {
				f++
			}
		}
	}
	if ps == nil {
		ctx = context.WithoutCancel(ctx) // shared: see certificate
		ps = s.load(func() *pinState { return resolvePins(ctx, v.store, s.items) })
	}
	return ps
}

// resolvePins resolves the items of a pin list.
func resolvePins(ctx context.Context, store CertStore, items []pinItem) *pinState {
	ps := &pinState{}
	for _, item := range items {
		sum, v, err := resolvePin(ctx, store, item)
		if item.src.kind == fromFile {
			ps.versions = append(ps.versions, v) // a missing file has the zero version
		}
		if err == nil {
			ps.hashes = append(ps.hashes, sum)
		}
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
func (ps *pinState) verify(host string, leaf *x509.Certificate) error {
	if leaf == nil {
		return errorf("%w: host %s presented no certificate", ErrPinMismatch, host)
	}
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	if slices.Contains(ps.hashes, sum) {
		return nil
	}
	presented := hashPin(sum)
	if len(ps.hashes) == 0 {
		return errorf("%w: host %s presented %s, and no pin of the host can be resolved any more", ErrPinMismatch, host, presented)
	}
	if len(ps.hashes) == 1 {
		return errorf("%w: host %s presented %s, which is not its pin", ErrPinMismatch, host, presented)
	}
	return errorf("%w: host %s presented %s, which is not among its %d pins", ErrPinMismatch, host, presented, len(ps.hashes))
}
