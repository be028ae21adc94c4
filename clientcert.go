package mtls

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds the values of a Map and the client certificates they name
// (semantics §1 "Certificate ID", §3 "Client certificates"): how a value is
// classified, loaded, cached, checked for change and failed closed.

// valueKind says what a Map value refers to.
type valueKind uint8

const (
	kindStoreID valueKind = iota // 64 lowercase hex digits, optionally behind an organisation prefix
	kindInline                   // contains "-----BEGIN"
	kindFile                     // anything else
)

// classify returns what v refers to and the reference itself: the ID for a
// store value, v otherwise.
func classify(v string) (valueKind, string) {
	if strings.Contains(v, "-----BEGIN") {
		return kindInline, v
	}
	if id, ok := parseID(v); ok {
		return kindStoreID, id
	}
	return kindFile, v
}

// parseID reports whether v is a certificate ID: 64 lowercase hex digits,
// optionally behind an organisation prefix of ASCII letters and digits. The
// ID is then the last 64 characters.
func parseID(v string) (string, bool) {
	if len(v) < 64 {
		return "", false
	}
	prefix, id := v[:len(v)-64], v[len(v)-64:]
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false
		}
	}
	for i := 0; i < len(prefix); i++ {
		if c := prefix[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return "", false
		}
	}
	return id, true
}

// describe names a value in an error message. Inline PEM is named by its
// SHA-256, never by its text: it may hold a private key.
func describe(v string) string {
	if k, _ := classify(v); k == kindInline {
		return "inline PEM sha256:" + Fingerprint([]byte(v))
	}
	return strconv.Quote(v)
}

// fileStamp is what the change check of a file compares: a file whose
// size, modification time or inode differ has changed.
type fileStamp struct {
	size  int64
	mtime int64
	ino   uint64
}

// statFile returns the stamp of the file at path. A file that does not exist
// is ErrNotFound.
func statFile(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fileStamp{}, fmt.Errorf("%w: no file %q", ErrNotFound, path)
		}
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ino: inode(fi)}, nil
}

// certState is a client certificate as last loaded, or why it could not be.
type certState struct {
	id        string
	chain     [32]byte // SHA-256 of the chain presented: a longer chain under the same ID is a new identity
	cert      *tls.Certificate
	notBefore time.Time
	notAfter  time.Time
	err       error     // set: the mapping fails closed with it
	stamp     fileStamp // kindFile: the file this was read from
}

// usable returns the reason the certificate cannot be presented at now.
func (cs *certState) usable(now time.Time) error {
	if cs.err != nil {
		return cs.err
	}
	if now.After(cs.notAfter) || now.Before(cs.notBefore) {
		return fmt.Errorf("%w: valid from %s to %s", ErrExpired,
			cs.notBefore.UTC().Format(time.RFC3339), cs.notAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// certSlot is one Map value of Policy.Certificates with the certificate it
// names. Slots are shared by every selector of a gateway, so that a change
// of the store is seen once.
type certSlot struct {
	value string
	kind  valueKind
	ref   string // the store ID, the path, or the PEM

	mu  sync.Mutex // serialises loads
	cur atomic.Pointer[certState]
}

func newCertSlot(value string) *certSlot {
	kind, ref := classify(value)
	return &certSlot{value: value, kind: kind, ref: ref}
}

// check reports an inline value that can never be used; other kinds are
// checked on use, since the certificate may be added to the store later.
func (s *certSlot) check() error {
	if s.kind != kindInline {
		return nil
	}
	if st := s.read(context.Background(), nil); st.err != nil {
		return st.err
	}
	return nil
}

// load returns the current certificate of the slot, failing closed.
// Store entries are read again only after a change notification (or on
// every call when the store has none); files are read again when their
// stamp changes; inline PEM is read once.
func (s *certSlot) load(ctx context.Context, c *core, now time.Time) (*certState, error) {
	cs := s.cur.Load()
	switch {
	case cs == nil:
	case s.kind == kindStoreID && !c.notifying:
		cs = nil
	case s.kind == kindFile:
		stamp, err := statFile(s.ref)
		if err != nil {
			return nil, err
		}
		if stamp != cs.stamp {
			cs = nil
		}
	}
	if cs == nil {
		s.mu.Lock()
		// The result is shared by every request: one request's cancellation
		// must not become the certificate's state.
		cs = s.read(context.WithoutCancel(ctx), c.store)
		s.cur.Store(cs)
		s.mu.Unlock()
	}
	if err := cs.usable(now); err != nil {
		return nil, err
	}
	return cs, nil
}

// invalidate drops the loaded certificate: the next load reads it again.
func (s *certSlot) invalidate() { s.cur.Store(nil) }

// read loads the certificate from where the value points.
func (s *certSlot) read(ctx context.Context, store CertStore) *certState {
	switch s.kind {
	case kindStoreID:
		if store == nil {
			return &certState{err: fmt.Errorf("%w: no store for certificate ID %s", ErrNotFound, s.ref)}
		}
		c, err := store.Get(ctx, s.ref)
		if err != nil {
			return &certState{err: err}
		}
		if c.TLS == nil || !c.HasPrivateKey {
			return &certState{id: c.ID, err: fmt.Errorf("%w: store entry %s", ErrNoPrivateKey, c.ID)}
		}
		return newCertState(c.ID, c.TLS, c.NotBefore, c.NotAfter)
	case kindFile:
		stamp, err := statFile(s.ref)
		if err != nil {
			return &certState{err: err}
		}
		data, err := readLimited(s.ref)
		if err != nil {
			return &certState{err: err, stamp: stamp}
		}
		cs := fromPEM(data)
		cs.stamp = stamp
		return cs
	default:
		return fromPEM([]byte(s.ref))
	}
}

// fromPEM reads a certificate with its private key in clear, from a file or
// inline PEM.
func fromPEM(data []byte) *certState {
	p, err := parsePEM(data)
	if err != nil {
		return &certState{err: err}
	}
	if p.leaf == nil {
		return &certState{id: p.id, err: fmt.Errorf("%w: a bare public key cannot be a client certificate", ErrNoPrivateKey)}
	}
	if p.key == nil {
		return &certState{id: p.id, err: fmt.Errorf("%w: the PEM holds no private key", ErrNoPrivateKey)}
	}
	return newCertState(p.id, p.certificate().TLS, p.leaf.NotBefore, p.leaf.NotAfter)
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

// maxFileSize bounds what is read from a file named in a Map.
const maxFileSize = 1 << 20

// readLimited reads a regular PEM file of at most maxFileSize bytes.
func readLimited(path string) ([]byte, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("mtls: %q is not a regular file", path) // a FIFO or device could block or never end
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: no file %q", ErrNotFound, path)
		}
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("mtls: file %q is larger than %d bytes", path, maxFileSize)
	}
	return data, nil
}
