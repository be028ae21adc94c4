// Package storetest checks implementations of [mtls.CertStore] against the
// behaviour the mtls package documents, in the manner of testing/fstest:
//
//	func TestMyStore(t *testing.T) {
//		storetest.TestStore(t, func(t *testing.T) mtls.CertStore {
//			return mystore.New(t.TempDir(), []byte("secret"))
//		})
//	}
//
// It uses the standard testing package only, and makes its own throw-away
// certificates with package mtlstest.
package storetest

import (
	"bytes"
	"context"
	"crypto"
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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
)

// TestStore runs the conformance suite as subtests of t: adding, getting,
// listing and deleting entries; the same content giving the same ID; a key
// attached to a stored certificate; a longer chain kept; every rejection
// of Add; ErrNotFound for unknown and malformed IDs; metadata; certificates
// usable for TLS; concurrent use (run the suite with -race); cancelled
// contexts; and, for a store implementing [mtls.Notifier], notifications
// before Add and Delete return. A store with a method
// Metadata(ctx, id) (mtls.Metadata, error) has it checked against Get.
//
// newStore is called once per subtest and must return a new, empty store
// able to hold private keys (with a secret). It may use t.Cleanup to close
// what it opens.
func TestStore(t *testing.T, newStore func(t *testing.T) mtls.CertStore) {
	t.Helper()
	f, err := newFixtures()
	if err != nil {
		t.Fatalf("storetest: making certificates: %v", err)
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, f *fixtures, newStore func(t *testing.T) mtls.CertStore)
	}{
		{"AddGetDeleteList", testAddGetDeleteList},
		{"SameContentSameID", testSameContent},
		{"AttachKey", testAttachKey},
		{"LongerChainKept", testLongerChain},
		{"PublicKey", testPublicKey},
		{"Rejections", testRejections},
		{"ErrorsQuoteNoKey", testErrorsCarryNoKey},
		{"UnknownID", testUnknownID},
		{"Metadata", testMetadata},
		{"TLSUsable", testTLSUsable},
		{"CacheNeverOutlivesChange", testCache},
		{"Context", testContext},
		{"Concurrent", testConcurrent},
		{"Notify", testNotify},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, f, newStore) })
	}
}

// fixtures are the certificates the suite adds.
type fixtures struct {
	ca, inter       *mtlstest.CA
	p256, rsa, ed   *mtlstest.Leaf // p256 is issued by inter (chain of 2), the others by ca
	deep            *mtlstest.Leaf // issued under inter2, under inter: chain of 3
	other           *mtlstest.Leaf
	expired, server *mtlstest.Leaf
	bigRSA          []byte // CERTIFICATE PEM of a leaf with a 9000-bit RSA key
	bigRSAPub       []byte // PUBLIC KEY PEM of a 9000-bit RSA key
}

func newFixtures() (*fixtures, error) {
	f := &fixtures{}
	var err error
	if f.ca, err = mtlstest.NewCA("storetest root"); err != nil {
		return nil, err
	}
	if f.inter, err = f.ca.Intermediate("storetest intermediate"); err != nil {
		return nil, err
	}
	inter2, err := f.inter.Intermediate("storetest intermediate 2")
	if err != nil {
		return nil, err
	}
	for _, l := range []struct {
		dst *(*mtlstest.Leaf)
		ca  *mtlstest.CA
		o   mtlstest.Options
	}{
		{&f.p256, f.inter, mtlstest.Options{CommonName: "p256 client", DNSNames: []string{"client.example", "alt.client.example"}}},
		{&f.rsa, f.ca, mtlstest.Options{CommonName: "rsa client", Key: mtlstest.RSA2048}},
		{&f.ed, f.ca, mtlstest.Options{CommonName: "ed25519 client", Key: mtlstest.Ed25519}},
		{&f.deep, inter2, mtlstest.Options{CommonName: "deep client"}},
		{&f.other, f.ca, mtlstest.Options{CommonName: "other"}},
		{&f.expired, f.ca, mtlstest.Options{CommonName: "expired", NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}},
		{&f.server, f.ca, mtlstest.Options{CommonName: "server", DNSNames: []string{"server.example"}}},
	} {
		if *l.dst, err = l.ca.Issue(l.o); err != nil {
			return nil, err
		}
	}
	// A 9000-bit RSA public key needs no private key: any odd modulus will do.
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 9000))
	if err != nil {
		return nil, err
	}
	n.SetBit(n, 8999, 1).SetBit(n, 0, 1)
	big := &rsa.PublicKey{N: n, E: 65537}
	tmpl := &x509.Certificate{
		SerialNumber: big1(), Subject: pkix.Name{CommonName: "big rsa"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.ca.Cert, big, f.ca.Key)
	if err != nil {
		return nil, err
	}
	f.bigRSA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	spki, err := x509.MarshalPKIXPublicKey(big)
	if err != nil {
		return nil, err
	}
	f.bigRSAPub = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	return f, nil
}

