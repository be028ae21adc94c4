package mtls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// CertStore holds certificate chains, with or without their private keys,
// and bare public keys, each under its ID (see [Fingerprint]).
//
// Implementations must be safe for concurrent use by multiple goroutines.
// Every method honours ctx: an implementation returns ctx.Err() when ctx is
// done before it starts, and may return it when ctx ends during slow work
// (I/O, key derivation). Errors wrap [ErrNotFound], [ErrExpired] or
// [ErrDecrypt] where one applies, and name the ID concerned; they never
// contain private key material.
//
// The package's stores are [MemoryStore] and [FileStore]. Package storetest
// checks any implementation against this contract; run it in the tests of
// a new store.
type CertStore interface {
	// Add parses pemData and stores it, returning its ID.
	//
	// pemData holds one or more CERTIFICATE blocks, leaf first, and at most
	// one unencrypted private key matching the leaf (PKCS#1 "RSA PRIVATE
	// KEY", PKCS#8 "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY"); or exactly one
	// PUBLIC KEY block (SubjectPublicKeyInfo). Text around the blocks is
	// ignored. Anything else is rejected with an error saying what is wrong:
	// no PEM data, a malformed block, a key without a certificate, two keys,
	// a key that does not match the leaf, a public key mixed with
	// certificates, an encrypted key, an expired leaf (wrapping
	// [ErrExpired]), or data over the size limits.
	//
	// Adding content that is already stored returns the same ID and no
	// error. Adding the key of a stored certificate attaches the key to it;
	// adding a longer chain for a stored leaf keeps the longer chain. A
	// store that cannot protect private keys at rest (no secret) rejects
	// data holding a key, and stores nothing.
	Add(ctx context.Context, pemData []byte) (id string, err error)

	// Get returns the entry with ID id, its private key (if any) decrypted
	// and ready for TLS in [Certificate.TLS]. An unknown or malformed ID
	// gives an error wrapping [ErrNotFound]; a key that cannot be
	// decrypted, one wrapping [ErrDecrypt].
	//
	// The returned Certificate may be shared with other callers and cached
	// by the store: callers must not modify it, nor anything it points to.
	Get(ctx context.Context, id string) (*Certificate, error)

	// Delete removes the entry with ID id, and its key. An unknown or
	// malformed ID gives an error wrapping [ErrNotFound]. A Get that
	// starts after Delete returns does not return the entry.
	Delete(ctx context.Context, id string) error

	// List returns the IDs of the stored entries, sorted. It returns an
	// empty slice, not an error, for an empty store. A store may list an
	// entry that it finds unreadable only on Get (as [FileStore] does for
	// a file that another program wrote): Get's error then wraps
	// [ErrNotFound].
	List(ctx context.Context) ([]string, error)
}

// Notifier is implemented by a [CertStore] that reports its own changes,
// so that its users need not poll it. [MemoryStore] and [FileStore]
// implement it.
type Notifier interface {
	// Notify arranges for fn to be called with the ID of every entry that
	// is added, changed (key attached, chain replaced) or deleted, and
	// returns a function that stops the calls. Calling stop more than once
	// is harmless; fn may still be running when stop returns.
	//
	// For a change made in this process through the store, every fn is
	// called synchronously before Add or Delete returns, after the store
	// has released its locks: fn may call any method of the store. Adding
	// content that is already stored may not call fn. fn may be called from
	// several goroutines at once, and must not block for long.
	Notify(fn func(id string)) (stop func())
}

// Metadata describes a stored entry. Stores make it available without
// decrypting anything. For a bare public key the certificate fields are
// zero.
type Metadata struct {
	// ID is the entry's ID: for this package's stores, equal to
	// Fingerprint. Stores that scope entries by organisation may prefix
	// it with the organisation.
	ID string `json:"id"`
	// Fingerprint is the lowercase hex SHA-256 of the leaf's DER, or of the
	// SubjectPublicKeyInfo DER of a bare public key (see [Fingerprint]).
	Fingerprint string `json:"fingerprint"`
	// HasPrivateKey reports whether the store holds the leaf's private key.
	HasPrivateKey bool `json:"has_private_key"`
	// Issuer and Subject are the leaf's names, as
	// [crypto/x509/pkix.Name.String] formats them.
	Issuer  string `json:"issuer"`
	Subject string `json:"subject"`
	// NotBefore and NotAfter bound the leaf's validity, in UTC.
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// DNSNames are the leaf's DNS subject alternative names (nil if none).
	DNSNames []string `json:"dns_names"`
	// IsCA reports whether the leaf is a CA certificate.
	IsCA bool `json:"is_ca"`
}

