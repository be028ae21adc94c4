package mtls

// Benchmarks of the certificate stores (targets in BENCHMARKS.md; run them
// all with scripts/bench):
//
//   - BenchmarkFileStoreOpen: opening a FileStore of 10,000 certificates,
//     each with its sealed private key, against reading the same files with
//     os.ReadFile in a loop (op=readfile, the baseline). op=open is
//     NewFileStore followed by List, which reads, checks and parses every
//     entry (the first time an entry is needed it costs this much) and
//     decrypts nothing; op=open-lazy is NewFileStore alone, which reads no
//     entry. Target: op=open at most 3x op=readfile. op=open also reports
//     the heap the open store holds per certificate (B/cert), and after a
//     Get of every entry, keys decrypted (B/cert-got).
//   - BenchmarkStoreGet: a warm Get (entry read and key decrypted before).
//     Target: 0 allocs/op. store=file-recheck is the Get of a FileStore
//     without subscriber that comes more than FileStorePollInterval after the
//     entry's last check, and so stats its file: for information.
//
// The 10,000 certificates are generated once per process, on first use, and
// written into a temporary directory for each run. Identifiers start with
// sbench so that they do not collide with the helpers of other test files.

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/mtlsgo/mtls/internal/certkit"

	"github.com/mtlsgo/mtls/mtlstest"
)

// sbenchCerts is how many certificates the open benchmark stores.
const sbenchCerts = 10_000

var sbenchSecret = []byte("store benchmarks")

// sbenchFiles is the content of a FileStore directory: the entry files,
// exactly as FileStore.Add writes them, and kdf.json.
type sbenchFiles struct {
	names []string // <id>.pem
	data  [][]byte
	kdf   []byte
}

var sbenchOnce = sync.OnceValues(sbenchGenerate)

// sbenchGenerate issues sbenchCerts P-256 client certificates and encodes
// them as a FileStore would: the first through FileStore.Add, which creates
// kdf.json and derives the key, the others with the same sealing and
// encoding but without the fsyncs of Add.
func sbenchGenerate() (*sbenchFiles, error) {
	dir, err := os.MkdirTemp("", "mtls-bench-gen-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	fs, err := NewFileStore(dir, sbenchSecret)
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	ca, err := mtlstest.NewCA("store bench CA")
	if err != nil {
		return nil, err
	}
	first, err := ca.Issue(mtlstest.Options{CommonName: "client 0", DNSNames: []string{"client0.example.test"}})
	if err != nil {
		return nil, err
	}
	id, err := fs.Add(context.Background(), first.PEM())
	if err != nil {
		return nil, err
	}
	aead, err := fs.keys.Get(false)
	if err != nil {
		return nil, err
	}
	f := &sbenchFiles{names: make([]string, sbenchCerts), data: make([][]byte, sbenchCerts)}
	if f.kdf, err = os.ReadFile(filepath.Join(dir, kdfFileName)); err != nil {
		return nil, err
	}
	f.names[0] = entryName(id)
	if f.data[0], err = os.ReadFile(filepath.Join(dir, f.names[0])); err != nil {
		return nil, err
	}

	workers := runtime.GOMAXPROCS(0)
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := 1 + w; i < sbenchCerts; i += workers {
				leaf, err := ca.Issue(mtlstest.Options{
					CommonName: fmt.Sprintf("client %d", i),
					DNSNames:   []string{fmt.Sprintf("client%d.example.test", i)},
				})
				if err != nil {
					errs <- err
					return
				}
				p, err := certkit.Parse(leaf.PEM())
				if err != nil {
					errs <- err
					return
				}
				sealed, err := certkit.Seal(aead, p.ID, p.Key)
				if err != nil {
					errs <- err
					return
				}
				f.names[i] = entryName(p.ID)
				f.data[i] = certkit.Encode(certkit.NewData(p, p.Chain, sealed))
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			return nil, err
		}
	}
	return f, nil
}