func big1() *big.Int { return big.NewInt(1) }

// leaves returns the leaves of every key type, by name.
func (f *fixtures) leaves() []struct {
	name string
	leaf *mtlstest.Leaf
} {
	return []struct {
		name string
		leaf *mtlstest.Leaf
	}{{"P256", f.p256}, {"RSA", f.rsa}, {"Ed25519", f.ed}}
}

// blocks splits PEM data into its blocks, each re-encoded.
func blocks(data []byte) [][]byte {
	var out [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		out = append(out, pem.EncodeToMemory(b))
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func publicKeyPEM(t *testing.T, pub crypto.PublicKey) (pemData []byte, id string) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), hex.EncodeToString(sum[:])
}

func add(t *testing.T, s mtls.CertStore, data []byte) string {
	t.Helper()
	id, err := s.Add(context.Background(), data)
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	return id
}

func get(t *testing.T, s mtls.CertStore, id string) *mtls.Certificate {
	t.Helper()
	c, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	if c == nil {
		t.Fatalf("Get(%s) returned nil and no error", id)
	}
	return c
}

func list(t *testing.T, s mtls.CertStore) []string {
	t.Helper()
	ids, err := s.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return ids
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, mtls.ErrNotFound) {
		t.Errorf("%s: error %v, want one wrapping mtls.ErrNotFound", what, err)
	}
}

func testAddGetDeleteList(t *testing.T, f *fixtures, newStore func(t *testing.T) mtls.CertStore) {
	ctx := context.Background()
	for _, l := range f.leaves() {
		t.Run(l.name, func(t *testing.T) {
			s := newStore(t)
			if ids := list(t, s); len(ids) != 0 {
				t.Fatalf("new store lists %v, want nothing", ids)
			}
			id := add(t, s, l.leaf.PEM())
			if id != l.leaf.ID() {
				t.Errorf("Add returned ID %q, want the leaf's SHA-256 %q", id, l.leaf.ID())
			}
			if ids := list(t, s); !slices.Equal(ids, []string{id}) {
				t.Errorf("List = %v, want [%s]", ids, id)
			}
			c := get(t, s, id)
			if c.ID != id || c.Fingerprint != id {
				t.Errorf("Get: ID %q, Fingerprint %q, want both %q", c.ID, c.Fingerprint, id)
			}
			if c.Leaf == nil || !bytes.Equal(c.Leaf.Raw, l.leaf.Cert.Raw) {
				t.Fatalf("Get: Leaf is not the certificate added")
			}
			if c.TLS == nil {
				t.Fatalf("Get: TLS is nil for a certificate added with its key")
			}
			if c.TLS.Leaf == nil || !bytes.Equal(c.TLS.Leaf.Raw, l.leaf.Cert.Raw) {
				t.Errorf("Get: TLS.Leaf is not set to the leaf")
			}
			if want := len(blocks(l.leaf.CertPEM)); len(c.TLS.Certificate) != want {
				t.Errorf("Get: TLS chain has %d certificates, want %d", len(c.TLS.Certificate), want)
			}
			if !c.HasPrivateKey {
				t.Errorf("Get: HasPrivateKey false for a certificate added with its key")
			}
			if err := s.Delete(ctx, id); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			_, err := s.Get(ctx, id)
			wantNotFound(t, "Get after Delete", err)
			wantNotFound(t, "Delete after Delete", s.Delete(ctx, id))
			if ids := list(t, s); len(ids) != 0 {
				t.Errorf("List after Delete = %v, want nothing", ids)
			}
			// Several entries list sorted.
			ids := []string{add(t, s, f.p256.PEM()), add(t, s, f.rsa.PEM()), add(t, s, f.ed.CertPEM)}
			slices.Sort(ids)
			if got := list(t, s); !slices.Equal(got, ids) {
				t.Errorf("List = %v, want the sorted %v", got, ids)
			}
		})
	}
}