// Certificate is a stored certificate chain, or a bare public key, as
// [CertStore.Get] returns it. Values returned by a store are shared: do not
// modify them.
type Certificate struct {
	Metadata
	// Leaf is the parsed leaf certificate; nil for a bare public key.
	Leaf *x509.Certificate
	// PublicKey is the leaf's public key, or the bare public key.
	PublicKey crypto.PublicKey
	// TLS holds the chain (leaf first) and the decrypted private key, with
	// its Leaf field set, ready for [tls.Config.GetClientCertificate] or
	// [tls.Config.Certificates]; nil when the store holds no private key.
	TLS *tls.Certificate

	spki []byte // SubjectPublicKeyInfo DER of PublicKey, when known
	pin  string // cached Pin()
}

// Pin returns the SHA-256 of the certificate's SubjectPublicKeyInfo DER in
// the form curl's --pinnedpubkey and Envoy's verify_certificate_spki take:
// "sha256//" followed by the standard base64 of the hash. It returns "" if
// the public key cannot be encoded.
func (c *Certificate) Pin() string {
	if c.pin != "" {
		return c.pin
	}
	spki := c.spki
	if c.Leaf != nil {
		spki = c.Leaf.RawSubjectPublicKeyInfo
	}
	if len(spki) == 0 {
		var err error
		if spki, err = x509.MarshalPKIXPublicKey(c.PublicKey); err != nil {
			return ""
		}
	}
	return pinOf(spki)
}

func pinOf(spki []byte) string { return hashPin(sha256.Sum256(spki)) }

// Limits on what Add accepts, checked before any expensive parsing.
const (
	maxPEMSize  = 1 << 20  // bytes of PEM input
	maxChainLen = 16       // CERTIFICATE blocks in one chain
	maxRSABits  = 8192     // RSA modulus size, for keys and certificates
	maxKeyDER   = 16 << 10 // bytes of one private or public key block
)

// parsedPEM is PEM data checked against the rules of Add (expiry is NOT checked here).
type parsedPEM struct {
	chain [][]byte          // certificate DER, leaf first; nil for a bare public key
	leaf  *x509.Certificate // nil for a bare public key
	pub   crypto.PublicKey
	spki  []byte        // SubjectPublicKeyInfo DER of pub
	key   crypto.Signer // nil when the data holds no private key
	id    string        // Fingerprint(leaf DER), or Fingerprint(spki) for a bare key
}

// Errors of parsePEM that callers or tests may want to tell apart.
var (
	errNoPEM     = errors.New("mtls: no PEM data found (expected CERTIFICATE blocks, an optional private key, or one PUBLIC KEY block)")
	errEncrypted = errors.New("mtls: encrypted private keys are not supported: decrypt the key first (openssl pkey -in key.pem -out plain.pem)")
)

// parsePEM checks data against the rules of [CertStore.Add], except the
// expiry of the leaf, and parses it. Non-PEM text between blocks is
// ignored, as openssl does; "EC PARAMETERS" blocks (written by openssl
// ecparam -genkey) are skipped.
func parsePEM(data []byte) (*parsedPEM, error) {
	if len(data) > maxPEMSize {
		return nil, fmt.Errorf("mtls: PEM data of %d bytes is over the limit of %d bytes", len(data), maxPEMSize)
	}
	var (
		certs    [][]byte
		keyBlock *pem.Block
		pubBlock *pem.Block
		blocks   int
	)
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks++
		switch b.Type {
		case "CERTIFICATE":
			if len(certs) == maxChainLen {
				return nil, fmt.Errorf("mtls: more than %d certificates in one chain", maxChainLen)
			}
			certs = append(certs, b.Bytes)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if isEncryptedBlock(b) {
				return nil, errEncrypted
			}
			if keyBlock != nil {
				return nil, errors.New("mtls: more than one private key in PEM data (at most one, matching the leaf certificate)")
			}
			keyBlock = b
		case "ENCRYPTED PRIVATE KEY":
			return nil, errEncrypted
		case "PUBLIC KEY":
			if pubBlock != nil {
				return nil, errors.New("mtls: more than one PUBLIC KEY block in PEM data (exactly one is allowed)")
			}
			pubBlock = b
		case "EC PARAMETERS":
			// openssl ecparam -genkey writes it before the key: redundant.
		default:
			return nil, fmt.Errorf("mtls: unexpected PEM block %q (expected CERTIFICATE, PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY or PUBLIC KEY)", truncateForError(b.Type, 40))
		}
	}
	begins := bytes.Count(data, []byte("-----BEGIN"))
	if blocks == 0 && begins == 0 {
		return nil, errNoPEM
	}
	if begins != blocks {
		return nil, errors.New("mtls: malformed PEM block (truncated, corrupt base64 or missing END line)")
	}

	switch {
	case pubBlock != nil && len(certs) > 0:
		return nil, errors.New("mtls: a PUBLIC KEY block cannot be mixed with certificates (give either a certificate chain or one public key)")
	case pubBlock != nil && keyBlock != nil:
		return nil, errors.New("mtls: a PUBLIC KEY block cannot be mixed with a private key (give the certificate with its key)")
	case pubBlock != nil:
		return parsePublicKeyBlock(pubBlock.Bytes)
	case len(certs) == 0 && keyBlock != nil:
		return nil, errors.New("mtls: a private key without a certificate (give the certificate chain, leaf first, with the key)")
	case len(certs) == 0:
		return nil, errNoPEM
	}

	leaf, err := parseChain(certs)
	if err != nil {
		return nil, err
	}
	p := &parsedPEM{
		chain: certs,
		leaf:  leaf,
		pub:   leaf.PublicKey,
		spki:  leaf.RawSubjectPublicKeyInfo,
		id:    Fingerprint(leaf.Raw),
	}
	if keyBlock != nil {
		key, err := parsePrivateKey(keyBlock.Bytes)
		if err != nil {
			return nil, err
		}
		if !publicKeyMatches(key, leaf.PublicKey) {
			return nil, errors.New("mtls: the private key does not match the leaf certificate (the first CERTIFICATE block must be the leaf)")
		}
		p.key = key
	}
	return p, nil
}

