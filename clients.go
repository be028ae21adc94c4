package mtls

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/mtlsgo/mtls/internal/certkit"
)

// This file holds client authorisation (semantics §7): which client
// certificates a server, or one API, accepts. One function, clientRules.check,
// gives the verdict at the TLS level and at the HTTP level alike, so that
// the same certificate gets the same verdict at either.

// ErrClientRefused: a client presented no certificate where one is
// required, or one that the server or the API does not accept. The error
// says why.
var ErrClientRefused = errors.New("mtls: client certificate refused")

// clientSlot is one value of an allowlist with the certificate ID it names
// now: a store ID counts while the store holds it; a file or inline PEM
// names its leaf.
type clientSlot struct {
	src source
	slot[clientState]
}

// clientState is an allowed client's ID as last loaded, or why it cannot
// be.
type clientState struct {
	id      [32]byte
	err     error
	version fileVersion
}

// client returns the slot's client now.
func (v *slots) client(ctx context.Context, s *clientSlot) *clientState {
	cs := s.cached()
	if cs == nil || v.stale(s.src, cs.version) {
		ctx = context.WithoutCancel(ctx) // shared: see certificate
		cs = s.load(func() *clientState { return readClient(ctx, v.store, s.src) })
	}
	return cs
}

// readClient loads the client src names.
func readClient(ctx context.Context, store CertStore, src source) *clientState {
	switch src.kind {
	case fromStore:
		id, _ := hex.DecodeString(src.id)
		if store == nil {
			return &clientState{err: errorf("%w: no store to hold certificate ID %s", ErrNotFound, src.id)}
		}
		if _, err := store.Get(ctx, src.value); err != nil {
			return &clientState{err: err}
		}
		return &clientState{id: [32]byte(id)}
	case fromFile:
		data, v, err := readMapFile(src.value)
		cs := clientFromPEM(data, err)
		cs.version = v
		return cs
	}
	return clientFromPEM([]byte(src.value), nil)
}

func clientFromPEM(data []byte, err error) *clientState {
	if err != nil {
		return &clientState{err: err}
	}
	p, err := certkit.Parse(data)
	switch {
	case err != nil:
		return &clientState{err: errorf("%w: %w", ErrInvalidValue, fromKit(err))}
	case p.Leaf == nil:
		return &clientState{err: errorf("%w: a bare public key is not a client certificate", ErrInvalidValue)}
	}
	return &clientState{id: sha256.Sum256(p.Leaf.Raw)}
}

// allowList is the clients an allowlist names: store IDs by ID, for a
// lookup that costs the same at any size, and files and inline PEM, whose
// IDs are known once read.
type allowList struct {
	byID   map[[32]byte]*clientSlot
	others []*clientSlot
}

func (a *allowList) empty() bool { return a == nil || len(a.byID) == 0 && len(a.others) == 0 }

// has reports whether the allowlist names the client id now.
func (a *allowList) has(ctx context.Context, v *slots, id [32]byte) bool {
	if a == nil {
		return false
	}
	if s := a.byID[id]; s != nil {
		return v.client(ctx, s).err == nil
	}
	for _, s := range a.others {
		if cs := v.client(ctx, s); cs.err == nil && cs.id == id {
			return true
		}
	}
	return false
}

// clientRules are what a client certificate must pass: to chain to cas
// within depth intermediates, when cas is set; and, when listed, to be in
// allowed or authorised by authorize.
type clientRules struct {
	cas       *x509.CertPool
	depth     int
	listed    bool // the client must be in allowed, or authorised
	allowed   *allowList
	authorize Authorizer
}

// active reports whether the rules ask for a client certificate at all.
func (r *clientRules) active() bool {
	return r != nil && (r.cas != nil || r.listed)
}

// check returns why chain, as the client presented it, leaf first, does
// not pass the rules at now, wrapping ErrClientRefused, or nil. The chain's
// verification against the CAs may come from chains, for the connection
// conn.
func (r *clientRules) check(ctx context.Context, v *slots, chain []*x509.Certificate, now time.Time, chains *chainCache, conn *tls.ConnectionState) error {
	if len(chain) == 0 {
		return withReason("no_certificate", errorf("%w: no client certificate", ErrClientRefused))
	}
	leaf := chain[0]
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return withReason("expired", errorf("%w: %w: the client certificate is valid from %s to %s", ErrClientRefused, ErrExpired,
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339)))
	}
	if r.cas != nil {
		if err := chains.verify(conn, r, chain, now); err != nil {
			return errorf("%w: %w", ErrClientRefused, err)
		}
	}
	if !r.listed {
		return nil
	}
	if r.allowed.has(ctx, v, sha256.Sum256(leaf.Raw)) {
		return nil
	}
	why := "its ID is not in the allowlist"
	if r.authorize != nil {
		err := r.authorize(leaf)
		if err == nil {
			return nil
		}
		why = fmt.Sprintf("its ID is not in the allowlist, and %s", unprefixed(err).Error())
	}
	return withReason("not_allowed", errorf("%w: client certificate %s is not allowed: %s", ErrClientRefused, Fingerprint(leaf.Raw), why))
}

// verifyChain verifies chain against the client CAs, for client
// authentication, with at most depth intermediates between the leaf and the
// trusted CA, as nginx's ssl_verify_depth (OpenSSL's verify depth) counts:
// neither the leaf nor the trusted CA count.
//
// It returns when the verification stops holding: the earliest expiry of
// the chain it accepted.
func (r *clientRules) verifyChain(chain []*x509.Certificate, now time.Time) (time.Time, error) {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := chain[0].Verify(x509.VerifyOptions{Roots: r.cas, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return chain[0].NotAfter, withReason("untrusted", errorf("the client certificate does not chain to the client CAs: %w", err))
	}
	depth := max(r.depth, 1)
	for _, c := range chains {
		if len(c)-2 <= depth {
			until := c[0].NotAfter
			for _, ca := range c[1:] {
				if ca.NotAfter.Before(until) {
					until = ca.NotAfter
				}
			}
			return until, nil
		}
	}
	return chain[0].NotAfter, withReason("too_deep", errorf("the client certificate chains to the client CAs through more than %d intermediate certificates (VerifyDepth)", depth))
}
