package mtls

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/internal/certkit"

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

func TestCertificatePin(t *testing.T) {
	l := leaves(t)["p256"]
	sum := sha256.Sum256(l.Cert.RawSubjectPublicKeyInfo)
	want := "sha256//" + base64.StdEncoding.EncodeToString(sum[:])
	c, err := NewCertificate(l.TLS.Certificate, nil, l.Key)
	require.NoError(t, err)
	assert.Equal(t, want, c.Pin())
	assert.Equal(t, l.ID(), c.ID)
	assert.True(t, c.HasPrivateKey)
	require.NotNil(t, c.TLS)
	assert.Equal(t, l.Cert.Raw, c.TLS.Leaf.Raw)
	// A Certificate made by hand computes it from what it has.
	assert.Equal(t, want, (&Certificate{Leaf: l.Cert}).Pin())
	assert.Equal(t, want, (&Certificate{PublicKey: l.Key.Public()}).Pin())
	assert.Equal(t, "", (&Certificate{}).Pin())
}

// A store without organisations keeps an entry under its plain ID, and
// finds it behind any organisation prefix too.
func TestPlainID(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	for _, good := range []string{id, "org" + id, "Org1" + id} {
		got, err := plainID(good)
		require.NoError(t, err, good)
		assert.Equal(t, id, got)
	}
	// (id + "0" is the ID id[1:] + "0" behind the organisation "0".)
	for _, bad := range []string{"", id[1:], strings.ToUpper(id), "g" + id[1:], "../" + id[3:], "org-1" + id, id + ".pem"} {
		_, err := plainID(bad)
		assert.ErrorIs(t, err, ErrNotFound, bad)
	}
}

// countDerivations wraps the key derivation of a keyring.
func countDerivations(k *certkit.Keyring) *atomic.Int32 {
	var n atomic.Int32
	certkit.CountLoads(k, func() { n.Add(1) })
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
		keyring() *certkit.Keyring
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

func (m memKeys) keyring() *certkit.Keyring { return m.keys }

type fileKeys struct{ *FileStore }

func (f fileKeys) keyring() *certkit.Keyring { return f.keys }

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
				require.ErrorIs(t, err, certkit.ErrNoSecret)
				assert.Contains(t, err.Error(), "no secret")
				ids, err := s.List(ctx)
				require.NoError(t, err)
				assert.Empty(t, ids, "the key was stored anyway")
				id, err := s.Add(ctx, ls["p256"].CertPEM)
				require.NoError(t, err, "a certificate without key needs no secret")
				_, err = s.Add(ctx, ls["p256"].PEM())
				require.ErrorIs(t, err, certkit.ErrNoSecret, "attaching a key needs a secret")
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
	assert.NotContains(t, string(ea.data.Sealed), string(der))
	assert.Len(t, ea.data.Sealed, certkit.NonceLen+len(der)+16)
	// Another entry's sealed key does not open under this ID.
	d := *ea.data
	d.Sealed = eb.data.Sealed
	swapped := &storeEntry{data: &d}
	_, err = swapped.certificate(a, s.keys)
	assert.ErrorIs(t, err, ErrDecrypt)
	// Same key, two stores: different salts, different ciphertexts.
	s2 := NewMemoryStore([]byte("secret"))
	_, err = s2.Add(ctx, ls["p256"].PEM())
	require.NoError(t, err)
	assert.NotEqual(t, ea.data.Sealed[certkit.NonceLen:], s2.entries[a].data.Sealed[certkit.NonceLen:])
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
	var kf certkit.KDF
	require.NoError(t, json.Unmarshal(data, &kf))
	assert.Equal(t, certkit.DefaultParams, kf.Params)
	assert.Equal(t, "argon2id", kf.Alg)
	assert.Len(t, kf.Salt, certkit.SaltLen)

	old := certkit.DefaultParams
	certkit.DefaultParams = certkit.Params{Time: 2, Memory: 128, Threads: 2}
	defer func() { certkit.DefaultParams = old }()
	s2, err := NewFileStore(dir, []byte("pass"))
	require.NoError(t, err)
	defer s2.Close()
	c, err := s2.Get(ctx, id)
	require.NoError(t, err, "a store must derive with the parameters of its kdf.json")
	require.NotNil(t, c.TLS)
}

// Errors of Add that certkit reports carry the prefix once, and the
// sentinel of this package.
func TestAddErrors(t *testing.T) {
	ctx := context.Background()
	ls := leaves(t)
	for name, s := range map[string]CertStore{"Memory": NewMemoryStore([]byte("s")), "Zero": &MemoryStore{}} {
		for _, tt := range []struct {
			data string
			want error
		}{
			{"garbage", nil},
			{string(ls["p256"].KeyPEM), nil},
			{string(ls["expired"].PEM()), ErrExpired},
		} {
			_, err := s.Add(ctx, []byte(tt.data))
			require.Error(t, err, name)
			assert.True(t, strings.HasPrefix(err.Error(), "mtls: "), err.Error())
			assert.Equal(t, 1, strings.Count(err.Error(), "mtls: "), err.Error())
			if tt.want != nil {
				assert.ErrorIs(t, err, tt.want)
			}
		}
	}
}

// The zero MemoryStore is an empty store without a secret; the zero
// FileStore is closed. Neither panics.
func TestStoreZeroValues(t *testing.T) {
	ctx := context.Background()
	ls := leaves(t)
	var m MemoryStore
	ids, err := m.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, ids)
	id, err := m.Add(ctx, ls["p256"].CertPEM)
	require.NoError(t, err)
	_, err = m.Add(ctx, ls["p256"].PEM())
	assert.ErrorIs(t, err, certkit.ErrNoSecret)
	c, err := m.Get(ctx, id)
	require.NoError(t, err)
	assert.Nil(t, c.TLS)

	var f FileStore
	_, err = f.Add(ctx, ls["p256"].CertPEM)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = f.Get(ctx, id)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = f.List(ctx)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, f.Delete(ctx, id), ErrClosed)
	assert.NoError(t, f.Close())
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