func testSameContent(t *testing.T, f *fixtures, newStore func(t *testing.T) mtls.CertStore) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"WithKey", f.p256.PEM()},
		{"CertificateOnly", f.rsa.CertPEM},
		{"TextAround", cat([]byte("subject=CN=x\n"), f.ed.CertPEM, []byte("\ntrailing text\n"), f.ed.KeyPEM)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			id1 := add(t, s, tc.data)
			id2 := add(t, s, tc.data)
			if id1 != id2 {
				t.Errorf("same content added twice gave IDs %q and %q", id1, id2)
			}
			if ids := list(t, s); len(ids) != 1 {
				t.Errorf("List = %v, want one entry", ids)
			}
		})
	}
}

func testAttachKey(t *testing.T, f *fixtures, newStore func(t *testing.T) mtls.CertStore) {
	for _, l := range f.leaves() {
		t.Run(l.name, func(t *testing.T) {
			s := newStore(t)
			id := add(t, s, l.leaf.CertPEM)
			c := get(t, s, id)
			if c.TLS != nil || c.HasPrivateKey {
				t.Fatalf("certificate added without key: TLS %v, HasPrivateKey %v; want nil, false", c.TLS != nil, c.HasPrivateKey)
			}
			if id2 := add(t, s, l.leaf.PEM()); id2 != id {
				t.Fatalf("adding the key gave ID %q, want %q", id2, id)
			}
			c = get(t, s, id)
			if c.TLS == nil || !c.HasPrivateKey {
				t.Fatalf("after adding the key: TLS %v, HasPrivateKey %v; want the key attached", c.TLS != nil, c.HasPrivateKey)
			}
			// Adding the certificate alone again does not drop the key.
			add(t, s, l.leaf.CertPEM)
			if c = get(t, s, id); c.TLS == nil {
				t.Errorf("adding the certificate alone again dropped its key")
			}
			if ids := list(t, s); len(ids) != 1 {
				t.Errorf("List = %v, want one entry", ids)
			}
		})
	}
}

func testLongerChain(t *testing.T, f *fixtures, newStore func(t *testing.T) mtls.CertStore) {
	chain := blocks(f.deep.CertPEM) // leaf, inter2, inter
	if len(chain) != 3 {
		t.Fatalf("fixture chain has %d certificates, want 3", len(chain))
	}
	s := newStore(t)
	id := add(t, s, cat(chain[0], f.deep.KeyPEM))
	wantLen := func(n int, when string) {
		t.Helper()
		c := get(t, s, id)
		if c.TLS == nil {
			t.Fatalf("%s: the key was lost", when)
		}
		if len(c.TLS.Certificate) != n {
			t.Errorf("%s: chain of %d certificates, want %d", when, len(c.TLS.Certificate), n)
		}
	}
	wantLen(1, "leaf alone")
	if id2 := add(t, s, cat(chain[0], chain[1])); id2 != id {
		t.Fatalf("longer chain gave ID %q, want %q", id2, id)
	}
	wantLen(2, "after adding a chain of 2")
	add(t, s, f.deep.CertPEM)
	wantLen(3, "after adding a chain of 3")
	add(t, s, cat(chain[0], f.deep.KeyPEM))
	wantLen(3, "after adding the leaf alone again")
	c := get(t, s, id)
	for i, der := range c.TLS.Certificate {
		b, _ := pem.Decode(chain[i])
		if !bytes.Equal(der, b.Bytes) {
			t.Errorf("chain certificate %d is not the one added", i)
		}
	}
}

