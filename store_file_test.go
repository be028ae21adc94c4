package mtls_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/mtlsgo/mtls/storetest"
)

// The conformance suite, over both stores of the package. (It lives here,
// in package mtls_test, because storetest imports mtls.)

func TestMemoryStoreConformance(t *testing.T) {
	storetest.TestStore(t, func(t *testing.T) mtls.CertStore {
		return mtls.NewMemoryStore([]byte("memory store secret"))
	})
}

func TestFileStoreConformance(t *testing.T) {
	storetest.TestStore(t, func(t *testing.T) mtls.CertStore {
		s, err := mtls.NewFileStore(filepath.Join(t.TempDir(), "certs"), []byte("file store secret"))
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

var (
	leavesOnce sync.Once
	leafSet    map[mtlstest.KeyType]*mtlstest.Leaf
	leafErr    error
)

// keyLeaves returns a leaf of every key type.
func keyLeaves(t *testing.T) map[mtlstest.KeyType]*mtlstest.Leaf {
	t.Helper()
	leavesOnce.Do(func() {
		ca, err := mtlstest.NewCA("file store test")
		if err != nil {
			leafErr = err
			return
		}
		leafSet = map[mtlstest.KeyType]*mtlstest.Leaf{}
		for _, k := range []mtlstest.KeyType{mtlstest.P256, mtlstest.RSA2048, mtlstest.Ed25519} {
			if leafSet[k], err = ca.Issue(mtlstest.Options{CommonName: string(k), Key: k}); err != nil {
				leafErr = err
				return
			}
		}
	})
	require.NoError(t, leafErr)
	return leafSet
}

func openStore(t *testing.T, dir string, secret string) *mtls.FileStore {
	t.Helper()
	var sec []byte
	if secret != "" {
		sec = []byte(secret)
	}
	s, err := mtls.NewFileStore(dir, sec)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// secretsOf returns every encoding of key's private material that must
// never reach the disk.
func secretsOf(t *testing.T, l *mtlstest.Leaf) map[string][]byte {
	t.Helper()
	pkcs8, err := x509.MarshalPKCS8PrivateKey(l.Key)
	require.NoError(t, err)
	raw := map[string][]byte{"pkcs8": pkcs8}
	switch k := l.Key.(type) {
	case *ecdsa.PrivateKey:
		sec1, err := x509.MarshalECPrivateKey(k)
		require.NoError(t, err)
		raw["sec1"] = sec1
		d, err := k.Bytes()
		require.NoError(t, err)
		raw["scalar"] = d
	case ed25519.PrivateKey:
		raw["seed"] = k.Seed()
		raw["expanded"] = []byte(k)
	case *rsa.PrivateKey:
		raw["pkcs1"] = x509.MarshalPKCS1PrivateKey(k)
		raw["d"] = k.D.Bytes()
		raw["p"] = k.Primes[0].Bytes()
		raw["q"] = k.Primes[1].Bytes()
	}
	out := map[string][]byte{"pem": l.KeyPEM}
	for name, b := range raw {
		out[name] = b
		out[name+"/hex"] = []byte(hex.EncodeToString(b))
		out[name+"/HEX"] = []byte(strings.ToUpper(hex.EncodeToString(b)))
		out[name+"/base64"] = []byte(base64.StdEncoding.EncodeToString(b))
		out[name+"/base64url"] = []byte(base64.RawURLEncoding.EncodeToString(b))
		// The base64 lines of a PEM block are 64 characters: look for the
		// first line of each, which survives line breaks.
		if b64 := base64.StdEncoding.EncodeToString(b); len(b64) > 64 {
			out[name+"/pemline"] = []byte(b64[:64])
		}
	}
	for name, b := range out {
		require.GreaterOrEqual(t, len(b), 16, "needle %s too short to search for", name)
	}
	return out
}

func TestFileStoreNeverWritesKeysInClear(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	s := openStore(t, dir, "correct horse battery staple")
	needles := map[string][]byte{}
	for kt, l := range keyLeaves(t) {
		_, err := s.Add(ctx, l.PEM())
		require.NoError(t, err)
		c, err := s.Get(ctx, l.ID())
		require.NoError(t, err)
		require.NotNil(t, c.TLS)
		for name, b := range secretsOf(t, l) {
			needles[string(kt)+"/"+name] = b
		}
	}
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		if d.IsDir() {
			return nil
		}
		files++
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		for name, needle := range needles {
			assert.False(t, bytes.Contains(data, needle), "%s contains the private key as %s", path, name)
		}
		for _, typ := range []string{"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"} {
			assert.NotContains(t, string(data), "-----BEGIN "+typ+"-----", "%s holds a key block", path)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 4, files, "3 entries and kdf.json")
	// And the needles do work: the key PEM as written by hand is found.
	probe := filepath.Join(t.TempDir(), "probe")
	require.NoError(t, os.WriteFile(probe, keyLeaves(t)[mtlstest.P256].PEM(), 0o600))
	data, _ := os.ReadFile(probe)
	assert.True(t, bytes.Contains(data, needles["p256/pkcs8/pemline"]))
}

func TestFileStoreWrongSecret(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ls := keyLeaves(t)
	a := openStore(t, dir, "right")
	keyed, err := a.Add(ctx, ls[mtlstest.P256].PEM())
	require.NoError(t, err)
	bare, err := a.Add(ctx, ls[mtlstest.RSA2048].CertPEM)
	require.NoError(t, err)

	b := openStore(t, dir, "wrong")
	_, err = b.Get(ctx, keyed)
	require.ErrorIs(t, err, mtls.ErrDecrypt)
	_, err = b.Get(ctx, keyed)
	require.ErrorIs(t, err, mtls.ErrDecrypt, "second Get")
	_, err = b.Add(ctx, ls[mtlstest.Ed25519].PEM())
	require.ErrorIs(t, err, mtls.ErrDecrypt, "a key added with a wrong secret must be refused, not stored under another key")
	assert.NoFileExists(t, filepath.Join(dir, ls[mtlstest.Ed25519].ID()+".pem"))
	c, err := b.Get(ctx, bare)
	require.NoError(t, err, "entries without a key need no secret")
	assert.Nil(t, c.TLS)
	m, err := b.Metadata(ctx, keyed)
	require.NoError(t, err, "metadata needs no secret")
	assert.True(t, m.HasPrivateKey)

	none := openStore(t, dir, "")
	_, err = none.Get(ctx, keyed)
	require.ErrorIs(t, err, mtls.ErrDecrypt)

	// The right secret still works after all that.
	again := openStore(t, dir, "right")
	c, err = again.Get(ctx, keyed)
	require.NoError(t, err)
	require.NotNil(t, c.TLS)
}

func TestFileStorePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX permissions")
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "a", "store")
	s := openStore(t, dir, "secret")
	for _, l := range keyLeaves(t) {
		_, err := s.Add(ctx, l.PEM())
		require.NoError(t, err)
	}
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm(), "directory mode")
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, des, 4)
	for _, de := range des {
		fi, err := de.Info()
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), "mode of %s", de.Name())
	}
}

