package mtls

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/internal/certkit"

	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls/mtlstest"
)

// FuzzAdd feeds arbitrary bytes to Add: it must never panic, must agree
// with certkit.Parse, and an accepted entry must come back from Get under
// its ID and survive the FileStore's file encoding.
func FuzzAdd(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	ctx := context.Background()
	s := NewMemoryStore([]byte("fuzz"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, perr := certkit.Parse(data)
		id, err := s.Add(ctx, data)
		if perr != nil {
			require.Error(t, err, "Add accepted what certkit.Parse rejects")
			require.Equal(t, "mtls: "+perr.Error(), err.Error())
			return
		}
		if err != nil {
			require.ErrorIs(t, err, ErrExpired, "certkit.Parse accepted, Add rejected")
			return
		}
		require.Equal(t, p.ID, id)
		c, err := s.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, id, c.ID)
		require.Equal(t, p.Key != nil, c.TLS != nil)
		require.NotEmpty(t, c.Pin())

		d := certkit.NewData(p, p.Chain, nil)
		if p.Key != nil {
			d.Sealed = []byte("0123456789ab0123456789abcdef") // shape only
		}
		back, err := decodeEntry(id, certkit.Encode(d))
		require.NoError(t, err, "a stored entry does not decode")
		require.Equal(t, d.Chain, back.Chain)
		require.Equal(t, d.SPKI, back.SPKI)
		require.Equal(t, d.Sealed, back.Sealed)
		require.NoError(t, s.Delete(ctx, id))
	})
}

// FuzzAddFileDecode feeds arbitrary bytes to the FileStore's file decoder,
// as a damaged or hostile file in the directory would: it must never
// panic, and every error must wrap ErrNotFound.
func FuzzAddFileDecode(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("-----BEGIN MTLS CHECKSUM-----\n-----END MTLS CHECKSUM-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// The name the file would need: that of its first block.
		id := "0000000000000000000000000000000000000000000000000000000000000000"
		if b, _ := pem.Decode(data); b != nil {
			id = Fingerprint(b.Bytes)
		}
		d, err := decodeEntry(id, data)
		if err != nil {
			require.ErrorIs(t, err, ErrNotFound)
			require.Nil(t, d)
			return
		}
		require.Equal(t, id, d.ID)
		back, err := decodeEntry(id, certkit.Encode(d))
		require.NoError(t, err, "a decoded entry does not survive encoding")
		require.Equal(t, d.Chain, back.Chain)
		require.Equal(t, d.Sealed, back.Sealed)
		require.Equal(t, d.SPKI, back.SPKI)
	})
}

// TestWriteFuzzSeeds rewrites the seed corpora in testdata/fuzz when
// MTLS_WRITE_FUZZ_SEEDS=1. The certificates are valid for a century so
// that the seeds keep reaching past the expiry check.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MTLS_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set MTLS_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzAdd*")
	}
	ca, err := mtlstest.NewCA("fuzz seed root")
	require.NoError(t, err)
	inter, err := ca.Intermediate("fuzz seed intermediate")
	require.NoError(t, err)
	long := mtlstest.Options{NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(100, 0, 0)}
	issue := func(ca *mtlstest.CA, name string, k mtlstest.KeyType) *mtlstest.Leaf {
		o := long
		o.CommonName, o.Key, o.DNSNames = name, k, []string{name + ".example"}
		l, err := ca.Issue(o)
		require.NoError(t, err)
		return l
	}
	p256, rsaL, ed := issue(inter, "p256", mtlstest.P256), issue(ca, "rsa", mtlstest.RSA2048), issue(ca, "ed25519", mtlstest.Ed25519)
	other := issue(ca, "other", mtlstest.P256)
	expired, err := ca.Issue(mtlstest.Options{CommonName: "expired", NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	require.NoError(t, err)
	spki, err := x509.MarshalPKIXPublicKey(ed.Key.Public())
	require.NoError(t, err)
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	rsaKey, _ := pem.Decode(rsaL.KeyPEM)

	seeds := map[string][]byte{
		"p256-chain-key":    p256.PEM(),
		"p256-chain":        p256.CertPEM,
		"rsa-key":           rsaL.PEM(),
		"ed25519-key":       ed.PEM(),
		"ed25519-crlf":      bytes.ReplaceAll(ed.PEM(), []byte("\n"), []byte("\r\n")),
		"public-key":        pub,
		"ca-chain":          append(append([]byte{}, inter.CertPEM...), ca.CertPEM...),
		"text-around":       append(append([]byte("Bag Attributes\n"), ed.CertPEM...), "trailer\n"...),
		"key-alone":         p256.KeyPEM,
		"two-keys":          append(p256.PEM(), p256.KeyPEM...),
		"mismatch":          append(append([]byte{}, p256.CertPEM...), other.KeyPEM...),
		"public-and-cert":   append(append([]byte{}, pub...), ed.CertPEM...),
		"expired":           expired.PEM(),
		"truncated":         p256.PEM()[:len(p256.PEM())/2],
		"encrypted":         append(append([]byte{}, rsaL.CertPEM...), pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: rsaKey.Bytes})...),
		"legacy-encrypted":  append(append([]byte{}, rsaL.CertPEM...), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: rsaKey.Bytes})...),
		"garbage":           []byte("\x00\x01\x02garbage\xff"),
		"begin-only":        []byte("-----BEGIN CERTIFICATE-----\n"),
		"empty-block":       []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
		"headers":           []byte("-----BEGIN PRIVATE KEY-----\nA: b\n\nAAAA\n-----END PRIVATE KEY-----\n"),
		"pkcs1-in-pkcs8tag": append(append([]byte{}, rsaL.CertPEM...), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS1(t, rsaL)})...),
	}
	write := func(target string, seeds map[string][]byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for name, data := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
		}
	}
	write("FuzzAdd", seeds)

	// FileStore files: valid ones, and the same damaged.
	files := map[string][]byte{}
	for name, l := range map[string]*mtlstest.Leaf{"p256": p256, "ed25519": ed} {
		p, err := certkit.Parse(l.PEM())
		require.NoError(t, err)
		data := certkit.Encode(certkit.NewData(p, p.Chain, []byte("0123456789ab0123456789abcdef")))
		files["file-"+name] = data
		files["file-"+name+"-truncated"] = data[:len(data)-20]
	}
	p, err := certkit.Parse(pub)
	require.NoError(t, err)
	files["file-public-key"] = certkit.Encode(certkit.NewData(p, nil, nil))
	write("FuzzAddFileDecode", files)
}

func mustPKCS1(t *testing.T, l *mtlstest.Leaf) []byte {
	t.Helper()
	k, ok := l.Key.(*rsa.PrivateKey)
	require.True(t, ok)
	return x509.MarshalPKCS1PrivateKey(k)
}

// decodeEntry checks and parses the file contents of the entry named id,
// as a FileStore does in two steps (readEntry, then storeEntry.decode);
// every error wraps ErrNotFound.
func decodeEntry(id string, data []byte) (*certkit.Data, error) {
	body, err := certkit.Check(id, data)
	if err != nil {
		return nil, fromKit(err)
	}
	d, err := certkit.Decode(id, body)
	return d, fromKit(err)
}