func testPublicKey(t *testing.T, f *fixtures, newStore func(t *testing.T) mtls.CertStore) {
	ctx := context.Background()
	for _, l := range f.leaves() {
		t.Run(l.name, func(t *testing.T) {
			s := newStore(t)
			data, wantID := publicKeyPEM(t, l.leaf.Key.Public())
			id := add(t, s, data)
			if id != wantID {
				t.Fatalf("public key ID %q, want the SHA-256 of its SubjectPublicKeyInfo %q", id, wantID)
			}
			if id2 := add(t, s, data); id2 != id {
				t.Errorf("same public key again gave ID %q, want %q", id2, id)
			}
			c := get(t, s, id)
			if c.Leaf != nil || c.TLS != nil || c.HasPrivateKey {
				t.Errorf("bare public key: Leaf %v, TLS %v, HasPrivateKey %v; want nil, nil, false", c.Leaf != nil, c.TLS != nil, c.HasPrivateKey)
			}
			pk, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
			if !ok || !pk.Equal(l.leaf.Key.Public()) {
				t.Errorf("PublicKey is not the key added")
			}
			if c.ID != id || c.Fingerprint != id {
				t.Errorf("ID %q, Fingerprint %q, want %q", c.ID, c.Fingerprint, id)
			}
			sum := sha256.Sum256(l.leaf.Cert.RawSubjectPublicKeyInfo)
			if want := "sha256//" + base64.StdEncoding.EncodeToString(sum[:]); c.Pin() != want {
				t.Errorf("Pin() = %q, want %q", c.Pin(), want)
			}
			// The certificate of the same key is another entry, with the same pin.
			cid := add(t, s, l.leaf.CertPEM)
			if cid == id {
				t.Errorf("certificate and its bare public key share ID %s", id)
			}
			if p := get(t, s, cid).Pin(); p != c.Pin() {
				t.Errorf("certificate pin %q differs from its public key's %q", p, c.Pin())
			}
			if err := s.Delete(ctx, id); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			_, err := s.Get(ctx, id)
			wantNotFound(t, "Get after Delete", err)
		})
	}
}

// rejections are the data Add must refuse. is, when set, is the error the
// refusal must wrap.
func (f *fixtures) rejections(t *testing.T) []struct {
	name string
	data []byte
	is   error
} {
	chain := blocks(f.p256.CertPEM)
	pub, _ := publicKeyPEM(t, f.p256.Key.Public())
	pub2, _ := publicKeyPEM(t, f.rsa.Key.Public())
	keyB, _ := pem.Decode(f.p256.KeyPEM)
	many := [][]byte{}
	for range 17 {
		many = append(many, chain[0])
	}
	full := f.p256.PEM()
	mid := len(full) - len(f.p256.KeyPEM)/2
	return []struct {
		name string
		data []byte
		is   error
	}{
		{"Nil", nil, nil},
		{"Empty", []byte{}, nil},
		{"Whitespace", []byte(" \n\t\n"), nil},
		{"NoPEM", []byte("this is not PEM data at all\n"), nil},
		{"Binary", []byte{0x30, 0x82, 0x01, 0x0a, 0xff, 0x00, 0x13, 0x37}, nil},
		{"DERInsteadOfPEM", f.p256.Cert.Raw, nil},
		{"Truncated", full[:mid], nil},
		{"TruncatedCertificate", f.p256.CertPEM[:len(chain[0])/2], nil},
		{"BadBase64", []byte("-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n"), nil},
		{"GarbageCertificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")}), nil},
		{"KeyAlone", f.p256.KeyPEM, nil},
		{"TwoKeys", cat(f.p256.CertPEM, f.p256.KeyPEM, f.p256.KeyPEM), nil},
		{"KeyNotMatching", cat(f.p256.CertPEM, f.other.KeyPEM), nil},
		{"LeafNotFirst", cat(chain[1], chain[0], f.p256.KeyPEM), nil},
		{"GarbageKey", cat(f.p256.CertPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("garbage")})), nil},
		{"PublicKeyWithCertificate", cat(f.p256.CertPEM, pub), nil},
		{"PublicKeyWithPrivateKey", cat(pub, f.p256.KeyPEM), nil},
		{"TwoPublicKeys", cat(pub, pub2), nil},
		{"Expired", f.expired.PEM(), mtls.ErrExpired},
		{"ExpiredWithoutKey", f.expired.CertPEM, mtls.ErrExpired},
		{"EncryptedPKCS8", cat(f.p256.CertPEM, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: keyB.Bytes})), nil},
		{"EncryptedLegacy", cat(f.p256.CertPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY",
			Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: keyB.Bytes})), nil},
		{"OverOneMiB", cat(full, bytes.Repeat([]byte("# padding\n"), 110_000)), nil},
		{"SeventeenCertificates", cat(many...), nil},
		{"RSAOver8192BitsCertificate", f.bigRSA, nil},
		{"RSAOver8192BitsPublicKey", f.bigRSAPub, nil},
	}
}