// parseChain parses certificate DER, leaf first, and returns the leaf.
func parseChain(certs [][]byte) (*x509.Certificate, error) {
	var leaf *x509.Certificate
	for i, der := range certs {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("mtls: certificate %d of %d: %v", i+1, len(certs), err)
		}
		if err := checkPublicKey(c.PublicKey); err != nil {
			return nil, fmt.Errorf("mtls: certificate %d of %d: %v", i+1, len(certs), err)
		}
		if i == 0 {
			leaf = c
		}
	}
	return leaf, nil
}

func parsePublicKeyBlock(der []byte) (*parsedPEM, error) {
	if len(der) > maxKeyDER {
		return nil, fmt.Errorf("mtls: PUBLIC KEY block of %d bytes is over the limit of %d bytes", len(der), maxKeyDER)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("mtls: PUBLIC KEY block: %v", err)
	}
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("mtls: PUBLIC KEY block: unsupported key type %T (RSA, ECDSA or Ed25519 only)", pub)
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, fmt.Errorf("mtls: PUBLIC KEY block: %v", err)
	}
	spki := slices.Clone(der)
	return &parsedPEM{pub: pub, spki: spki, id: Fingerprint(spki)}, nil
}

// checkPublicKey enforces the size limit on RSA keys.
func checkPublicKey(pub crypto.PublicKey) error {
	if k, ok := pub.(*rsa.PublicKey); ok && k.N.BitLen() > maxRSABits {
		return fmt.Errorf("RSA key of %d bits is over the limit of %d bits", k.N.BitLen(), maxRSABits)
	}
	return nil
}

// parsePrivateKey parses a PKCS#1, PKCS#8 or SEC 1 private key, whatever
// the block type says (as crypto/tls does), after checking its size.
func parsePrivateKey(der []byte) (crypto.Signer, error) {
	if len(der) > maxKeyDER {
		return nil, fmt.Errorf("mtls: private key block of %d bytes is over the limit of %d bytes", len(der), maxKeyDER)
	}
	if n := rsaModulusBits(der, 0); n > maxRSABits {
		return nil, fmt.Errorf("mtls: RSA private key of %d bits is over the limit of %d bits", n, maxRSABits)
	}
	var key any
	var err error
	if key, err = x509.ParsePKCS1PrivateKey(der); err != nil {
		if key, err = x509.ParsePKCS8PrivateKey(der); err != nil {
			if key, err = x509.ParseECPrivateKey(der); err != nil {
				return nil, errors.New("mtls: cannot parse the private key (expected PKCS#1, PKCS#8 or SEC 1 DER)")
			}
		}
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("mtls: unsupported private key type %T (RSA, ECDSA or Ed25519 only)", key)
}

// rsaModulusBits returns the size of the modulus of a PKCS#1 RSA private
// key, or of the PKCS#1 key inside a PKCS#8 one, without parsing the rest;
// 0 when der is neither.
func rsaModulusBits(der []byte, depth int) int {
	in := cryptobyte.String(der)
	var seq, version cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&version, cbasn1.INTEGER) {
		return 0
	}
	switch {
	case seq.PeekASN1Tag(cbasn1.INTEGER): // PKCS#1: version, modulus, ...
		var n cryptobyte.String
		if !seq.ReadASN1(&n, cbasn1.INTEGER) {
			return 0
		}
		for len(n) > 0 && n[0] == 0 {
			n = n[1:]
		}
		if len(n) == 0 {
			return 0
		}
		return (len(n)-1)*8 + bits.Len8(n[0])
	case depth == 0 && seq.PeekASN1Tag(cbasn1.SEQUENCE): // PKCS#8: version, algorithm, key
		var alg, inner cryptobyte.String
		if !seq.ReadASN1(&alg, cbasn1.SEQUENCE) || !seq.ReadASN1(&inner, cbasn1.OCTET_STRING) {
			return 0
		}
		return rsaModulusBits(inner, depth+1)
	}
	return 0
}

