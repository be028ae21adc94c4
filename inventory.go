package mtls

import (
	"context"
	"crypto/x509"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/mtlsgo/mtls/internal/certkit"
)

// This file holds the inventory of what a Selector or a Server uses (semantics
// §8 "Expiry monitoring of every mapped certificate"): every certificate
// its policy names, where it comes from and when it expires, for expiry
// warnings, tools and metrics.

// CertificateUse is one certificate that a policy names: a client
// certificate, a pinned key or certificate, a server certificate, or an
// allowed client.
type CertificateUse struct {
	Field   string // the policy's field: "Certificates", "PinnedPublicKeys", "AllowedClients[0]", ...
	Level   Level  // a Selector's level of the mapping; 0 for a Server's
	Pattern string // the pattern; "" for a value of a list
	Value   string // the value as written; inline PEM by its SHA-256 instead
	Source  string // "store", "file", "inline", or "pin" for a sha256// pin, which names no certificate
	ID      string // the certificate's ID (of a bare public key: its SPKI's SHA-256)
	Subject string
	// NotAfter is when the certificate expires; zero for a bare key or pin.
	NotAfter time.Time
	// Err is why the value cannot be read now.
	Err error
}

func (u CertificateUse) key() string {
	return u.Field + "\x00" + u.Level.String() + "\x00" + u.Pattern + "\x00" + u.Value
}

// Inventory returns every certificate the policy names at level, read now
// from store (which may be nil when it names no store ID), without
// building a Selector: for each, where it comes from, its ID, subject and
// expiry, or why it cannot be read. Tools use it to check a configuration
// that New would refuse.
func (p Policy) Inventory(ctx context.Context, store CertStore, level Level) []CertificateUse {
	var uses []CertificateUse
	for _, pat := range slices.Sorted(maps.Keys(p.Certificates)) {
		v := p.Certificates[pat]
		u := CertificateUse{Field: "Certificates", Level: level, Pattern: pat, Value: name(v)}
		src, err := parseSource(v)
		if err != nil {
			u.Err = err
		} else {
			u = readUse(ctx, store, u, src)
		}
		uses = append(uses, u)
	}
	for _, pat := range slices.Sorted(maps.Keys(p.PinnedPublicKeys)) {
		items, err := parsePinList(p.PinnedPublicKeys[pat])
		if err != nil {
			uses = append(uses, CertificateUse{Field: "PinnedPublicKeys", Level: level, Pattern: pat,
				Value: name(p.PinnedPublicKeys[pat]), Source: "pin", Err: err})
			continue
		}
		for _, item := range items {
			u := CertificateUse{Field: "PinnedPublicKeys", Level: level, Pattern: pat, Source: "pin", Value: hashPin(item.hash)}
			if item.src.kind != 0 {
				u.Value = name(item.src.value)
				u = readUse(ctx, store, u, item.src)
			}
			uses = append(uses, u)
		}
	}
	return uses
}

// Inventory returns every certificate the server policy names, server
// certificates and allowed clients, as [Policy.Inventory] does.
func (p ServerPolicy) Inventory(ctx context.Context, store CertStore) []CertificateUse {
	var uses []CertificateUse
	for _, pat := range slices.Sorted(maps.Keys(p.Certificates)) {
		v := p.Certificates[pat]
		u := CertificateUse{Field: "Certificates", Pattern: pat, Value: name(v)}
		if src, err := parseSource(v); err != nil {
			u.Err = err
		} else {
			u = readUse(ctx, store, u, src)
		}
		uses = append(uses, u)
	}
	list := func(field string, values []string) {
		for i, v := range values {
			u := CertificateUse{Field: field + "[" + strconv.Itoa(i) + "]", Value: name(v)}
			if src, err := parseSource(v); err != nil {
				u.Err = err
			} else {
				u = readUse(ctx, store, u, src)
			}
			uses = append(uses, u)
		}
	}
	list("AllowedClients", p.AllowedClients)
	list("APIClients", p.APIClients)
	for _, a := range p.APIs {
		list("APIs["+strconv.Quote(a.Name)+"].AllowedClients", a.AllowedClients)
	}
	return uses
}

// Inventory returns every certificate the selector's policies name, read
// now (see [Policy.Inventory]): its own and, for an API selector, the
// gateway's; a gateway-level selector's also holds what its API selectors
// name. A certificate named alike at one level appears once.
func (s *Selector) Inventory(ctx context.Context) []CertificateUse {
	if !s.usable() {
		return nil
	}
	gw := s
	if s.parent != nil {
		gw = s.parent
	}
	var uses []CertificateUse
	if p := gw.own.Load(); p != nil {
		uses = p.Inventory(ctx, s.c.store, LevelGateway)
	}
	apis := gw.childList()
	if s.parent != nil {
		apis = []*Selector{s}
	}
	seen := map[string]bool{}
	for _, u := range uses {
		seen[u.key()] = true
	}
	for _, a := range apis {
		if p := a.own.Load(); p != nil {
			for _, u := range p.Inventory(ctx, s.c.store, LevelAPI) {
				if !seen[u.key()] {
					seen[u.key()] = true
					uses = append(uses, u)
				}
			}
		}
	}
	return uses
}

// Inventory returns every certificate the server's policy names, read now
// (see [ServerPolicy.Inventory]).
func (s *Server) Inventory(ctx context.Context) []CertificateUse {
	if !s.usable() {
		return nil
	}
	return s.state.Load().policy.Inventory(ctx, s.slots.store)
}

// readUse fills u with what src names now.
func readUse(ctx context.Context, store CertStore, u CertificateUse, src source) CertificateUse {
	switch src.kind {
	case fromStore:
		u.Source = "store"
		if store == nil {
			u.Err = errorf("%w: no store to hold certificate ID %s", ErrNotFound, src.id)
			return u
		}
		c, err := store.Get(ctx, src.value)
		if err != nil {
			u.Err = err
			return u
		}
		u.ID, u.Subject, u.NotAfter = c.ID, c.Subject, c.NotAfter
		return u
	case fromFile:
		u.Source = "file"
		data, _, err := readMapFile(src.value)
		if err != nil {
			u.Err = err
			return u
		}
		return pemUse(u, data)
	}
	u.Source = "inline"
	return pemUse(u, []byte(src.value))
}

func pemUse(u CertificateUse, data []byte) CertificateUse {
	p, err := certkit.Parse(data)
	if err != nil {
		u.Err = errorf("%w: %w", ErrInvalidValue, fromKit(err))
		return u
	}
	u.ID = p.ID
	if p.Leaf != nil {
		u.Subject, u.NotAfter = subjectOf(p.Leaf), p.Leaf.NotAfter.UTC()
	}
	return u
}

func subjectOf(c *x509.Certificate) string { return c.Subject.String() }
