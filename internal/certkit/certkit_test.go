package certkit

import (
	"bytes"
	"crypto"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls/mtlstest"
)

// testLeaves issues leaves of every key type, once per test binary.
var testLeaves = sync.OnceValues(func() (map[string]*mtlstest.Leaf, error) {
	ca, err := mtlstest.NewCA("store test root")
	if err != nil {
		return nil, err
	}
	inter, err := ca.Intermediate("store test intermediate")
	if err != nil {
		return nil, err
	}
	out := map[string]*mtlstest.Leaf{}
	for name, o := range map[string]mtlstest.Options{
		"p256":    {CommonName: "p256", DNSNames: []string{"a.example"}},
		"rsa":     {CommonName: "rsa", Key: mtlstest.RSA2048},
		"ed25519": {CommonName: "ed25519", Key: mtlstest.Ed25519},
		"other":   {CommonName: "other"},
		"expired": {CommonName: "expired", NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Minute)},
	} {
		issuer := ca
		if name == "p256" {
			issuer = inter
		}
		if out[name], err = issuer.Issue(o); err != nil {
			return nil, err
		}
	}
	return out, nil
})

func leaves(t testing.TB) map[string]*mtlstest.Leaf {
	t.Helper()
	l, err := testLeaves()
	require.NoError(t, err)
	return l
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParseAccepts(t *testing.T) {
	ls := leaves(t)
	p256, rsaL, ed := ls["p256"], ls["rsa"], ls["ed25519"]
	pkcs1 := pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaL.Key.(*rsa.PrivateKey)))
	sec1DER, err := x509.MarshalECPrivateKey(p256.Key.(*ecdsa.PrivateKey))
	require.NoError(t, err)
	sec1 := pemOf("EC PRIVATE KEY", sec1DER)
	ecParams := pemOf("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07})
	spki, err := x509.MarshalPKIXPublicKey(ed.Key.Public())
	require.NoError(t, err)

	tests := []struct {
		name   string
		data   []byte
		leaf   *mtlstest.Leaf // nil: bare public key
		chain  int
		hasKey bool
	}{
		{"PKCS8WithChain", p256.PEM(), p256, 2, true},
		{"CertificatesOnly", p256.CertPEM, p256, 2, false},
		{"PKCS1", append(append([]byte{}, rsaL.CertPEM...), pkcs1...), rsaL, 1, true},
		{"SEC1WithECParameters", bytes.Join([][]byte{p256.CertPEM, ecParams, sec1}, nil), p256, 2, true},
		{"KeyFirst", append(append([]byte{}, ed.KeyPEM...), ed.CertPEM...), ed, 1, true},
		{"TextAroundAndBetween", bytes.Join([][]byte{[]byte("Bag Attributes\n  friendlyName: x\n"), ed.CertPEM, []byte("junk between\n"), ed.KeyPEM, []byte("trailer")}, nil), ed, 1, true},
		{"CRLF", bytes.ReplaceAll(ed.PEM(), []byte("\n"), []byte("\r\n")), ed, 1, true},
		{"PublicKey", pemOf("PUBLIC KEY", spki), nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.data)
			require.NoError(t, err)
			assert.Len(t, p.Chain, tt.chain)
			assert.Equal(t, tt.hasKey, p.Key != nil)
			if tt.leaf == nil {
				assert.Nil(t, p.Leaf)
				assert.Equal(t, spki, p.SPKI)
				assert.Equal(t, Fingerprint(spki), p.ID)
				assert.True(t, ed.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(p.Pub))
			} else {
				require.NotNil(t, p.Leaf)
				assert.Equal(t, tt.leaf.Cert.Raw, p.Leaf.Raw)
				assert.Equal(t, tt.leaf.Cert.Raw, p.Chain[0])
				assert.Equal(t, tt.leaf.ID(), p.ID)
				assert.Equal(t, tt.leaf.Cert.RawSubjectPublicKeyInfo, p.SPKI)
			}
		})
	}
}

// rsaKeyDER builds a PKCS#1 RSA private key of the given size without
// generating one (only its structure matters to the size check).
func rsaKeyDER(t *testing.T, bitSize int) []byte {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(bitSize)))
	require.NoError(t, err)
	n.SetBit(n, bitSize-1, 1)
	half := new(big.Int).Rsh(n, uint(bitSize/2))
	der, err := asn1.Marshal(struct {
		Version                 int
		N                       *big.Int
		E                       int
		D, P, Q, Dp, Dq, Coeffs *big.Int
	}{0, n, 65537, n, half, half, half, half, half})
	require.NoError(t, err)
	return der
}

