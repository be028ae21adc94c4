package certkit

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Limits on what Add accepts, checked before any expensive parsing.
const (
	MaxPEMSize  = 1 << 20  // bytes of PEM input
	MaxChainLen = 16       // CERTIFICATE blocks in one chain
	maxRSABits  = 8192     // RSA modulus size, for keys and certificates
	maxKeyDER   = 16 << 10 // bytes of one private or public key block
)

// Parsed is PEM data checked against the rules of Add (expiry is NOT checked here).
type Parsed struct {
	Chain [][]byte          // certificate DER, leaf first; nil for a bare public key
	Leaf  *x509.Certificate // nil for a bare public key
	Pub   crypto.PublicKey
	SPKI  []byte        // SubjectPublicKeyInfo DER of Pub
	Key   crypto.Signer // nil when the data holds no private key
	ID    string        // Fingerprint of the leaf DER, or of SPKI for a bare key
}

// Errors of this package that callers and tests tell apart. They carry no
// "mtls: " prefix: the store that returns them adds it.
var (
	// ErrCorrupt: a stored entry failed its checks; stores report it as not
	// found.
	ErrCorrupt = errors.New("the store entry is corrupt")
	// ErrDecrypt: a sealed key or a store's check value did not open.
	ErrDecrypt = errors.New("cannot decrypt private key")
	// ErrExpired: a leaf is past its NotAfter.
	ErrExpired = errors.New("certificate expired")

	ErrNoPEM     = errors.New("no PEM data found (expected CERTIFICATE blocks, an optional private key, or one PUBLIC KEY block)")
	ErrEncrypted = errors.New("encrypted private keys are not supported: decrypt the key first (openssl pkey -in key.pem -out plain.pem)")
)

// Parse checks data against the rules of CertStore.Add, except the
// expiry of the leaf, and parses it. Non-PEM text between blocks is
// ignored, as openssl does; "EC PARAMETERS" blocks (written by openssl
// ecparam -genkey) are skipped.
func Parse(data []byte) (*Parsed, error) {
	if len(data) > MaxPEMSize {
		return nil, fmt.Errorf("PEM data of %d bytes is over the limit of %d bytes", len(data), MaxPEMSize)
	}
	b, err := splitBlocks(data)
	if err != nil {
		return nil, err
	}
	switch {
	case b.pub != nil && len(b.certs) > 0:
		return nil, errors.New("a PUBLIC KEY block cannot be mixed with certificates (give either a certificate chain or one public key)")
	case b.pub != nil && b.key != nil:
		return nil, errors.New("a PUBLIC KEY block cannot be mixed with a private key (give the certificate with its key)")
	case b.pub != nil:
		return ParsePublicKey(b.pub.Bytes)
	case len(b.certs) == 0 && b.key != nil:
		return nil, errors.New("a private key without a certificate (give the certificate chain, leaf first, with the key)")
	case len(b.certs) == 0:
		return nil, ErrNoPEM
	}
	leaf, err := ParseChain(b.certs)
	if err != nil {
		return nil, err
	}
	p := fromChain(b.certs, leaf)
	if b.key != nil {
		key, err := parsePrivateKey(b.key.Bytes)
		if err != nil {
			return nil, err
		}
		if !KeyMatches(key, leaf.PublicKey) {
			return nil, errors.New("the private key does not match the leaf certificate (the first CERTIFICATE block must be the leaf)")
		}
		p.Key = key
	}
	return p, nil
}

// blocks are the PEM blocks of Add's input, by kind.
type blocks struct {
	certs [][]byte
	key   *pem.Block
	pub   *pem.Block
}