func testRejections(t *testing.T, f *fixtures, newStore func(t *testing.T) mtls.CertStore) {
	s := newStore(t)
	for _, tc := range f.rejections(t) {
		t.Run(tc.name, func(t *testing.T) {
			id, err := s.Add(context.Background(), tc.data)
			if err == nil {
				t.Fatalf("Add accepted it, with ID %q", id)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want one wrapping %v", err, tc.is)
			}
			if err.Error() == "" {
				t.Errorf("empty error message")
			}
			if ids := list(t, s); len(ids) != 0 {
				t.Errorf("a rejected Add stored %v", ids)
			}
		})
	}
}

// testErrorsCarryNoKey checks that no error of Add quotes the private key.
func testErrorsCarryNoKey(t *testing.T, f *fixtures, newStore func(t *testing.T) mtls.CertStore) {
	s := newStore(t)
	keyB, _ := pem.Decode(f.p256.KeyPEM)
	b64 := base64.StdEncoding.EncodeToString(keyB.Bytes)
	for _, tc := range f.rejections(t) {
		_, err := s.Add(context.Background(), tc.data)
		if err == nil {
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "-----BEGIN") || strings.Contains(msg, b64[:40]) || strings.Contains(msg, hex.EncodeToString(keyB.Bytes)[:40]) {
			t.Errorf("%s: error quotes the PEM data: %.200s", tc.name, msg)
		}
	}
}

func testUnknownID(t *testing.T, f *fixtures, newStore func(t *testing.T) mtls.CertStore) {
	ctx := context.Background()
	s := newStore(t)
	id := add(t, s, f.p256.PEM())
	unknown := f.rsa.ID()
	_, err := s.Get(ctx, unknown)
	wantNotFound(t, "Get of an unknown ID", err)
	if err != nil && !strings.Contains(err.Error(), unknown) {
		t.Errorf("Get of an unknown ID: error %q does not name the ID", err)
	}
	wantNotFound(t, "Delete of an unknown ID", s.Delete(ctx, unknown))
	for _, bad := range []string{
		"", "x", "../../../etc/passwd", "..", "/", id[:63], id + "0", strings.ToUpper(id),
		id[:60] + "/../", "./" + id[2:], id[:32] + "\x00" + id[33:], id + ".pem",
	} {
		_, err := s.Get(ctx, bad)
		wantNotFound(t, fmt.Sprintf("Get(%q)", bad), err)
		wantNotFound(t, fmt.Sprintf("Delete(%q)", bad), s.Delete(ctx, bad))
	}
	if ids := list(t, s); !slices.Equal(ids, []string{id}) {
		t.Errorf("List = %v after bad Deletes, want [%s]", ids, id)
	}
	get(t, s, id)
}

// metadataStore is the optional method of the package's stores.
type metadataStore interface {
	Metadata(ctx context.Context, id string) (mtls.Metadata, error)
}

func testMetadata(t *testing.T, f *fixtures, newStore func(t *testing.T) mtls.CertStore) {
	ctx := context.Background()
	s := newStore(t)
	ms, hasMeta := s.(metadataStore)
	check := func(t *testing.T, id string, want mtls.Metadata) {
		t.Helper()
		c := get(t, s, id)
		compareMetadata(t, "Get", c.Metadata, want)
		if hasMeta {
			m, err := ms.Metadata(ctx, id)
			if err != nil {
				t.Fatalf("Metadata: %v", err)
			}
			compareMetadata(t, "Metadata", m, want)
		}
	}
	for _, tc := range []struct {
		name string
		leaf *mtlstest.Leaf
		key  bool
	}{
		{"P256WithKey", f.p256, true}, {"RSAWithoutKey", f.rsa, false}, {"Ed25519WithKey", f.ed, true}, {"CA", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cert *x509.Certificate
			var data []byte
			switch {
			case tc.leaf == nil:
				cert, data = f.inter.Cert, f.inter.CertPEM
			case tc.key:
				cert, data = tc.leaf.Cert, tc.leaf.PEM()
			default:
				cert, data = tc.leaf.Cert, tc.leaf.CertPEM
			}
			id := add(t, s, data)
			sum := sha256.Sum256(cert.Raw)
			check(t, id, mtls.Metadata{
				ID: hex.EncodeToString(sum[:]), Fingerprint: hex.EncodeToString(sum[:]), HasPrivateKey: tc.key,
				Issuer: cert.Issuer.String(), Subject: cert.Subject.String(),
				NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DNSNames: cert.DNSNames, IsCA: cert.IsCA,
			})
		})
	}
	t.Run("PublicKey", func(t *testing.T) {
		data, wantID := publicKeyPEM(t, f.ed.Key.Public())
		id := add(t, s, data)
		check(t, id, mtls.Metadata{ID: wantID, Fingerprint: wantID})
	})
	if hasMeta {
		_, err := ms.Metadata(ctx, f.other.ID())
		wantNotFound(t, "Metadata of an unknown ID", err)
		_, err = ms.Metadata(ctx, "../x")
		wantNotFound(t, "Metadata of a malformed ID", err)
	}
}