func pkcs8Wrap(t *testing.T, pkcs1 []byte) []byte {
	t.Helper()
	der, err := asn1.Marshal(struct {
		Version int
		Algo    struct {
			OID    asn1.ObjectIdentifier
			Params asn1.RawValue
		}
		Key []byte
	}{Algo: struct {
		OID    asn1.ObjectIdentifier
		Params asn1.RawValue
	}{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}, asn1.NullRawValue}, Key: pkcs1})
	require.NoError(t, err)
	return der
}

func TestParseRejects(t *testing.T) {
	ls := leaves(t)
	p256, other, rsaL := ls["p256"], ls["other"], ls["rsa"]
	spki, err := x509.MarshalPKIXPublicKey(p256.Key.Public())
	require.NoError(t, err)
	pub := pemOf("PUBLIC KEY", spki)
	huge := rsaKeyDER(t, 9000)
	many := bytes.Repeat(pemOf("CERTIFICATE", p256.Cert.Raw), 17)
	x25519Spki, err := x509.MarshalPKIXPublicKey(mustX25519(t))
	require.NoError(t, err)

	tests := []struct {
		name, data string
		want       string // in the error message
	}{
		{"Empty", "", "no PEM data"},
		{"NoPEM", "hello", "no PEM data"},
		{"OnlyECParameters", string(pemOf("EC PARAMETERS", []byte{6, 1, 1})), "no PEM data"},
		{"Truncated", string(p256.PEM()[:len(p256.PEM())-40]), "malformed PEM block"},
		{"BadBase64", "-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n", "malformed PEM block"},
		{"BeginInText", string(p256.CertPEM) + "\n-----BEGIN nonsense", "malformed PEM block"},
		{"GarbageDER", string(pemOf("CERTIFICATE", []byte("junk"))), "certificate 1 of 1"},
		{"GarbageIntermediate", string(p256.CertPEM) + string(pemOf("CERTIFICATE", []byte("junk"))), "certificate 3 of 3"},
		{"KeyAlone", string(p256.KeyPEM), "private key without a certificate"},
		{"TwoKeys", string(p256.PEM()) + string(p256.KeyPEM), "more than one private key"},
		{"Mismatch", string(p256.CertPEM) + string(other.KeyPEM), "does not match the leaf"},
		{"PublicAndCert", string(p256.CertPEM) + string(pub), "cannot be mixed with certificates"},
		{"PublicAndKey", string(pub) + string(p256.KeyPEM), "cannot be mixed with a private key"},
		{"TwoPublic", string(pub) + string(pub), "more than one PUBLIC KEY"},
		{"X25519Public", string(pemOf("PUBLIC KEY", x25519Spki)), "unsupported key type"},
		{"EncryptedPKCS8", string(p256.CertPEM) + string(pemOf("ENCRYPTED PRIVATE KEY", []byte{1})), "encrypted private keys are not supported"},
		{"EncryptedLegacy", string(p256.CertPEM) + "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00000000000000000000000000000000\n\nAAAA\n-----END RSA PRIVATE KEY-----\n", "encrypted private keys are not supported"},
		{"UnknownBlock", string(p256.CertPEM) + string(pemOf("CERTIFICATE REQUEST", []byte{1})), `unexpected PEM block "CERTIFICATE REQUEST"`},
		{"TooLarge", string(p256.PEM()) + strings.Repeat("x", MaxPEMSize), "over the limit of 1048576 bytes"},
		{"TooManyCertificates", string(many), "more than 16 certificates"},
		{"HugeRSAPKCS1", string(rsaL.CertPEM) + string(pemOf("RSA PRIVATE KEY", huge)), "RSA private key of 9000 bits is over the limit of 8192 bits"},
		{"HugeRSAPKCS8", string(rsaL.CertPEM) + string(pemOf("PRIVATE KEY", pkcs8Wrap(t, huge))), "RSA private key of 9000 bits is over the limit"},
		{"HugeKeyBlock", string(rsaL.CertPEM) + string(pemOf("PRIVATE KEY", make([]byte, maxKeyDER+1))), "over the limit of 16384 bytes"},
		{"GarbageKey", string(p256.CertPEM) + string(pemOf("PRIVATE KEY", []byte("junk"))), "cannot parse the private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.data))
			require.Error(t, err, "accepted: %+v", p)
			assert.Nil(t, p)
			assert.Contains(t, err.Error(), tt.want)
			assert.False(t, strings.HasPrefix(err.Error(), "mtls: "), "error %q has a prefix: the store adds it", err)
		})
	}
}

