package mtls

import (
	"bytes"
	"context"
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
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls/mtlstest"
)

// TestMain lowers the Argon2id parameters for every test of the package:
// the production ones (64 MiB, 3 passes) make each derivation take a
// noticeable time, far more under -race. Tests that need the real ones set
// argon2Params themselves.
func TestMain(m *testing.M) {
	argon2Params = kdfParams{Time: 1, Memory: 64, Threads: 1}
	os.Exit(m.Run())
}

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

func TestParsePEMAccepts(t *testing.T) {
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
			p, err := parsePEM(tt.data)
			require.NoError(t, err)
			assert.Len(t, p.chain, tt.chain)
			assert.Equal(t, tt.hasKey, p.key != nil)
			if tt.leaf == nil {
				assert.Nil(t, p.leaf)
				assert.Equal(t, spki, p.spki)
				assert.Equal(t, Fingerprint(spki), p.id)
				assert.True(t, ed.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(p.pub))
			} else {
				require.NotNil(t, p.leaf)
				assert.Equal(t, tt.leaf.Cert.Raw, p.leaf.Raw)
				assert.Equal(t, tt.leaf.Cert.Raw, p.chain[0])
				assert.Equal(t, tt.leaf.ID(), p.id)
				assert.Equal(t, tt.leaf.Cert.RawSubjectPublicKeyInfo, p.spki)
			}
			c := p.certificate()
			assert.Equal(t, p.id, c.ID)
			assert.Equal(t, tt.hasKey, c.HasPrivateKey)
			assert.Equal(t, tt.hasKey, c.TLS != nil)
			if c.TLS != nil {
				assert.Same(t, p.leaf, c.TLS.Leaf)
				assert.Equal(t, p.chain, c.TLS.Certificate)
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

func TestParsePEMRejects(t *testing.T) {
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
		{"TooLarge", string(p256.PEM()) + strings.Repeat("x", maxPEMSize), "over the limit of 1048576 bytes"},
		{"TooManyCertificates", string(many), "more than 16 certificates"},
		{"HugeRSAPKCS1", string(rsaL.CertPEM) + string(pemOf("RSA PRIVATE KEY", huge)), "RSA private key of 9000 bits is over the limit of 8192 bits"},
		{"HugeRSAPKCS8", string(rsaL.CertPEM) + string(pemOf("PRIVATE KEY", pkcs8Wrap(t, huge))), "RSA private key of 9000 bits is over the limit"},
		{"HugeKeyBlock", string(rsaL.CertPEM) + string(pemOf("PRIVATE KEY", make([]byte, maxKeyDER+1))), "over the limit of 16384 bytes"},
		{"GarbageKey", string(p256.CertPEM) + string(pemOf("PRIVATE KEY", []byte("junk"))), "cannot parse the private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parsePEM([]byte(tt.data))
			require.Error(t, err, "accepted: %+v", p)
			assert.Nil(t, p)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "mtls: "), "error %q lacks the mtls: prefix", err)
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

func TestCertificatePin(t *testing.T) {
	l := leaves(t)["p256"]
	sum := sha256.Sum256(l.Cert.RawSubjectPublicKeyInfo)
	want := "sha256//" + base64.StdEncoding.EncodeToString(sum[:])
	p, err := parsePEM(l.PEM())
	require.NoError(t, err)
	assert.Equal(t, want, p.certificate().Pin())
	// A Certificate made by hand computes it from what it has.
	assert.Equal(t, want, (&Certificate{Leaf: l.Cert}).Pin())
	assert.Equal(t, want, (&Certificate{PublicKey: l.Key.Public()}).Pin())
	assert.Equal(t, "", (&Certificate{}).Pin())
}

func TestIsPlainID(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	assert.True(t, isPlainID(id))
	for _, bad := range []string{"", id[1:], id + "0", strings.ToUpper(id), "g" + id[1:], "../" + id[3:], "org" + id} {
		assert.False(t, isPlainID(bad), bad)
		assert.ErrorIs(t, checkID(bad), ErrNotFound)
	}
}

func TestMergeAdd(t *testing.T) {
	l := leaves(t)["p256"]
	full, err := parsePEM(l.PEM()) // chain of 2 with key
	require.NoError(t, err)
	short, err := parsePEM(pemOf("CERTIFICATE", l.Cert.Raw))
	require.NoError(t, err)
	longNoKey, err := parsePEM(l.CertPEM)
	require.NoError(t, err)
	sealed := []byte("sealed")
	for _, tt := range []struct {
		name        string
		cur         *storeData
		p           *parsedPEM
		chain       int
		keepSealed  bool
		seal, chang bool
	}{
		{"New", nil, full, 2, false, true, true},
		{"Same", &storeData{chain: full.chain, sealed: sealed}, full, 2, true, false, false},
		{"AttachKey", &storeData{chain: full.chain}, full, 2, false, true, true},
		{"LongerChain", &storeData{chain: short.chain, sealed: sealed}, longNoKey, 2, true, false, true},
		{"ShorterChainIgnored", &storeData{chain: full.chain, sealed: sealed}, short, 2, true, false, false},
		{"KeyKeptWhenAbsent", &storeData{chain: full.chain, sealed: sealed}, longNoKey, 2, true, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			chain, s, seal, changed := mergeAdd(tt.cur, tt.p)
			assert.Len(t, chain, tt.chain)
			assert.Equal(t, tt.keepSealed, s != nil)
			assert.Equal(t, tt.seal, seal)
			assert.Equal(t, tt.chang, changed)
		})
	}
}

// countDerivations wraps the key derivation of a keyring.
func countDerivations(k *storeKeyring) *atomic.Int32 {
	var n atomic.Int32
	load := k.load
	k.load = func(secret []byte, create bool) (cipher.AEAD, bool, error) {
		n.Add(1)
		return load(secret, create)
	}
	return &n
}

func TestKeyDerivedOnceLazily(t *testing.T) {
	ctx := context.Background()
	ls := leaves(t)
	mem := NewMemoryStore([]byte("secret"))
	file, err := NewFileStore(filepath.Join(t.TempDir(), "store"), []byte("secret"))
	require.NoError(t, err)
	t.Cleanup(func() { file.Close() })
	for name, s := range map[string]interface {
		CertStore
		keyring() *storeKeyring
	}{"Memory": memKeys{mem}, "File": fileKeys{file}} {
		t.Run(name, func(t *testing.T) {
			n := countDerivations(s.keyring())
			_, err := s.Add(ctx, ls["other"].CertPEM)
			require.NoError(t, err)
			assert.EqualValues(t, 0, n.Load(), "a certificate without key derived the key")
			if name == "File" {
				assert.NoFileExists(t, filepath.Join(file.Dir(), kdfFileName))
			}
			for _, l := range []string{"p256", "rsa", "ed25519"} {
				id, err := s.Add(ctx, ls[l].PEM())
				require.NoError(t, err)
				c, err := s.Get(ctx, id)
				require.NoError(t, err)
				require.NotNil(t, c.TLS)
			}
			assert.EqualValues(t, 1, n.Load(), "key derived more than once")
		})
	}
}

type memKeys struct{ *MemoryStore }

func (m memKeys) keyring() *storeKeyring { return m.keys }

type fileKeys struct{ *FileStore }

func (f fileKeys) keyring() *storeKeyring { return f.keys }

func TestNoSecret(t *testing.T) {
	ctx := context.Background()
	ls := leaves(t)
	for _, secret := range [][]byte{nil, {}} {
		file, err := NewFileStore(t.TempDir(), secret)
		require.NoError(t, err)
		t.Cleanup(func() { file.Close() })
		for name, s := range map[string]CertStore{"Memory": NewMemoryStore(secret), "File": file} {
			t.Run(name, func(t *testing.T) {
				_, err := s.Add(ctx, ls["p256"].PEM())
				require.ErrorIs(t, err, errNoSecret)
				assert.Contains(t, err.Error(), "no secret")
				ids, err := s.List(ctx)
				require.NoError(t, err)
				assert.Empty(t, ids, "the key was stored anyway")
				id, err := s.Add(ctx, ls["p256"].CertPEM)
				require.NoError(t, err, "a certificate without key needs no secret")
				_, err = s.Add(ctx, ls["p256"].PEM())
				require.ErrorIs(t, err, errNoSecret, "attaching a key needs a secret")
				c, err := s.Get(ctx, id)
				require.NoError(t, err)
				assert.Nil(t, c.TLS)
			})
		}
	}
}

func TestMemoryStoreSealsKeysWithIDAsAAD(t *testing.T) {
	ctx := context.Background()
	ls := leaves(t)
	s := NewMemoryStore([]byte("secret"))
	a, err := s.Add(ctx, ls["p256"].PEM())
	require.NoError(t, err)
	b, err := s.Add(ctx, ls["other"].PEM())
	require.NoError(t, err)
	ea, eb := s.entries[a], s.entries[b]
	der, err := x509.MarshalPKCS8PrivateKey(ls["p256"].Key)
	require.NoError(t, err)
	assert.NotContains(t, string(ea.data.sealed), string(der))
	assert.Len(t, ea.data.sealed, gcmNonce+len(der)+16)
	// Another entry's sealed key does not open under this ID.
	swapped := &storeEntry{data: &storeData{meta: ea.data.meta, chain: ea.data.chain, leaf: ea.data.leaf, pub: ea.data.pub, sealed: eb.data.sealed}}
	_, err = swapped.certificate(a, s.keys)
	assert.ErrorIs(t, err, ErrDecrypt)
	// Same key, two stores: different salts, different ciphertexts.
	s2 := NewMemoryStore([]byte("secret"))
	_, err = s2.Add(ctx, ls["p256"].PEM())
	require.NoError(t, err)
	assert.NotEqual(t, ea.data.sealed[gcmNonce:], s2.entries[a].data.sealed[gcmNonce:])
}

func TestGetWarmDoesNotAllocate(t *testing.T) {
	ctx := context.Background()
	l := leaves(t)["p256"]
	file, err := NewFileStore(t.TempDir(), []byte("secret"))
	require.NoError(t, err)
	t.Cleanup(func() { file.Close() })
	for name, s := range map[string]CertStore{"Memory": NewMemoryStore([]byte("secret")), "File": file} {
		t.Run(name, func(t *testing.T) {
			id, err := s.Add(ctx, l.PEM())
			require.NoError(t, err)
			first, err := s.Get(ctx, id)
			require.NoError(t, err)
			var got *Certificate
			allocs := testing.AllocsPerRun(1000, func() {
				got, _ = s.Get(ctx, id)
			})
			assert.Zero(t, allocs, "warm Get allocates")
			assert.Same(t, first, got, "warm Get does not return the cached certificate")
		})
	}
}

func TestFileStoreUsesParametersOfItsFile(t *testing.T) {
	ctx := context.Background()
	l := leaves(t)["p256"]
	dir := t.TempDir()
	s1, err := NewFileStore(dir, []byte("pass"))
	require.NoError(t, err)
	defer s1.Close()
	id, err := s1.Add(ctx, l.PEM())
	require.NoError(t, err)

	data, err := os.ReadFile(filepath.Join(dir, kdfFileName))
	require.NoError(t, err)
	var kf kdfFile
	require.NoError(t, json.Unmarshal(data, &kf))
	assert.Equal(t, argon2Params, kf.kdfParams)
	assert.Equal(t, "argon2id", kf.KDF)
	assert.Len(t, kf.Salt, kdfSaltLen)

	old := argon2Params
	argon2Params = kdfParams{Time: 2, Memory: 128, Threads: 2}
	defer func() { argon2Params = old }()
	s2, err := NewFileStore(dir, []byte("pass"))
	require.NoError(t, err)
	defer s2.Close()
	c, err := s2.Get(ctx, id)
	require.NoError(t, err, "a store must derive with the parameters of its kdf.json")
	require.NotNil(t, c.TLS)
}

func TestFileStoreKDFFileRejectsBadParameters(t *testing.T) {
	good := kdfFile{Format: 1, KDF: "argon2id", kdfParams: kdfParams{Time: 1, Memory: 64, Threads: 1}, KeyLen: 32, Cipher: "AES-256-GCM", Salt: make([]byte, 16), Check: make([]byte, 28)}
	for _, tt := range []struct {
		name string
		edit func(*kdfFile)
	}{
		{"HugeMemory", func(k *kdfFile) { k.Memory = 1 << 30 }},
		{"ZeroTime", func(k *kdfFile) { k.Time = 0 }},
		{"ZeroThreads", func(k *kdfFile) { k.Threads = 0 }},
		{"OtherKDF", func(k *kdfFile) { k.KDF = "scrypt" }},
		{"ShortSalt", func(k *kdfFile) { k.Salt = k.Salt[:8] }},
		{"Format2", func(k *kdfFile) { k.Format = 2 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := good
			tt.edit(&k)
			data, err := json.Marshal(k)
			require.NoError(t, err)
			_, wrong, err := openKDF(data, []byte("x"))
			assert.ErrorIs(t, err, ErrDecrypt)
			assert.False(t, wrong)
		})
	}
	_, _, err := openKDF([]byte("{not json"), []byte("x"))
	assert.ErrorIs(t, err, ErrDecrypt)
}

func TestDecodeEntryDetectsDamage(t *testing.T) {
	ctx := context.Background()
	ls := leaves(t)
	dir := t.TempDir()
	s, err := NewFileStore(dir, []byte("secret"))
	require.NoError(t, err)
	defer s.Close()
	id, err := s.Add(ctx, ls["p256"].PEM())
	require.NoError(t, err)
	otherID, err := s.Add(ctx, ls["other"].CertPEM)
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(dir, entryName(id)))
	require.NoError(t, err)
	otherData, err := os.ReadFile(filepath.Join(dir, entryName(otherID)))
	require.NoError(t, err)

	d, err := decodeEntry(id, data)
	require.NoError(t, err)
	assert.True(t, d.meta.HasPrivateKey)
	assert.Len(t, d.chain, 2)

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
			assert.ErrorIs(t, err, ErrNotFound)
			assert.Contains(t, err.Error(), "corrupt")
		})
	}
}