// TestFileStoreListParsesNothing: List checks each file's checksum and
// leaves parsing to Get and Metadata. A whole entry file copied under the
// name of another ID passes the checksum, so List shows it; Get and
// Metadata then find that it is not that ID's entry.
func TestFileStoreListParsesNothing(t *testing.T) {
	ctx := context.Background()
	dir, ls, good, content := storeOfOne(t)
	other := ls[mtlstest.RSA2048].ID()
	require.NoError(t, os.WriteFile(filepath.Join(dir, other+".pem"), content, 0o600))

	s2 := openStore(t, dir, "secret")
	ids, err := s2.List(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{good, other}, ids)
	_, err = s2.Get(ctx, other)
	assert.ErrorIs(t, err, mtls.ErrNotFound)
	assert.ErrorContains(t, err, "does not match the name")
	_, err = s2.Metadata(ctx, other)
	assert.ErrorIs(t, err, mtls.ErrNotFound)
	c, err := s2.Get(ctx, good)
	require.NoError(t, err)
	assert.Equal(t, good, c.ID)
}

// storeOfOne makes a FileStore directory holding the entry of the P-256
// leaf of keyLeaves, and returns it with the leaves, the entry's ID and its
// file's contents.
func storeOfOne(t *testing.T) (dir string, ls map[mtlstest.KeyType]*mtlstest.Leaf, id string, content []byte) {
	t.Helper()
	dir, ls = t.TempDir(), keyLeaves(t)
	id, err := openStore(t, dir, "secret").Add(context.Background(), ls[mtlstest.P256].PEM())
	require.NoError(t, err)
	content, err = os.ReadFile(filepath.Join(dir, id+".pem"))
	require.NoError(t, err)
	return dir, ls, id, content
}

func TestFileStoreIgnoresCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	dir, ls, good, content := storeOfOne(t)

	rsaID, edID := ls[mtlstest.RSA2048].ID(), ls[mtlstest.Ed25519].ID()
	write := func(name string, data []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}
	// A whole entry, but still under its temporary name.
	write(".tmp-123456", content)
	// An old temporary file, which opening the store removes.
	write(".tmp-old", content)
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(dir, ".tmp-old"), old, old))
	// Truncated files under entry names (a crash of some other copy tool).
	write(rsaID+".pem", content[:len(content)/2])
	write(edID+".pem", ls[mtlstest.Ed25519].PEM()) // plain PEM, not a store file
	write("README", []byte("not an entry"))
	write(strings.ToUpper(good)+".pem", content)

	s2 := openStore(t, dir, "secret")
	assert.NoFileExists(t, filepath.Join(dir, ".tmp-old"), "stale temporary file not removed")
	assert.FileExists(t, filepath.Join(dir, ".tmp-123456"), "a fresh temporary file may be another process's write")
	ids, err := s2.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{good}, ids)
	for _, id := range []string{rsaID, edID} {
		_, err := s2.Get(ctx, id)
		assert.ErrorIs(t, err, mtls.ErrNotFound, "a damaged file taken for a certificate")
		_, err = s2.Metadata(ctx, id)
		assert.ErrorIs(t, err, mtls.ErrNotFound)
	}
	// Adding over a damaged file repairs it.
	_, err = s2.Add(ctx, ls[mtlstest.RSA2048].PEM())
	require.NoError(t, err)
	c, err := s2.Get(ctx, rsaID)
	require.NoError(t, err)
	assert.NotNil(t, c.TLS)
	// Deleting a damaged entry works too.
	require.NoError(t, s2.Delete(ctx, edID))
	assert.NoFileExists(t, filepath.Join(dir, edID+".pem"))
}

func TestFileStoreFileIsReadableByOpenSSLConventions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := keyLeaves(t)[mtlstest.P256]
	s := openStore(t, dir, "secret")
	id, err := s.Add(ctx, l.PEM())
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(dir, id+".pem"))
	require.NoError(t, err)
	var types []string
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		types = append(types, b.Type)
	}
	assert.Equal(t, []string{"CERTIFICATE", "MTLS SEALED KEY", "MTLS CHECKSUM"}, types)
}