func mustX25519(t *testing.T) any {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	return k.PublicKey()
}

func TestRSAModulusBits(t *testing.T) {
	rsaKey := leaves(t)["rsa"].Key.(*rsa.PrivateKey)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ec8, err := x509.MarshalPKCS8PrivateKey(ecKey)
	require.NoError(t, err)
	ec1, err := x509.MarshalECPrivateKey(ecKey)
	require.NoError(t, err)
	for _, tt := range []struct {
		name string
		der  []byte
		want int
	}{
		{"PKCS1", x509.MarshalPKCS1PrivateKey(rsaKey), 2048},
		{"PKCS8", pkcs8, 2048},
		{"Huge", rsaKeyDER(t, 12345), 12345},
		{"HugePKCS8", pkcs8Wrap(t, rsaKeyDER(t, 9000)), 9000},
		{"ECPKCS8", ec8, 0},
		{"SEC1", ec1, 0},
		{"Garbage", []byte("garbage"), 0},
		{"Empty", nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, rsaModulusBits(tt.der, 0))
		})
	}
}

func TestMerge(t *testing.T) {
	l := leaves(t)["p256"]
	full, err := Parse(l.PEM()) // chain of 2 with key
	require.NoError(t, err)
	short, err := Parse(pemOf("CERTIFICATE", l.Cert.Raw))
	require.NoError(t, err)
	longNoKey, err := Parse(l.CertPEM)
	require.NoError(t, err)
	sealed := []byte("sealed")
	for _, tt := range []struct {
		name        string
		cur         *Data
		p           *Parsed
		chain       int
		keepSealed  bool
		seal, chang bool
	}{
		{"New", nil, full, 2, false, true, true},
		{"Same", &Data{Chain: full.Chain, Sealed: sealed}, full, 2, true, false, false},
		{"AttachKey", &Data{Chain: full.Chain}, full, 2, false, true, true},
		{"LongerChain", &Data{Chain: short.Chain, Sealed: sealed}, longNoKey, 2, true, false, true},
		{"ShorterChainIgnored", &Data{Chain: full.Chain, Sealed: sealed}, short, 2, true, false, false},
		{"KeyKeptWhenAbsent", &Data{Chain: full.Chain, Sealed: sealed}, longNoKey, 2, true, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			chain, s, seal, changed := Merge(tt.cur, tt.p)
			assert.Len(t, chain, tt.chain)
			assert.Equal(t, tt.keepSealed, s != nil)
			assert.Equal(t, tt.seal, seal)
			assert.Equal(t, tt.chang, changed)
		})
	}
}

func TestKDFRejectsBadParameters(t *testing.T) {
	good := KDF{Format: 1, Alg: "argon2id", Params: Params{Time: 1, Memory: 64, Threads: 1}, KeyLen: 32, Cipher: "AES-256-GCM", Salt: make([]byte, 16), Check: make([]byte, 28)}
	for _, tt := range []struct {
		name string
		edit func(*KDF)
	}{
		{"HugeMemory", func(k *KDF) { k.Memory = 1 << 30 }},
		{"ZeroTime", func(k *KDF) { k.Time = 0 }},
		{"ZeroThreads", func(k *KDF) { k.Threads = 0 }},
		{"OtherKDF", func(k *KDF) { k.Alg = "scrypt" }},
		{"ShortSalt", func(k *KDF) { k.Salt = k.Salt[:8] }},
		{"Format2", func(k *KDF) { k.Format = 2 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := good
			tt.edit(&k)
			data, err := json.Marshal(k)
			require.NoError(t, err)
			_, err = OpenKDF(data, []byte("x"))
			assert.ErrorIs(t, err, ErrDecrypt)
			assert.NotErrorIs(t, err, ErrWrongSecret)
		})
	}
	_, err := OpenKDF([]byte("{not json"), []byte("x"))
	assert.ErrorIs(t, err, ErrDecrypt)
	record, _, err := NewKDF([]byte("right"))
	require.NoError(t, err)
	_, err = OpenKDF(record, []byte("wrong"))
	assert.ErrorIs(t, err, ErrWrongSecret)
	_, err = OpenKDF(record, []byte("right"))
	assert.NoError(t, err)
}