// sbenchDir writes the first n generated entries and kdf.json into a new
// temporary directory of b, and returns it with the paths of the entries.
func sbenchDir(b *testing.B, n int) (dir string, paths []string) {
	b.Helper()
	f, err := sbenchOnce()
	if err != nil {
		b.Fatal(err)
	}
	dir = b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, kdfFileName), f.kdf, 0o600); err != nil {
		b.Fatal(err)
	}
	paths = make([]string, n)
	for i := range n {
		paths[i] = filepath.Join(dir, f.names[i])
		if err := os.WriteFile(paths[i], f.data[i], 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return dir, paths
}

func sbenchOpen(b *testing.B, dir string) *FileStore {
	b.Helper()
	s, err := NewFileStore(dir, sbenchSecret)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// sbenchHeap returns the live heap after a collection.
func sbenchHeap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkFileStoreOpen compares opening a FileStore of 10,000
// certificates with reading its files. Target: op=open at most 3x
// op=readfile.
func BenchmarkFileStoreOpen(b *testing.B) {
	dir, paths := sbenchDir(b, sbenchCerts)
	ctx := context.Background()

	b.Run("op=readfile", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, p := range paths {
				if _, err := os.ReadFile(p); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("op=open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s := sbenchOpen(b, dir)
			ids, err := s.List(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if len(ids) != sbenchCerts {
				b.Fatalf("List: %d entries, want %d", len(ids), sbenchCerts)
			}
			s.Close()
		}

		// The heap an open store holds per certificate: after List (no
		// key decrypted), then after a Get of every entry.
		before := sbenchHeap()
		s := sbenchOpen(b, dir)
		defer s.Close()
		ids, err := s.List(ctx)
		if err != nil {
			b.Fatal(err)
		}
		listed := sbenchHeap()
		for _, id := range ids {
			if _, err := s.Get(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
		got := sbenchHeap()
		runtime.KeepAlive(ids)
		runtime.KeepAlive(s)
		b.ReportMetric(float64(listed-before)/sbenchCerts, "B/cert")
		b.ReportMetric(float64(got-before)/sbenchCerts, "B/cert-got")
	})
	b.Run("op=open-lazy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sbenchOpen(b, dir).Close()
		}
	})
}

// BenchmarkStoreGet measures a warm Get: the entry was read and its key
// decrypted by an earlier Get. Target: 0 allocs/op. store=file has no
// subscriber, store=file-notify one (as when a Selector follows the store).
func BenchmarkStoreGet(b *testing.B) {
	const n = 16
	dir, _ := sbenchDir(b, n)
	f, _ := sbenchOnce()
	id := f.names[n/2][:64]
	ctx := context.Background()

	file := sbenchOpen(b, dir)
	b.Cleanup(func() { file.Close() })
	notifying := sbenchOpen(b, dir)
	b.Cleanup(func() { notifying.Close() })
	stop := notifying.Notify(func(string) {})
	b.Cleanup(stop)

	mem := NewMemoryStore(sbenchSecret)
	var pemData []byte
	{
		c, err := file.Get(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		pemData = append(pemData, sbenchPEM(b, c)...)
	}
	if _, err := mem.Add(ctx, pemData); err != nil {
		b.Fatal(err)
	}

	for _, bc := range []struct {
		name    string
		store   CertStore
		recheck bool
	}{
		{"store=memory", mem, false},
		{"store=file", file, false},
		{"store=file-notify", notifying, false},
		{"store=file-recheck", file, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := bc.store.Get(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if c.TLS == nil || c.TLS.PrivateKey == nil {
				b.Fatal("Get returned no private key")
			}
			var e *fileEntry
			if bc.recheck {
				file.mu.RLock()
				e = file.entries[id]
				file.mu.RUnlock()
			}
			b.ReportAllocs()
			for b.Loop() {
				if e != nil {
					e.checked.Store(-int64(FileStorePollInterval)) // last checked long ago
				}
				got, err := bc.store.Get(ctx, id)
				if err != nil {
					b.Fatal(err)
				}
				if got != c {
					b.Fatal("a warm Get returned another Certificate")
				}
			}
		})
	}
}

// sbenchPEM returns the chain and key of c as PEM, for MemoryStore.Add.
func sbenchPEM(b *testing.B, c *Certificate) []byte {
	b.Helper()
	var out []byte
	for _, der := range c.TLS.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(c.TLS.PrivateKey)
	if err != nil {
		b.Fatal(err)
	}
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})...)
}
