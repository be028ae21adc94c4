// Package mtlstest makes throw-away certificate authorities and certificates
// for tests and demonstrations, in the manner of net/http/httptest.
//
// Nothing it makes is meant to be trusted outside the process that made it:
// keys live in memory, and certificates are valid for a day by default.
package mtlstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// KeyType names the kind of key to generate.
type KeyType string

// Key types understood by [CA.Issue] and [NewCA]. The zero value means [P256].
const (
	P256    KeyType = "p256"
	RSA2048 KeyType = "rsa2048"
	Ed25519 KeyType = "ed25519"
)

// CA is a certificate authority that lives in memory.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	// Chain holds the PEM of the intermediates between this CA and the root,
	// nearest first; empty for a root.
	Chain []byte
	// Pool trusts the root of this CA.
	Pool *x509.CertPool

	root bool
}

// NewCA makes a self-signed root CA with a P-256 key, named name.
func NewCA(name string) (*CA, error) {
	key, err := generateKey(P256)
	if err != nil {
		return nil, err
	}
	cert, certPEM, err := sign(caTemplate(name), nil, key.Public(), key)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, Key: key, CertPEM: certPEM, Pool: pool, root: true}, nil
}

func caTemplate(name string) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"mtlstest"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// Intermediate makes an intermediate CA signed by ca.
func (ca *CA) Intermediate(name string) (*CA, error) {
	key, err := generateKey(P256)
	if err != nil {
		return nil, err
	}
	cert, certPEM, err := sign(caTemplate(name), ca, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM, Chain: ca.chainToSend(), Pool: ca.Pool}, nil
}

// Options describe a leaf certificate for [CA.Issue]. The zero value makes a
// P-256 client and server certificate named "leaf", valid from an hour ago
// for a day.
type Options struct {
	CommonName string   // default "leaf"
	DNSNames   []string // default none
	IPs        []net.IP // default none
	Key        KeyType  // default P256
	// NotBefore and NotAfter bound validity; zero: an hour ago, a day from now.
	NotBefore, NotAfter time.Time
}

// Leaf is a certificate issued by a [CA], with its private key.
type Leaf struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// CertPEM is the leaf followed by its intermediates, without the key.
	CertPEM []byte
	// KeyPEM is the private key as a PKCS#8 PEM block.
	KeyPEM []byte
	// TLS is the chain and key, ready for a tls.Config.
	TLS tls.Certificate
}

// PEM returns the chain followed by the key, the form a store's Add takes.
func (l *Leaf) PEM() []byte {
	return append(append([]byte{}, l.CertPEM...), l.KeyPEM...)
}

// ID returns the lowercase hex SHA-256 of the leaf's DER.
func (l *Leaf) ID() string {
	sum := sha256.Sum256(l.Cert.Raw)
	return hex.EncodeToString(sum[:])
}

// Issue makes a leaf certificate signed by ca, for both client and server
// authentication.
func (ca *CA) Issue(o Options) (*Leaf, error) {
	if o.CommonName == "" {
		o.CommonName = "leaf"
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(24 * time.Hour)
	}
	key, err := generateKey(o.Key)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: o.CommonName, Organization: []string{"mtlstest"}},
		DNSNames:    o.DNSNames,
		IPAddresses: o.IPs,
		NotBefore:   o.NotBefore,
		NotAfter:    o.NotAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	if _, isRSA := key.(*rsa.PrivateKey); isRSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	cert, certPEM, err := sign(tmpl, ca, key.Public(), key)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("mtlstest: marshal key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	chainPEM := append(append([]byte{}, certPEM...), ca.chainToSend()...)
	tc, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("mtlstest: key pair: %w", err)
	}
	tc.Leaf = cert
	return &Leaf{Cert: cert, Key: key, CertPEM: chainPEM, KeyPEM: keyPEM, TLS: tc}, nil
}

// chainToSend is what a leaf of ca sends above itself: ca unless it is a
// root, and ca's own intermediates.
func (ca *CA) chainToSend() []byte {
	if ca.root {
		return nil // a root is never sent
	}
	return append(append([]byte{}, ca.CertPEM...), ca.Chain...)
}

// ServerConfig returns a tls.Config for a server presenting leaf that
// requires and verifies client certificates issued under clients.
func ServerConfig(leaf *Leaf, clients *CA) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{leaf.TLS},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clients.Pool,
		MinVersion:   tls.VersionTLS12,
	}
}

func generateKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case "", P256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("mtlstest: unknown key type %q", t)
}

func sign(tmpl *x509.Certificate, parent *CA, pub crypto.PublicKey, self crypto.Signer) (*x509.Certificate, []byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	issuer, signer := tmpl, self
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
	}
	if issuer == nil || signer == nil {
		return nil, nil, errors.New("mtlstest: no issuer")
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, pub, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("mtlstest: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