func TestEntryDetectsDamage(t *testing.T) {
	ls := leaves(t)
	p, err := Parse(ls["p256"].PEM())
	require.NoError(t, err)
	id := p.ID
	data := Encode(NewData(p, p.Chain, []byte("0123456789ab0123456789abcdef sealed")))
	other, err := Parse(ls["other"].CertPEM)
	require.NoError(t, err)
	otherData := Encode(NewData(other, other.Chain, nil))

	d, err := decodeEntry(id, data)
	require.NoError(t, err)
	assert.NotNil(t, d.Sealed)
	assert.Len(t, d.Chain, 2)

	// The leaf reads as a normal certificate.
	b, _ := pem.Decode(data)
	require.NotNil(t, b)
	assert.Equal(t, "CERTIFICATE", b.Type)
	assert.Equal(t, ls["p256"].Cert.Raw, b.Bytes)

	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 1
	// A change inside the sealed key that still decodes: only the checksum
	// tells (decryption would, much later).
	sealedAt := bytes.Index(data, []byte("-----BEGIN "+sealedBlockType))
	require.Positive(t, sealedAt)
	sealedAt = bytes.Index(data[sealedAt:], []byte("\n\n")) + sealedAt + 2
	flippedKey := bytes.Clone(data)
	if flippedKey[sealedAt] == 'A' {
		flippedKey[sealedAt] = 'B'
	} else {
		flippedKey[sealedAt] = 'A'
	}
	for _, tt := range []struct {
		name string
		id   string
		data []byte
	}{
		{"Empty", id, nil},
		{"Truncated", id, data[:len(data)-30]},
		{"TruncatedBeforeChecksum", id, data[:bytes.Index(data, []byte(checksumBeginTag))]},
		{"Flipped", id, flipped},
		{"FlippedSealedKey", id, flippedKey},
		{"OtherName", id, otherData},
		{"TrailingJunk", id, append(bytes.Clone(data), "junk"...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeEntry(tt.id, tt.data)
			assert.ErrorIs(t, err, ErrCorrupt)
			assert.Contains(t, err.Error(), "corrupt")
		})
	}
}

// decodeEntry checks and decodes the entry text of the entry named id, as a
// store does in two steps.
func decodeEntry(id string, data []byte) (*Data, error) {
	body, err := Check(id, data)
	if err != nil {
		return nil, err
	}
	return Decode(id, body)
}

// The checksum block is written and checked as bytes; it must stay what
// pem.Encode wrote for it, the format of files written before, and the
// file may end with extra white space.
func TestChecksumBlockIsPEM(t *testing.T) {
	sum := sha256.Sum256([]byte("body"))
	want := pem.EncodeToMemory(&pem.Block{Type: checksumType, Headers: map[string]string{"Hash": "SHA-256 of every byte before this block"}, Bytes: sum[:]})
	assert.Equal(t, string(want), string(checksumBlock(sum)))
	assert.Len(t, want, checksumBlockLen)
	for _, end := range []string{"", "\n", " \r\n\n"} {
		body, err := Check("x", append(append([]byte("body"), want...), end...))
		require.NoError(t, err, "%q", end)
		assert.Equal(t, "body", string(body))
	}
}

func TestKeyringWrongSecretIsSticky(t *testing.T) {
	var calls int
	k := NewKeyring([]byte("s"), func([]byte, bool) (cipher.AEAD, error) {
		calls++
		return nil, ErrWrongSecret
	})
	for range 3 {
		_, err := k.Get(false)
		assert.ErrorIs(t, err, ErrDecrypt)
	}
	assert.Equal(t, 1, calls, "a wrong secret is derived again and again")
	calls = 0
	k = NewKeyring([]byte("s"), func([]byte, bool) (cipher.AEAD, error) {
		calls++
		return nil, errors.New("disk error")
	})
	k.Get(false)
	k.Get(false)
	assert.Equal(t, 2, calls, "an error other than a wrong secret is sticky")
	k = NewKeyring(nil, nil)
	_, err := k.Get(true)
	assert.ErrorIs(t, err, ErrNoSecret)
	_, err = k.Get(false)
	assert.ErrorIs(t, err, ErrDecrypt)
	assert.False(t, errors.Is(err, ErrNoSecret))
}