// decodeEntry checks and parses the file contents of the entry named id,
// as a FileStore does in two steps (readEntry, then storeEntry.decode);
// every error wraps ErrNotFound.
func decodeEntry(id string, data []byte) (*storeData, error) {
	body, err := checkEntry(id, data)
	if err != nil {
		return nil, err
	}
	return parseEntryBody(id, body)
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
		body, err := checkEntry("x", append(append([]byte("body"), want...), end...))
		require.NoError(t, err, "%q", end)
		assert.Equal(t, "body", string(body))
	}
}

// TestFileStoreCrashImages copies the directory at every step of every
// write, as a crash there would leave it, and checks that a store opened on
// each copy sees the entry either whole or not at all.
func TestFileStoreCrashImages(t *testing.T) {
	ctx := context.Background()
	ls := leaves(t)
	dir := t.TempDir()
	s, err := NewFileStore(dir, []byte("secret"))
	require.NoError(t, err)
	defer s.Close()

	type image struct {
		op, step string
		dir      string
	}
	var images []image
	var op string
	fileStoreHook = func(step string) {
		img := filepath.Join(t.TempDir(), "img")
		require.NoError(t, os.CopyFS(img, os.DirFS(dir)))
		images = append(images, image{op, step, img})
	}
	defer func() { fileStoreHook = nil }()

	certID := ls["p256"].ID()
	for _, o := range []struct {
		name string
		do   func() error
	}{
		{"add-cert", func() error { _, err := s.Add(ctx, ls["p256"].CertPEM); return err }},
		{"attach-key", func() error { _, err := s.Add(ctx, ls["p256"].PEM()); return err }},
		{"add-other", func() error { _, err := s.Add(ctx, ls["rsa"].PEM()); return err }},
		{"delete", func() error { return s.Delete(ctx, certID) }},
	} {
		op = o.name
		require.NoError(t, o.do(), o.name)
	}
	fileStoreHook = nil
	steps := map[string]bool{}
	for _, img := range images {
		steps[img.step] = true
		t.Run(img.op+"/"+img.step, func(t *testing.T) {
			c, err := NewFileStore(img.dir, []byte("secret"))
			require.NoError(t, err)
			defer c.Close()
			ids, err := c.List(ctx)
			require.NoError(t, err)
			for _, id := range ids {
				got, err := c.Get(ctx, id)
				require.NoError(t, err, "listed entry %s unreadable", id)
				if got.HasPrivateKey {
					require.NotNil(t, got.TLS)
				}
			}
			// The entry being written is either before or after the write.
			cert, err := c.Get(ctx, certID)
			switch img.op {
			case "add-cert":
				if err == nil {
					assert.Nil(t, cert.TLS)
				} else {
					assert.ErrorIs(t, err, ErrNotFound)
				}
			case "attach-key", "add-other":
				require.NoError(t, err)
				if img.op == "attach-key" && (img.step == "write" || img.step == "fsync") {
					assert.Nil(t, cert.TLS, "key visible before the rename")
				}
				if img.step == "rename" || img.step == "dirsync" {
					assert.NotNil(t, cert.TLS)
				}
			case "delete":
				assert.ErrorIs(t, err, ErrNotFound)
			}
			temps, _ := filepath.Glob(filepath.Join(img.dir, tmpPrefix+"*"))
			if img.step == "write" || img.step == "fsync" {
				assert.NotEmpty(t, temps, "no temporary file before the rename")
			}
		})
	}
	for _, step := range []string{"write", "fsync", "rename", "dirsync", "remove"} {
		assert.True(t, steps[step], "hook never called with %q", step)
	}
}