func isEncryptedBlock(b *pem.Block) bool {
	if _, ok := b.Headers["DEK-Info"]; ok {
		return true
	}
	return bytes.Contains([]byte(b.Headers["Proc-Type"]), []byte("ENCRYPTED"))
}

func publicKeyMatches(key crypto.Signer, pub crypto.PublicKey) bool {
	k, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(pub)
}

// certificate returns p as a store's Get would: Metadata filled, and TLS
// set (with Leaf) when p holds a private key.
func (p *parsedPEM) certificate() *Certificate {
	return newCertificate(metadataOf(p.id, p.leaf, p.key != nil), p.chain, p.leaf, p.pub, p.spki, p.key)
}

func metadataOf(id string, leaf *x509.Certificate, hasKey bool) Metadata {
	m := Metadata{ID: id, Fingerprint: id, HasPrivateKey: hasKey}
	if leaf != nil {
		m.Issuer = leaf.Issuer.String()
		m.Subject = leaf.Subject.String()
		m.NotBefore = leaf.NotBefore.UTC()
		m.NotAfter = leaf.NotAfter.UTC()
		m.DNSNames = leaf.DNSNames
		m.IsCA = leaf.IsCA
	}
	return m
}

func newCertificate(m Metadata, chain [][]byte, leaf *x509.Certificate, pub crypto.PublicKey, spki []byte, key crypto.Signer) *Certificate {
	c := &Certificate{Metadata: m, Leaf: leaf, PublicKey: pub, spki: spki, pin: pinOf(spki)}
	if key != nil {
		c.TLS = &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}
	}
	return c
}

// checkNotExpired rejects a leaf past its NotAfter.
func checkNotExpired(p *parsedPEM, now time.Time) error {
	if p.leaf != nil && now.After(p.leaf.NotAfter) {
		return fmt.Errorf("%w: %s (%s) expired at %s", ErrExpired, p.id, p.leaf.Subject, p.leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// isPlainID reports whether id is 64 lowercase hex digits, without
// allocating.
func isPlainID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkID returns nil for a plain ID and an error wrapping ErrNotFound
// otherwise; stores never use anything but a plain ID as a key or a file
// name.
func checkID(id string) error {
	if isPlainID(id) {
		return nil
	}
	return fmt.Errorf("%w: %q is not a certificate ID (64 lowercase hex digits)", ErrNotFound, truncateForError(id, 80))
}

func errIDNotFound(id string) error {
	return fmt.Errorf("%w: no certificate or key with ID %s", ErrNotFound, id)
}

func storeCtxErr(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	return ctx.Err()
}

func truncateForError(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// storeData is an entry as a store keeps it: everything but the plaintext
// private key.
type storeData struct {
	meta   Metadata
	chain  [][]byte
	leaf   *x509.Certificate
	pub    crypto.PublicKey
	spki   []byte
	sealed []byte // sealKey output; nil when the entry has no key
}

// mergeAdd decides what storing p over cur (nil when absent) gives: the
// chain to keep, the sealed key to keep, whether p's key must be sealed,
// and whether anything changes. The longer chain is kept; of two chains of
// one length, the one added last. A key already stored is kept.
func mergeAdd(cur *storeData, p *parsedPEM) (chain [][]byte, sealed []byte, sealNew, changed bool) {
	if cur == nil {
		return p.chain, nil, p.key != nil, true
	}
	chain, sealed = cur.chain, cur.sealed
	if len(p.chain) > len(cur.chain) || (len(p.chain) == len(cur.chain) && !slices.EqualFunc(p.chain, cur.chain, bytes.Equal)) {
		chain, changed = p.chain, true
	}
	if sealed == nil && p.key != nil {
		sealNew, changed = true, true
	}
	return chain, sealed, sealNew, changed
}

func newStored(p *parsedPEM, chain [][]byte, sealed []byte) *storeData {
	return &storeData{
		meta:   metadataOf(p.id, p.leaf, sealed != nil),
		chain:  chain,
		leaf:   p.leaf,
		pub:    p.pub,
		spki:   p.spki,
		sealed: sealed,
	}
}

// metadata returns a copy of the entry's metadata that the caller may keep.
func (s *storeData) metadata() Metadata {
	m := s.meta
	m.DNSNames = slices.Clone(m.DNSNames)
	return m
}
