// Package mtlstest makes throw-away certificate authorities, certificates
// and mTLS upstreams for tests and demonstrations, in the manner of
// net/http/httptest.
//
// A test of a proxy's upstream mTLS needs a CA, a client certificate for the
// proxy to present, and an upstream that requires one and says which it got:
//
//	func TestProxyPresentsItsCertificate(t *testing.T) {
//		ca := mtlstest.MustCA(t, "test CA")
//		client := ca.MustIssue(t, mtlstest.Options{CommonName: "proxy-client"})
//		up := mtlstest.NewUpstream(t, ca) // closed when the test ends
//
//		// ... point the proxy at up.URL, trusting up.Pool and presenting
//		// client, and send a request through it ...
//
//		if seen := up.Seen(); len(seen) != 1 || seen[0].ID != client.ID() {
//			t.Errorf("upstream saw %+v, want one request with %s", seen, client.ID())
//		}
//	}
//
// The package example is such a test, with a Selector of package mtls as
// the proxy's transport.
//
// The Must functions and NewUpstream take a [testing.TB] and fail it; NewCA,
// [CA.Issue] and [StartUpstream] return errors instead, for programs such as
// demonstrations.
//
// Nothing this package makes may be trusted outside the process that made
// it: keys are generated in memory with no care for their protection, and
// certificates are valid from an hour ago for a day by default. Trust a CA's
// Pool only in the clients of the same test.
//
// The package uses the standard library only.
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
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"
)

// KeyType names the kind of key to generate.
type KeyType string

// Key types understood by [CA.Issue] (in [Options.Key]). The zero value
// means [P256]. CAs always have P-256 keys.
const (
	P256    KeyType = "p256"    // ECDSA on NIST P-256, the default
	RSA2048 KeyType = "rsa2048" // RSA, 2048 bits
	Ed25519 KeyType = "ed25519" // Ed25519
)

// CA is a certificate authority that lives in memory: a root made by
// [NewCA] or [MustCA], or an intermediate made by [CA.Intermediate].
// Its fields are for reading; do not modify them.
type CA struct {
	// Cert is the CA's certificate.
	Cert *x509.Certificate
	// Key is the CA's private key, a P-256 ECDSA key.
	Key crypto.Signer
	// CertPEM is Cert as one PEM CERTIFICATE block.
	CertPEM []byte
	// Chain holds the PEM of the intermediates between this CA and the root,
	// nearest first; empty for a root.
	Chain []byte
	// Pool trusts the root of this CA, and so every certificate issued
	// under the root: give it to the clients (RootCAs) and servers
	// (ClientCAs) of a test.
	Pool *x509.CertPool

	root bool
}

// NewCA makes a self-signed root CA named name (its subject is CN=name,
// O=mtlstest) with a P-256 key, valid from an hour ago for a day.
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

// Intermediate makes an intermediate CA named name, signed by ca, with a
// P-256 key, valid from an hour ago for a day. The leaves it issues carry
// it and ca's own intermediates in their chains; its Pool is ca's.
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
	CommonName string     // default "leaf"; the subject is CN=CommonName,O=mtlstest
	DNSNames   []string   // subject alternative names; default none
	IPs        []net.IP   // subject alternative names; default none
	URIs       []*url.URL // subject alternative names, such as SPIFFE IDs; default none
	Key        KeyType    // default P256
	// NotBefore and NotAfter bound validity; zero: an hour ago, a day from now.
	NotBefore, NotAfter time.Time
}

// Leaf is a certificate issued by a [CA], with its private key. Its fields
// are for reading; do not modify them.
type Leaf struct {
	// Cert is the leaf certificate.
	Cert *x509.Certificate
	// Key is its private key.
	Key crypto.Signer
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

// ID returns the lowercase hex SHA-256 of the leaf's DER: the ID a store
// of package mtls gives the certificate, and what
// `openssl x509 -noout -fingerprint -sha256` prints, without colons.
func (l *Leaf) ID() string {
	return fingerprint(l.Cert.Raw)
}

// Pin returns the leaf's public key pin in the form curl's --pinnedpubkey
// takes, and that a PinnedPublicKeys value of package mtls accepts:
// "sha256//" followed by the standard base64 of the SHA-256 of the leaf's
// SubjectPublicKeyInfo DER.
func (l *Leaf) Pin() string {
	sum := sha256.Sum256(l.Cert.RawSubjectPublicKeyInfo)
	return "sha256//" + base64.StdEncoding.EncodeToString(sum[:])
}

// fingerprint is the lowercase hex SHA-256 of der.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// MustCA is [NewCA] for tests: it fails tb (with tb.Fatalf) instead of
// returning an error.
func MustCA(tb testing.TB, name string) *CA {
	tb.Helper()
	ca, err := NewCA(name)
	if err != nil {
		tb.Fatalf("mtlstest: CA %q: %v", name, err)
	}
	return ca
}

// MustIssue is [CA.Issue] for tests: it fails tb (with tb.Fatalf) instead
// of returning an error, for instance for an unknown [KeyType].
func (ca *CA) MustIssue(tb testing.TB, o Options) *Leaf {
	tb.Helper()
	leaf, err := ca.Issue(o)
	if err != nil {
		tb.Fatalf("mtlstest: issue a leaf certificate: %v", err)
	}
	return leaf
}

// Issue makes a leaf certificate signed by ca, for both client and server
// authentication, as o describes (see [Options] for the defaults). Its
// chain, in [Leaf.CertPEM] and [Leaf.TLS], holds ca and ca's intermediates
// unless ca is a root. It fails only for an unknown [KeyType] or when the
// system's random source does.
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
		URIs:        o.URIs,
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
// requires and verifies client certificates issued under clients' root
// (clients.Pool), with TLS 1.2 as the minimum version. It names no
// application protocol (NextProtos is empty). [NewUpstream] serves with it.
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