func TestFileStorePollerLifecycle(t *testing.T) {
	s, err := NewFileStore(t.TempDir(), nil)
	require.NoError(t, err)
	assert.Nil(t, s.poller.Load(), "a poller without subscribers")
	stop1 := s.Notify(func(string) {})
	stop2 := s.Notify(func(string) {})
	p := s.poller.Load()
	require.NotNil(t, p)
	require.Eventually(t, s.polling.Load, 5*time.Second, 10*time.Millisecond)
	stop1()
	assert.Same(t, p, s.poller.Load())
	stop2()
	assert.Nil(t, s.poller.Load(), "the poller outlives its last subscriber")
	assert.False(t, s.polling.Load())
	select {
	case <-p.stop:
	default:
		t.Error("the poller was not told to stop")
	}
	s.Notify(func(string) {})
	require.NotNil(t, s.poller.Load())
	require.NoError(t, s.Close())
	assert.Nil(t, s.poller.Load())
	require.NoError(t, s.Close(), "second Close")
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("poller goroutine still running after Close")
	}
	s.Notify(func(string) { t.Error("called after Close") })
	assert.Nil(t, s.poller.Load(), "Notify after Close started a poller")
	_, err = s.List(context.Background())
	assert.ErrorIs(t, err, fs.ErrClosed)
	_, err = s.Get(context.Background(), strings.Repeat("a", 64))
	assert.ErrorIs(t, err, fs.ErrClosed)
}