// splitBlocks sorts the PEM blocks of data by kind, refusing what Add never
// accepts: unknown or encrypted blocks, two keys, a malformed block.
func splitBlocks(data []byte) (blocks, error) {
	var b blocks
	n := 0
	for rest := data; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		n++
		switch block.Type {
		case "CERTIFICATE":
			if len(b.certs) == MaxChainLen {
				return b, fmt.Errorf("more than %d certificates in one chain", MaxChainLen)
			}
			b.certs = append(b.certs, block.Bytes)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if isEncryptedBlock(block) {
				return b, ErrEncrypted
			}
			if b.key != nil {
				return b, errors.New("more than one private key in PEM data (at most one, matching the leaf certificate)")
			}
			b.key = block
		case "ENCRYPTED PRIVATE KEY":
			return b, ErrEncrypted
		case "PUBLIC KEY":
			if b.pub != nil {
				return b, errors.New("more than one PUBLIC KEY block in PEM data (exactly one is allowed)")
			}
			b.pub = block
		case "EC PARAMETERS":
			// openssl ecparam -genkey writes it before the key: redundant.
		default:
			return b, fmt.Errorf("unexpected PEM block %q (expected CERTIFICATE, PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY or PUBLIC KEY)", Truncate(block.Type, 40))
		}
	}
	begins := bytes.Count(data, []byte("-----BEGIN"))
	switch {
	case n == 0 && begins == 0:
		return b, ErrNoPEM
	case begins != n:
		return b, errors.New("malformed PEM block (truncated, corrupt base64 or missing END line)")
	}
	return b, nil
}

// ParseChain parses certificate DER, leaf first, and returns the leaf.
func ParseChain(certs [][]byte) (*x509.Certificate, error) {
	var leaf *x509.Certificate
	for i, der := range certs {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of %d: %w", i+1, len(certs), err)
		}
		if err := checkPublicKey(c.PublicKey); err != nil {
			return nil, fmt.Errorf("certificate %d of %d: %w", i+1, len(certs), err)
		}
		if i == 0 {
			leaf = c
		}
	}
	return leaf, nil
}

// ParsePublicKey parses the DER of a PUBLIC KEY block: an RSA, ECDSA or
// Ed25519 SubjectPublicKeyInfo.
func ParsePublicKey(der []byte) (*Parsed, error) {
	if len(der) > maxKeyDER {
		return nil, fmt.Errorf("PUBLIC KEY block of %d bytes is over the limit of %d bytes", len(der), maxKeyDER)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("PUBLIC KEY block: %w", err)
	}
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("PUBLIC KEY block: unsupported key type %T (RSA, ECDSA or Ed25519 only)", pub)
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, fmt.Errorf("PUBLIC KEY block: %w", err)
	}
	spki := slices.Clone(der)
	return &Parsed{Pub: pub, SPKI: spki, ID: Fingerprint(spki)}, nil
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
		return nil, fmt.Errorf("private key block of %d bytes is over the limit of %d bytes", len(der), maxKeyDER)
	}
	if n := rsaModulusBits(der, 0); n > maxRSABits {
		return nil, fmt.Errorf("RSA private key of %d bits is over the limit of %d bits", n, maxRSABits)
	}
	var key any
	var err error
	if key, err = x509.ParsePKCS1PrivateKey(der); err != nil {
		if key, err = x509.ParsePKCS8PrivateKey(der); err != nil {
			if key, err = x509.ParseECPrivateKey(der); err != nil {
				return nil, errors.New("cannot parse the private key (expected PKCS#1, PKCS#8 or SEC 1 DER)")
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
	return nil, fmt.Errorf("unsupported private key type %T (RSA, ECDSA or Ed25519 only)", key)
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

func KeyMatches(key crypto.Signer, pub crypto.PublicKey) bool {
	k, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(pub)
}

// fromChain returns the Parsed of a checked chain and its parsed leaf.
func fromChain(chain [][]byte, leaf *x509.Certificate) *Parsed {
	return &Parsed{Chain: chain, Leaf: leaf, Pub: leaf.PublicKey, SPKI: leaf.RawSubjectPublicKeyInfo, ID: Fingerprint(leaf.Raw)}
}

// CheckNotExpired reports a leaf past its NotAfter at now.
func CheckNotExpired(p *Parsed, now time.Time) error {
	if p.Leaf != nil && now.After(p.Leaf.NotAfter) {
		return fmt.Errorf("%w: %s (%s) was valid until %s", ErrExpired, p.ID, p.Leaf.Subject, p.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// Fingerprint returns the lowercase hex SHA-256 of der: a certificate's ID
// when der is the leaf, a bare public key's when der is its SPKI.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// IsID reports whether id is 64 lowercase hex digits, without allocating.
func IsID(id string) bool {
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

// Truncate cuts s to n bytes for an error message.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
