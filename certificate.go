package mtls

import (
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"time"

	"github.com/mtlsgo/mtls/internal/certkit"
)

// This file holds what a store gives (semantics §1 "Certificate ID", §5):
// Certificate and its Metadata, built from an entry's data.

// Fingerprint returns the lowercase hex SHA-256 of der, without separators:
// what `openssl x509 -noout -fingerprint -sha256` prints, colons removed.
// It is the ID of a certificate; the ID of a bare public key is the
// Fingerprint of its SubjectPublicKeyInfo DER.
func Fingerprint(der []byte) string { return certkit.Fingerprint(der) }

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

// NewCertificate returns what a [CertStore]'s Get returns for an entry:
// chain is the certificate DER, leaf first, or nil for a bare public key
// pub; key, nil for none, must match the leaf. It is for the authors of
// stores: the Certificate it returns has its Metadata filled and, with a
// key, its TLS field ready.
func NewCertificate(chain [][]byte, pub crypto.PublicKey, key crypto.Signer) (*Certificate, error) {
	p := &certkit.Parsed{Chain: chain, Pub: pub}
	if len(chain) > 0 {
		leaf, err := certkit.ParseChain(chain)
		if err != nil {
			return nil, fromKit(err)
		}
		p.Leaf, p.Pub, p.SPKI, p.ID = leaf, leaf.PublicKey, leaf.RawSubjectPublicKeyInfo, Fingerprint(leaf.Raw)
	} else {
		spki, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, errorf("public key: %w", err)
		}
		p.SPKI, p.ID = spki, Fingerprint(spki)
	}
	if key != nil && (p.Leaf == nil || !certkit.KeyMatches(key, p.Pub)) {
		return nil, errors.New("mtls: the private key does not match the leaf certificate")
	}
	p.Key = key
	return newCertificate(certkit.NewData(p, p.Chain, nil), key), nil
}

// newCertificate returns the Certificate of d with its key, if any.
func newCertificate(d *certkit.Data, key crypto.Signer) *Certificate {
	c := &Certificate{Metadata: metadataOf(d, key != nil || d.Sealed != nil), Leaf: d.Leaf, PublicKey: d.Pub, spki: d.SPKI, pin: pinOf(d.SPKI)}
	if key != nil {
		c.TLS = &tls.Certificate{Certificate: d.Chain, PrivateKey: key, Leaf: d.Leaf}
	}
	return c
}

func metadataOf(d *certkit.Data, hasKey bool) Metadata {
	m := Metadata{ID: d.ID, Fingerprint: d.ID, HasPrivateKey: hasKey}
	if leaf := d.Leaf; leaf != nil {
		m.Issuer = leaf.Issuer.String()
		m.Subject = leaf.Subject.String()
		m.NotBefore = leaf.NotBefore.UTC()
		m.NotAfter = leaf.NotAfter.UTC()
		m.DNSNames = leaf.DNSNames
		m.IsCA = leaf.IsCA
	}
	return m
}

// cloneMetadata returns a copy of m that the caller may keep.
func cloneMetadata(m Metadata) Metadata {
	m.DNSNames = append([]string(nil), m.DNSNames...)
	return m
}