func compareMetadata(t *testing.T, what string, got, want mtls.Metadata) {
	t.Helper()
	if got.ID != want.ID || got.Fingerprint != want.Fingerprint || got.HasPrivateKey != want.HasPrivateKey ||
		got.Issuer != want.Issuer || got.Subject != want.Subject || got.IsCA != want.IsCA ||
		!got.NotBefore.Equal(want.NotBefore) || !got.NotAfter.Equal(want.NotAfter) ||
		!slices.Equal(got.DNSNames, want.DNSNames) {
		t.Errorf("%s metadata\n got %+v\nwant %+v", what, got, want)
	}
}

func testTLSUsable(t *testing.T, f *fixtures, newStore func(t *testing.T) mtls.CertStore) {
	s := newStore(t)
	for _, l := range f.leaves() {
		t.Run(l.name, func(t *testing.T) {
			c := get(t, s, add(t, s, l.leaf.PEM()))
			if c.TLS == nil {
				t.Fatal("TLS is nil")
			}
			signer, ok := c.TLS.PrivateKey.(crypto.Signer)
			if !ok {
				t.Fatalf("TLS.PrivateKey is a %T, not a crypto.Signer", c.TLS.PrivateKey)
			}
			// Sign and verify as a TLS 1.3 CertificateVerify would.
			msg := []byte("storetest message")
			digest, opts := msg, crypto.SignerOpts(crypto.Hash(0))
			if l.name != "Ed25519" {
				sum := sha256.Sum256(msg)
				digest, opts = sum[:], crypto.SHA256
			}
			sig, err := signer.Sign(rand.Reader, digest, opts)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			algo := map[string]x509.SignatureAlgorithm{"P256": x509.ECDSAWithSHA256, "RSA": x509.SHA256WithRSA, "Ed25519": x509.PureEd25519}[l.name]
			if err := c.Leaf.CheckSignature(algo, msg, sig); err != nil {
				t.Errorf("signature by TLS.PrivateKey does not verify with the leaf: %v", err)
			}
			handshake(t, f, c.TLS)
		})
	}
}

// handshake runs a mutual TLS handshake in which the client presents cert,
// and checks that the server verified it.
func handshake(t *testing.T, f *fixtures, cert *tls.Certificate) {
	t.Helper()
	cc, sc := net.Pipe()
	defer cc.Close()
	defer sc.Close()
	server := tls.Server(sc, mtlstest.ServerConfig(f.server, f.ca))
	client := tls.Client(cc, &tls.Config{
		ServerName: "server.example",
		RootCAs:    f.ca.Pool,
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- server.HandshakeContext(ctx) }()
	if err := client.HandshakeContext(ctx); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	peers := server.ConnectionState().PeerCertificates
	if len(peers) == 0 || !bytes.Equal(peers[0].Raw, cert.Leaf.Raw) {
		t.Fatalf("server did not receive the stored certificate")
	}
}

func testCache(t *testing.T, f *fixtures, newStore func(t *testing.T) mtls.CertStore) {
	ctx := context.Background()
	s := newStore(t)
	id := add(t, s, f.p256.PEM())
	if get(t, s, id).TLS == nil {
		t.Fatal("no key")
	}
	if err := s.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(ctx, id)
	wantNotFound(t, "Get after Delete of a cached entry", err)
	add(t, s, f.p256.CertPEM)
	if c := get(t, s, id); c.TLS != nil || c.HasPrivateKey {
		t.Errorf("after Delete and Add without the key, Get still returns the old key")
	}
	add(t, s, f.p256.PEM())
	if c := get(t, s, id); c.TLS == nil {
		t.Errorf("after attaching the key, Get returns the cached entry without it")
	}
}

func testContext(t *testing.T, f *fixtures, newStore func(t *testing.T) mtls.CertStore) {
	s := newStore(t)
	id := add(t, s, f.p256.PEM())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Add(ctx, f.rsa.PEM()); !errors.Is(err, context.Canceled) {
		t.Errorf("Add with a cancelled context: error %v, want context.Canceled", err)
	}
	if _, err := s.Get(ctx, id); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context: error %v, want context.Canceled", err)
	}
	if _, err := s.List(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context: error %v, want context.Canceled", err)
	}
	if err := s.Delete(ctx, id); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context: error %v, want context.Canceled", err)
	}
	if ids := list(t, s); !slices.Equal(ids, []string{id}) {
		t.Errorf("List = %v after cancelled calls, want [%s]", ids, id)
	}
}

