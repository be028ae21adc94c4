package mtls

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlsgo/mtls/internal/certkit"
)

// FileStorePollInterval bounds how long a [FileStore] takes to see a change
// that another process (or another FileStore on the same directory) made:
//   - while the store has a subscriber ([FileStore.Notify]), a poller
//     notices the change and calls the subscribers within this interval;
//   - without one, Get, Metadata and List check an entry against its file
//     when they last did so longer than this interval ago.
//
// Changes made through the same FileStore are seen at once.
const FileStorePollInterval = time.Second

// FileStore is a [CertStore] that keeps each entry in a file of one
// directory, so that several processes can share it. It implements
// [Notifier]. It is safe for concurrent use by multiple goroutines, and by
// several processes on one directory: a reader always sees whole files,
// never a file being written. Of two processes writing the same entry at
// once, the last write wins.
//
// # Directory layout
//
// The directory (created with mode 0700 if missing) holds:
//
//   - <id>.pem, mode 0600, one per entry, named by its ID. The file is PEM
//     text: a comment line, the CERTIFICATE blocks of the chain (leaf
//     first) or one PUBLIC KEY block, then, when the entry has a private
//     key, one "MTLS SEALED KEY" block holding the 12-byte GCM
//     nonce, the AES-256-GCM ciphertext of the key's PKCS#8 DER, and the
//     16-byte tag (additional data: the ID), and last an "MTLS CHECKSUM"
//     block holding the SHA-256 of every byte before it. `openssl x509 -in
//     <id>.pem` reads the leaf. A file whose checksum, blocks or leaf do
//     not match its name is never taken for a certificate: Get reports it
//     as not found. List leaves out a file whose checksum does not match,
//     and parses none (see [FileStore.List]). Private key material is
//     never written in clear.
//   - kdf.json, mode 0600, written once, on the first Add of a private key,
//     and never replaced: the Argon2id parameters and 16-byte random salt
//     from which the AES-256 key is derived, and a GCM-sealed check value
//     that tells a wrong secret ([ErrDecrypt]) before any key is stored.
//     The parameters of new stores are those of RFC 9106's second
//     recommendation: time 3, memory 64 MiB, 4 threads, 32-byte key. A
//     store always uses the parameters its kdf.json holds.
//   - .tmp-* files, being written. Every file is written to a temporary
//     file in the directory, synced, renamed to its name and followed by a
//     sync of the directory. A temporary file left by a crash is ignored,
//     and removed by NewFileStore once an hour old.
//
// Other files are ignored.
//
// Opening a store reads no entry and derives no key: entries are read and
// parsed on first use, private keys decrypted on the first Get, and the
// key derived once, on the first operation that needs it. No file in the
// directory blocks a call: a FIFO or device under an entry's name is
// reported as a corrupt entry.
//
// The zero FileStore is closed: its methods fail with [ErrClosed].
type FileStore struct {
	dir  string
	keys *certkit.Keyring

	closed  atomic.Bool
	wmu     sync.Mutex   // serialises Add, Delete and scans
	mu      sync.RWMutex // guards entries and gen
	entries map[string]*fileEntry
	gen     uint64 // bumped by every change of entries made by a write or a scan

	subs    certkit.Subscribers
	poller  atomic.Pointer[storePoller] // written under subs.Mu
	polling atomic.Bool                 // the current poller keeps entries fresh
	wg      sync.WaitGroup
}

// fileEntry is an entry of a FileStore and the file it was read from.
type fileEntry struct {
	storeEntry
	version fileVersion
	checked atomic.Int64 // monotonic time of the last check of version
	err     error        // the file failed its checks: nothing else is set
}

// fileStoreHook, when set by tests, is called between the steps of a write:
// "write" (temporary file written), "fsync" (synced and closed), "rename"
// (renamed to its name), "remove" (Delete removed the file) and "dirsync"
// (directory synced). A test can copy the directory there to see what a
// crash at that point would leave. It is also called with "read" after an
// entry was read from its file and before it is cached, where a test can
// make a write race the read.
var fileStoreHook func(step string)

func storeHook(step string) {
	if fileStoreHook != nil {
		fileStoreHook(step)
	}
}

const (
	entryExt         = ".pem"
	kdfFileName      = "kdf.json"
	tmpPrefix        = ".tmp-"
	staleTempAge     = time.Hour
	maxEntryFileSize = 4 << 20
)

// storeMonoEpoch anchors storeMonoNow, a monotonic clock in nanoseconds.
var storeMonoEpoch = time.Now()

func storeMonoNow() int64 { return int64(time.Since(storeMonoEpoch)) }