func TestKeyringWrongSecretIsSticky(t *testing.T) {
	var calls int
	k := newStoreKeyring([]byte("s"), func([]byte, bool) (cipher.AEAD, bool, error) {
		calls++
		return nil, true, ErrDecrypt
	})
	for range 3 {
		_, err := k.get(false)
		assert.ErrorIs(t, err, ErrDecrypt)
	}
	assert.Equal(t, 1, calls, "a wrong secret is derived again and again")
	k = newStoreKeyring(nil, nil)
	_, err := k.get(true)
	assert.ErrorIs(t, err, errNoSecret)
	_, err = k.get(false)
	assert.ErrorIs(t, err, ErrDecrypt)
	assert.False(t, errors.Is(err, errNoSecret))
}

// TestFileStoreGetRacingDelete makes a Delete happen between a Get's read
// of the file and its caching: the entry read must not be cached, or the
// deleted certificate would be served until the next check.
func TestFileStoreGetRacingDelete(t *testing.T) {
	ctx := context.Background()
	l := leaves(t)["p256"]
	s, err := NewFileStore(t.TempDir(), []byte("secret"))
	require.NoError(t, err)
	defer s.Close()
	id, err := s.Add(ctx, l.PEM())
	require.NoError(t, err)
	s.mu.Lock()
	clear(s.entries) // as a freshly opened store
	s.mu.Unlock()

	deleted := false
	fileStoreHook = func(step string) {
		if step == "read" && !deleted {
			deleted = true
			require.NoError(t, s.Delete(ctx, id))
		}
	}
	defer func() { fileStoreHook = nil }()
	_, err = s.Get(ctx, id) // may return what it read before the Delete
	require.NoError(t, err)
	require.True(t, deleted)
	_, err = s.Get(ctx, id)
	assert.ErrorIs(t, err, ErrNotFound, "Get after Delete returned a certificate cached by a racing Get")
}
