package mtls

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io/fs"
	"time"

	"github.com/mtlsgo/mtls/internal/certkit"
)

// This file holds the client certificates that Policy.Certificates names
// (semantics §3 "Client certificates"): how a value is loaded, cached,
// checked for change, and failed closed.

// maxFileSize bounds what is read from a file named in a Map.
const maxFileSize = 1 << 20

// certSlot is one value of Policy.Certificates with the certificate it
// names, shared by every selector of a gateway.
type certSlot struct {
	src source
	slot[certState]
}

// certState is a client certificate as last loaded, or why it could not be.
type certState struct {
	id        string
	chain     [32]byte // SHA-256 of the chain presented: a longer chain under the same ID is a new identity
	cert      *tls.Certificate
	notBefore time.Time
	notAfter  time.Time
	err       error       // set: the mapping fails closed with it
	version   fileVersion // fromFile: the version of the file it was read from
}

// usable returns the reason the certificate cannot be presented at now.
func (cs *certState) usable(now time.Time) error {
	if cs.err != nil {
		return cs.err
	}
	if now.After(cs.notAfter) || now.Before(cs.notBefore) {
		return errorf("%w: valid from %s to %s", ErrExpired,
			cs.notBefore.UTC().Format(time.RFC3339), cs.notAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// certificate returns the slot's certificate, failing closed. A store entry
// is read again only after a change notification (or on every call when
// the store sends none); a file when its version changes; inline PEM once.
func (v *slots) certificate(ctx context.Context, s *certSlot, now time.Time) (*certState, error) {
	cs := s.cached()
	if cs == nil || v.stale(s.src, cs.version) {
		// The result is shared by every request: one request's
		// cancellation must not become the certificate's state.
		ctx = context.WithoutCancel(ctx)
		cs = s.load(func() *certState { return readCertificate(ctx, v.store, s.src) })
	}
	if err := cs.usable(now); err != nil {
		return nil, err
	}
	return cs, nil
}

// stale reports whether what was loaded from src, a file at version ver,
// may have changed without a notification.
func (v *slots) stale(src source, ver fileVersion) bool {
	switch src.kind {
	case fromStore:
		return !v.notifying
	case fromFile:
		now, err := statVersion(src.value)
		return err != nil || now != ver
	}
	return false
}

// readCertificate loads the certificate src names.
func readCertificate(ctx context.Context, store CertStore, src source) *certState {
	switch src.kind {
	case fromStore:
		if store == nil {
			return &certState{err: errorf("%w: no store to hold certificate ID %s", ErrNotFound, src.id)}
		}
		c, err := store.Get(ctx, src.value)
		if err != nil {
			return &certState{err: err}
		}
		if c.TLS == nil || !c.HasPrivateKey {
			return &certState{id: c.ID, err: errorf("%w: store entry %s", ErrNoPrivateKey, c.ID)}
		}
		return newCertState(c.ID, c.TLS, c.NotBefore, c.NotAfter)
	case fromFile:
		data, v, err := readMapFile(src.value)
		if err != nil {
			return &certState{err: err}
		}
		cs := certFromPEM(data)
		cs.version = v
		return cs
	}
	return certFromPEM([]byte(src.value))
}

// readMapFile reads a file named in a Map. A file that does not exist is
// ErrNotFound.
func readMapFile(path string) ([]byte, fileVersion, error) {
	data, v, err := readRegular(path, maxFileSize)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the caller names the path: it may be a key pasted in the wrong place
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, v, errorf("%w: no such file", ErrNotFound)
	case err != nil:
		return nil, v, errorf("cannot read the file: %w", err)
	}
	return data, v, nil
}

// certFromPEM reads a certificate with its private key in clear, from a
// file or inline PEM.
func certFromPEM(data []byte) *certState {
	p, err := certkit.Parse(data)
	switch {
	case err != nil:
		return &certState{err: errorf("%w: %w", ErrInvalidValue, fromKit(err))}
	case p.Leaf == nil:
		return &certState{id: p.ID, err: errorf("%w: a bare public key cannot be a client certificate", ErrNoPrivateKey)}
	case p.Key == nil:
		return &certState{id: p.ID, err: errorf("%w (the PEM holds only certificates)", ErrNoPrivateKey)}
	}
	cert := &tls.Certificate{Certificate: p.Chain, PrivateKey: p.Key, Leaf: p.Leaf}
	return newCertState(p.ID, cert, p.Leaf.NotBefore, p.Leaf.NotAfter)
}

func newCertState(id string, cert *tls.Certificate, notBefore, notAfter time.Time) *certState {
	h := sha256.New()
	for _, der := range cert.Certificate {
		h.Write(der)
	}
	cs := &certState{id: id, cert: cert, notBefore: notBefore, notAfter: notAfter}
	h.Sum(cs.chain[:0])
	return cs
}
