package mtls

import (
	"context"
	"crypto/x509"
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

func (u CertificateUse) key() string { return u.Field + "\x00" + u.Pattern + "\x00" + u.Value }

// Inventory returns every certificate the selector's policy names (both
// levels, for an API selector), read now: for each, where it comes from,
// its ID, subject and expiry, or why it cannot be read. A gateway-level
// selector's inventory also holds what its API selectors name.
func (s *Selector) Inventory(ctx context.Context) []CertificateUse {
	if !s.usable() {
		return nil
	}
	var uses []CertificateUse
	selectors := []*Selector{s}
	if s.parent == nil {
		selectors = append(selectors, s.childList()...)
	}
	seen := map[string]bool{}
	for _, sel := range selectors {
		st := sel.state.Load()
		if st == nil {
			continue
		}
		for _, p := range st.certs.Patterns() {
			u := CertificateUse{Field: "Certificates", Level: Level(p.Level), Pattern: p.Text, Value: name(p.Value)}
			if src, err := parseSource(p.Value); err == nil {
				u = readUse(ctx, s.c.store, u, src)
			}
			if k := u.key(); !seen[k] {
				seen[k] = true
				uses = append(uses, u)
			}
		}
		for i, p := range st.pins.Patterns() {
			for _, item := range st.pinSlots[i].items {
				u := CertificateUse{Field: "PinnedPublicKeys", Level: Level(p.Level), Pattern: p.Text, Value: name(item.src.value), Source: "pin"}
				if item.src.kind != 0 {
					u = readUse(ctx, s.c.store, u, item.src)
				} else {
					u.Value, u.ID = hashPin(item.hash), ""
				}
				if k := u.key(); !seen[k] {
					seen[k] = true
					uses = append(uses, u)
				}
			}
		}
	}
	return uses
}

// Inventory returns every certificate the server's policy names: server
// certificates and allowed clients, read now, as [Selector.Inventory] does.
func (s *Server) Inventory(ctx context.Context) []CertificateUse {
	if !s.usable() {
		return nil
	}
	st := s.state.Load()
	var uses []CertificateUse
	for _, p := range st.certs.Patterns() {
		u := CertificateUse{Field: "Certificates", Pattern: p.Text, Value: name(p.Value)}
		if src, err := parseSource(p.Value); err == nil {
			u = readUse(ctx, s.slots.store, u, src)
		}
		uses = append(uses, u)
	}
	for _, l := range st.lists {
		for i, src := range l.srcs {
			if src.kind == 0 {
				continue
			}
			u := CertificateUse{Field: l.field + "[" + strconv.Itoa(i) + "]", Value: name(src.value)}
			uses = append(uses, readUse(ctx, s.slots.store, u, src))
		}
	}
	return uses
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