func testConcurrent(t *testing.T, f *fixtures, newStore func(t *testing.T) mtls.CertStore) {
	s := newStore(t)
	ctx := context.Background()
	datas := [][]byte{f.p256.PEM(), f.rsa.PEM(), f.ed.CertPEM, f.other.PEM(), f.deep.PEM()}
	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	errc := make(chan error, workers*rounds*4)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				data := datas[(w+r)%len(datas)]
				id, err := s.Add(ctx, data)
				if err != nil {
					errc <- fmt.Errorf("Add: %w", err)
					continue
				}
				c, err := s.Get(ctx, id)
				switch {
				case errors.Is(err, mtls.ErrNotFound): // deleted meanwhile
				case err != nil:
					errc <- fmt.Errorf("Get: %w", err)
				case c.ID != id || c.Leaf == nil || c.Fingerprint != id:
					errc <- fmt.Errorf("Get(%s) returned entry %s", id, c.ID)
				}
				if _, err := s.List(ctx); err != nil {
					errc <- fmt.Errorf("List: %w", err)
				}
				if r%3 == 0 {
					if err := s.Delete(ctx, id); err != nil && !errors.Is(err, mtls.ErrNotFound) {
						errc <- fmt.Errorf("Delete: %w", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	// The store is still consistent: every entry listed can be read.
	for _, id := range list(t, s) {
		get(t, s, id)
	}
	for _, d := range datas {
		id := add(t, s, d)
		if c := get(t, s, id); c.ID != id {
			t.Errorf("Get(%s) returned %s", id, c.ID)
		}
	}
}

func testNotify(t *testing.T, f *fixtures, newStore func(t *testing.T) mtls.CertStore) {
	s := newStore(t)
	n, ok := s.(mtls.Notifier)
	if !ok {
		t.Skip("the store does not implement mtls.Notifier")
	}
	ctx := context.Background()
	type call struct {
		id     string
		found  bool
		hasKey bool
	}
	var mu sync.Mutex
	var calls []call
	stop := n.Notify(func(id string) {
		// Subscribers may call the store: no deadlock, and they see the change.
		c, err := s.Get(ctx, id)
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call{id: id, found: err == nil, hasKey: err == nil && c.TLS != nil})
	})
	take := func() []call {
		mu.Lock()
		defer mu.Unlock()
		out := calls
		calls = nil
		return out
	}
	expect := func(when string, want call) {
		t.Helper()
		got := take()
		if !slices.Contains(got, want) {
			t.Errorf("%s: subscriber calls before return %+v, want one %+v", when, got, want)
		}
	}
	id := add(t, s, f.p256.CertPEM)
	expect("Add", call{id, true, false})
	add(t, s, f.p256.PEM())
	expect("Add of the key", call{id, true, true})
	if err := s.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	expect("Delete", call{id, false, false})
	stop()
	stop() // harmless
	add(t, s, f.rsa.PEM())
	if got := take(); len(got) != 0 {
		t.Errorf("subscriber called after stop: %+v", got)
	}
	// Several subscribers are all called, before Add returns.
	var na, nb atomic.Int32
	stopA := n.Notify(func(string) { na.Add(1) })
	stopB := n.Notify(func(string) { nb.Add(1) })
	defer stopA()
	defer stopB()
	add(t, s, f.ed.PEM())
	if na.Load() == 0 || nb.Load() == 0 {
		t.Errorf("Add returned before every subscriber was called (%d, %d calls)", na.Load(), nb.Load())
	}
}