// NewFileStore opens the store in dir, creating the directory (mode 0700)
// if it does not exist. Private keys are protected by secret, which may be
// a passphrase (see [FileStore] for the key derivation); secret is copied.
// With a nil or empty secret the store accepts certificates and public
// keys, and rejects data holding a private key; Get of an entry with a key
// then fails with [ErrDecrypt]. A wrong secret is reported as
// [ErrDecrypt] by the first operation that needs the key.
//
// Opening is cheap: it reads no entry and derives no key. Call Close to stop
// the poller that subscribers start.
func NewFileStore(dir string, secret []byte) (*FileStore, error) {
	if dir == "" {
		return nil, errorf("NewFileStore: empty directory name")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, errorf("NewFileStore: %w", err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, errorf("NewFileStore: %w", err)
	}
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), tmpPrefix) {
			continue
		}
		if fi, err := de.Info(); err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > staleTempAge {
			_ = os.Remove(filepath.Join(dir, de.Name())) // another process may have done it
		}
	}
	s := &FileStore{dir: dir, entries: make(map[string]*fileEntry)}
	s.keys = certkit.NewKeyring(secret, s.loadKeys)
	s.subs.OnCount = s.subscribers
	return s, nil
}

// Dir returns the store's directory.
func (s *FileStore) Dir() string { return s.dir }

// ready fails for a closed store, and for the zero FileStore, which is
// closed.
func (s *FileStore) ready(ctx context.Context) error {
	switch {
	case s == nil || s.entries == nil:
		return errorf("%w: the zero FileStore is not open: use NewFileStore: %w", ErrClosed, fs.ErrClosed)
	case s.closed.Load():
		return errorf("%w: FileStore %s: %w", ErrClosed, s.dir, fs.ErrClosed)
	}
	return ctxErr(ctx)
}

func entryName(id string) string { return id + entryExt }

// entryID returns the ID a file name stands for.
func entryID(name string) (string, bool) {
	if len(name) != 64+len(entryExt) || !strings.HasSuffix(name, entryExt) || !certkit.IsID(name[:64]) {
		return "", false
	}
	return name[:64], true
}

// Add implements [CertStore.Add] (limits as [MemoryStore.Add]). It merges
// with the entry as it is on disk, writes the file atomically, and calls
// subscribers before returning. The first Add of a private key to a
// directory creates kdf.json and so pays for the key derivation.
func (s *FileStore) Add(ctx context.Context, pemData []byte) (string, error) {
	if err := s.ready(ctx); err != nil {
		return "", err
	}
	p, err := parseAdd(pemData, s.keys)
	if err != nil {
		return "", err
	}
	changed, err := s.add(ctx, p)
	if err != nil {
		return "", err
	}
	if changed {
		s.subs.Notify(p.ID)
	}
	return p.ID, nil
}

func (s *FileStore) add(ctx context.Context, p *certkit.Parsed) (bool, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	cur, err := s.readEntry(p.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return false, err
	}
	var curData *certkit.Data
	if cur != nil && cur.err == nil {
		curData, _ = cur.decode(p.ID) // nil for a corrupt file, which is replaced
	}
	chain, sealed, sealNew, changed := certkit.Merge(curData, p)
	if !changed {
		return false, nil
	}
	if sealNew {
		aead, err := s.keys.Get(true)
		if err == nil {
			sealed, err = certkit.Seal(aead, p.ID, p.Key)
		}
		if err != nil {
			return false, fromKit(err)
		}
	}
	if err := ctxErr(ctx); err != nil {
		return false, err
	}
	d := certkit.NewData(p, chain, sealed)
	fi, err := s.writeFile(entryName(p.ID), certkit.Encode(d))
	if err != nil {
		return false, err
	}
	e := &fileEntry{storeEntry: storeEntry{data: d}, version: versionOf(fi)}
	e.checked.Store(storeMonoNow())
	s.mu.Lock()
	s.entries[p.ID] = e
	s.gen++
	s.mu.Unlock()
	if pl := s.poller.Load(); pl != nil && pl.seen != nil {
		pl.seen[p.ID] = e.version // our own change: not to be reported again
	}
	return true, nil
}

// Delete implements [CertStore.Delete]. The file is removed and the
// directory synced before subscribers are called.
func (s *FileStore) Delete(ctx context.Context, id string) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	id, err := plainID(id)
	if err != nil {
		return err
	}
	removed, err := s.remove(id)
	if removed {
		s.subs.Notify(id)
	}
	return err
}

// remove deletes the entry's file and forgets the entry, and reports
// whether the file was removed (even if the directory could not be synced
// after).
func (s *FileStore) remove(id string) (removed bool, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err = os.Remove(filepath.Join(s.dir, entryName(id)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, errorf("delete %s: %w", id, err)
	}
	var syncErr error
	if err == nil {
		storeHook("remove")
		// The file is gone even when the directory cannot be synced: the
		// cache below must forget it all the same, or a deleted certificate
		// would still be served.
		if syncErr = syncDir(s.dir); syncErr == nil {
			storeHook("dirsync")
		}
	}
	s.mu.Lock()
	delete(s.entries, id)
	s.gen++
	s.mu.Unlock()
	if pl := s.poller.Load(); pl != nil && pl.seen != nil {
		delete(pl.seen, id)
	}
	if err != nil {
		return false, errIDNotFound(id)
	}
	if syncErr != nil {
		return true, errorf("delete %s: %w", id, syncErr)
	}
	return true, nil
}