// waitFor polls cond until it holds or the deadline passes, and returns how
// long it took.
func waitFor(t *testing.T, what string, deadline time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > deadline {
			t.Fatalf("%s: not seen within %v", what, deadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestFileStoreSeesOtherWriters runs two stores on one directory, as two
// processes would: each sees the other's changes, by Get and by Notify,
// within the documented bound.
func TestFileStoreSeesOtherWriters(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ls := keyLeaves(t)
	l := ls[mtlstest.P256]
	writer := openStore(t, dir, "secret")
	watcher := openStore(t, dir, "secret")
	reader := openStore(t, dir, "secret") // no subscriber: checks on Get

	var mu sync.Mutex
	var seen []string
	stop := watcher.Notify(func(id string) {
		mu.Lock()
		seen = append(seen, id)
		mu.Unlock()
	})
	defer stop()
	notified := func(id string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			i := slices.Index(seen, id)
			if i >= 0 {
				seen = slices.Delete(seen, i, i+1)
			}
			return i >= 0
		}
	}
	// Warm the caches with "absent" and then with the certificate alone.
	_, err := watcher.Get(ctx, l.ID())
	require.ErrorIs(t, err, mtls.ErrNotFound)
	time.Sleep(100 * time.Millisecond) // let the watcher's poller take its baseline

	// The documented bound, with room for a loaded machine: the deadline of
	// a polling loop, not a timing assertion.
	bound := 5 * mtls.FileStorePollInterval
	steps := []struct {
		name  string
		do    func() error
		check func(s *mtls.FileStore) bool
	}{
		{"add", func() error { _, err := writer.Add(ctx, l.CertPEM); return err }, func(s *mtls.FileStore) bool {
			c, err := s.Get(ctx, l.ID())
			return err == nil && c.TLS == nil
		}},
		{"attach key", func() error { _, err := writer.Add(ctx, l.PEM()); return err }, func(s *mtls.FileStore) bool {
			c, err := s.Get(ctx, l.ID())
			return err == nil && c.TLS != nil
		}},
		{"delete", func() error { return writer.Delete(ctx, l.ID()) }, func(s *mtls.FileStore) bool {
			_, err := s.Get(ctx, l.ID())
			return errors.Is(err, mtls.ErrNotFound)
		}},
	}
	for _, st := range steps {
		require.NoError(t, st.do(), st.name)
		took := waitFor(t, st.name+" notified", bound, notified(l.ID()))
		t.Logf("%s: notified after %v", st.name, took)
		assert.True(t, st.check(watcher), "%s: the watcher's Get does not see the change once notified", st.name)
		waitFor(t, st.name+" by Get", bound, func() bool { return st.check(reader) })
	}
	// List follows too.
	id, err := writer.Add(ctx, ls[mtlstest.Ed25519].PEM())
	require.NoError(t, err)
	waitFor(t, "List", 10*time.Second, func() bool {
		ids, err := reader.List(ctx)
		return err == nil && slices.Equal(ids, []string{id})
	})
}

func TestFileStoreConcurrentInstances(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ls := keyLeaves(t)
	stores := []*mtls.FileStore{openStore(t, dir, "s"), openStore(t, dir, "s"), openStore(t, dir, "s")}
	for _, s := range stores {
		stop := s.Notify(func(string) {})
		defer stop()
	}
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 20 {
				for _, l := range ls {
					if _, err := s.Add(ctx, l.PEM()); err != nil {
						t.Errorf("store %d: Add: %v", i, err)
					}
					if c, err := s.Get(ctx, l.ID()); err == nil && c.TLS == nil && c.HasPrivateKey {
						t.Errorf("store %d: entry with a key but no TLS certificate", i)
					} else if err != nil && !errors.Is(err, mtls.ErrNotFound) {
						t.Errorf("store %d: Get: %v", i, err)
					}
					if (r+i)%4 == 0 {
						if err := s.Delete(ctx, l.ID()); err != nil && !errors.Is(err, mtls.ErrNotFound) {
							t.Errorf("store %d: Delete: %v", i, err)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, l := range ls {
		_, err := stores[0].Add(ctx, l.PEM())
		require.NoError(t, err)
	}
	for _, s := range stores {
		waitFor(t, "every store sees every entry", 10*time.Second, func() bool {
			for _, l := range ls {
				if c, err := s.Get(ctx, l.ID()); err != nil || c.TLS == nil {
					return false
				}
			}
			return true
		})
	}
	temps, err := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	require.NoError(t, err)
	assert.Empty(t, temps, "temporary files left behind")
}

func TestFileStoreRejectsBadDirectory(t *testing.T) {
	_, err := mtls.NewFileStore("", []byte("s"))
	assert.Error(t, err)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = mtls.NewFileStore(file, []byte("s"))
	assert.Error(t, err)
}
