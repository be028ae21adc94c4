package mtls

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
// key derived once, on the first operation that needs it.
type FileStore struct {
	dir    string
	keys   *storeKeyring
	closed atomic.Bool

	wmu     sync.Mutex   // serialises Add, Delete and scans
	mu      sync.RWMutex // guards entries and gen
	entries map[string]*storeEntry
	gen     uint64 // bumped by every change of the entries made by a write or a scan

	subs    storeNotifier
	poller  atomic.Pointer[storePoller] // written under subs.mu
	polling atomic.Bool                 // the current poller keeps entries fresh
	wg      sync.WaitGroup
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
	fullScanEvery    = 10 * time.Second // a poller rescans all files at least this often
	dirMtimeSlack    = 2 * time.Second  // directory mtimes this recent may hide a change
)

var errStoreClosed = fmt.Errorf("mtls: FileStore is closed: %w", fs.ErrClosed)

// storeMonoEpoch anchors monoNow, a monotonic clock in nanoseconds.
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
		return nil, errors.New("mtls: NewFileStore: empty directory name")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mtls: NewFileStore: %w", err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("mtls: NewFileStore: %w", err)
	}
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), tmpPrefix) {
			continue
		}
		if fi, err := de.Info(); err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > staleTempAge {
			_ = os.Remove(filepath.Join(dir, de.Name())) // another process may have done it
		}
	}
	s := &FileStore{dir: dir, entries: make(map[string]*storeEntry)}
	s.keys = newStoreKeyring(secret, s.loadKeys)
	s.subs.onCount = s.subscribers
	return s, nil
}

// Dir returns the store's directory.
func (s *FileStore) Dir() string { return s.dir }

func (s *FileStore) ready(ctx context.Context) error {
	if s.closed.Load() {
		return errStoreClosed
	}
	return storeCtxErr(ctx)
}

func entryName(id string) string { return id + entryExt }

// entryID returns the ID a file name stands for.
func entryID(name string) (string, bool) {
	if len(name) != 64+len(entryExt) || !strings.HasSuffix(name, entryExt) || !isPlainID(name[:64]) {
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
	p, err := parsePEM(pemData)
	if err != nil {
		return "", err
	}
	if err := checkNotExpired(p, time.Now()); err != nil {
		return "", err
	}
	if p.key != nil && !s.keys.hasSecret() {
		return "", errNoSecret
	}
	changed, err := s.add(ctx, p)
	if err != nil {
		return "", err
	}
	if changed {
		s.subs.notify(p.id)
	}
	return p.id, nil
}

func (s *FileStore) add(ctx context.Context, p *parsedPEM) (bool, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	cur, err := s.readEntry(p.id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return false, err
	}
	var curData *storeData
	if cur != nil && cur.err == nil {
		curData, _ = cur.decode(p.id) // nil for a corrupt file, which is replaced
	}
	chain, sealed, sealNew, changed := mergeAdd(curData, p)
	if !changed {
		return false, nil
	}
	if sealNew {
		aead, err := s.keys.get(true)
		if err != nil {
			return false, err
		}
		if sealed, err = sealKey(aead, p.id, p.key); err != nil {
			return false, err
		}
	}
	if err := storeCtxErr(ctx); err != nil {
		return false, err
	}
	d := newStored(p, chain, sealed)
	fi, err := s.writeFile(entryName(p.id), encodeEntry(d))
	if err != nil {
		return false, err
	}
	e := &storeEntry{data: d, fi: sigOf(fi)}
	e.checked.Store(storeMonoNow())
	s.mu.Lock()
	s.entries[p.id] = e
	s.gen++
	s.mu.Unlock()
	if pl := s.poller.Load(); pl != nil && pl.seen != nil {
		pl.seen[p.id] = e.fi // our own change: not to be reported again
	}
	return true, nil
}

// Get implements [CertStore.Get]. An entry already decrypted and fresh
// (see [FileStorePollInterval]) is returned without I/O or allocation.
func (s *FileStore) Get(ctx context.Context, id string) (*Certificate, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	if !isPlainID(id) {
		return nil, checkID(id)
	}
	s.mu.RLock()
	e, gen := s.entries[id], s.gen
	s.mu.RUnlock()
	if e != nil && s.fresh(e) {
		if c := e.cert.Load(); c != nil {
			return c, nil
		}
	}
	e, err := s.load(id, e, gen)
	if err != nil {
		return nil, err
	}
	return e.certificate(id, s.keys)
}

// Metadata returns the metadata of the entry with ID id without
// decrypting anything. Errors are those of Get.
func (s *FileStore) Metadata(ctx context.Context, id string) (Metadata, error) {
	if err := s.ready(ctx); err != nil {
		return Metadata{}, err
	}
	if err := checkID(id); err != nil {
		return Metadata{}, err
	}
	s.mu.RLock()
	e, gen := s.entries[id], s.gen
	s.mu.RUnlock()
	e, err := s.load(id, e, gen)
	if err != nil {
		return Metadata{}, err
	}
	d, err := e.decode(id)
	if err != nil {
		return Metadata{}, err
	}
	return d.metadata(), nil
}

// fresh reports whether e can be trusted without looking at its file.
func (s *FileStore) fresh(e *storeEntry) bool {
	return s.polling.Load() || storeMonoNow()-e.checked.Load() < int64(FileStorePollInterval)
}

// load returns the current, valid entry of id, given the cached entry e (or
// nil) seen at generation gen: e itself when it is fresh or its file has
// not changed, else the entry read from the file, cached unless the store
// changed meanwhile.
func (s *FileStore) load(id string, e *storeEntry, gen uint64) (*storeEntry, error) {
	if e != nil {
		if !s.fresh(e) {
			if fi, err := os.Stat(filepath.Join(s.dir, entryName(id))); err == nil && sigOf(fi).same(e.fi) {
				e.checked.Store(storeMonoNow())
			}
		}
		if s.fresh(e) {
			if e.err != nil {
				return nil, e.err
			}
			return e, nil
		}
	}
	ne, err := s.readEntry(id)
	storeHook("read")
	s.mu.Lock()
	if s.gen == gen && s.entries[id] == e {
		if ne != nil {
			s.entries[id] = ne
		} else {
			delete(s.entries, id)
		}
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if ne.err != nil {
		return nil, ne.err
	}
	return ne, nil
}

// readEntry reads the file of id and checks its checksum; the entry's
// decode parses it. A missing file is an error wrapping ErrNotFound; a
// corrupt one gives an entry whose err wraps it.
func (s *FileStore) readEntry(id string) (*storeEntry, error) {
	f, err := os.Open(filepath.Join(s.dir, entryName(id)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errIDNotFound(id)
		}
		return nil, fmt.Errorf("mtls: read %s: %w", id, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mtls: read %s: %w", id, err)
	}
	e := &storeEntry{fi: sigOf(fi)}
	e.checked.Store(storeMonoNow())
	if !fi.Mode().IsRegular() || fi.Size() > maxEntryFileSize {
		e.err = corruptEntry(id, "not a regular file of at most 4 MiB")
		return e, nil
	}
	// One buffer of the file's size. Writers replace entry files, never
	// change them, so a file of another size than it had is not an entry.
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); errors.Is(err, io.ErrUnexpectedEOF) {
		e.err = corruptEntry(id, "the file shrank while it was read")
		return e, nil
	} else if err != nil {
		return nil, fmt.Errorf("mtls: read %s: %w", id, err)
	}
	e.raw, e.err = checkEntry(id, data)
	return e, nil
}

// Delete implements [CertStore.Delete]. The file is removed and the
// directory synced before subscribers are called.
func (s *FileStore) Delete(ctx context.Context, id string) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	removed, err := s.remove(id)
	if removed {
		s.subs.notify(id)
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
		return false, fmt.Errorf("mtls: delete %s: %w", id, err)
	}
	var syncErr error
	if err == nil {
		storeHook("remove")
		// The file is gone even when the directory cannot be synced: the
		// cache below must forget it all the same, or a deleted certificate
		// would still be served.
		if syncErr = syncStoreDir(s.dir); syncErr == nil {
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
		return true, fmt.Errorf("mtls: delete %s: %w", id, syncErr)
	}
	return true, nil
}

// List implements [CertStore.List]. It lists the directory, and leaves out
// files that fail the checks of an entry file: a regular file of at most
// 4 MiB whose checksum matches. It reads each file once, the first time,
// and parses none: an entry is parsed by its first Get or Metadata, which
// report an entry whose checked contents do not parse (only a file written
// by something else than a FileStore can have them) as not found.
func (s *FileStore) List(ctx context.Context) ([]string, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("mtls: list: %w", err)
	}
	ids := make([]string, 0, len(des))
	for _, de := range des {
		id, ok := entryID(de.Name())
		if !ok {
			continue
		}
		if err := storeCtxErr(ctx); err != nil {
			return nil, err
		}
		s.mu.RLock()
		e, gen := s.entries[id], s.gen
		s.mu.RUnlock()
		if _, err := s.load(id, e, gen); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // removed meanwhile, or corrupt
			}
			return nil, err
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

// Notify implements [Notifier]. Changes made through this FileStore are
// reported before Add or Delete returns. While at least one subscriber
// exists, a goroutine polls the directory (a stat of the directory every
// half [FileStorePollInterval]; a listing when it changed) and reports
// changes made by other processes within FileStorePollInterval, after
// dropping their cached entries. After Close, fn is never called.
func (s *FileStore) Notify(fn func(id string)) (stop func()) {
	if s.closed.Load() {
		return func() {}
	}
	stop, _ = s.subs.add(fn)
	return stop
}

// Close stops the poller, if any, and waits for it to finish; subscribers
// are dropped, and later calls of the store's methods fail with an error
// wrapping [fs.ErrClosed]. Close must not be called from a subscriber.
// Closing twice is harmless.
func (s *FileStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.subs.clear()
	s.wg.Wait()
	return nil
}

// storePoller is the state of one polling goroutine.
type storePoller struct {
	stop     chan struct{}
	seen     map[string]fileSig // guarded by FileStore.wmu; what was last reported
	dirSig   fileSig
	dirSafe  bool // dirSig's mtime was old enough to trust when taken
	lastFull time.Time
}

// subscribers starts and stops the poller; called under subs.mu.
func (s *FileStore) subscribers(n int) {
	cur := s.poller.Load()
	switch {
	case n > 0 && cur == nil && !s.closed.Load():
		p := &storePoller{stop: make(chan struct{})}
		s.poller.Store(p)
		s.wg.Add(1)
		go s.poll(p)
	case n == 0 && cur != nil:
		s.poller.Store(nil)
		s.polling.Store(false)
		close(cur.stop)
	}
}

func (s *FileStore) poll(p *storePoller) {
	defer s.wg.Done()
	s.scan(p, true)
	s.subs.mu.Lock()
	if s.poller.Load() == p {
		s.polling.Store(true)
	}
	s.subs.mu.Unlock()
	t := time.NewTicker(FileStorePollInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		if changed := s.scan(p, false); len(changed) > 0 {
			select {
			case <-p.stop:
				return
			default:
			}
			s.subs.notify(changed...)
		}
	}
}

// scan compares the directory with what p last saw, drops cached entries
// whose file changed, and returns the IDs that changed (none on the
// baseline scan).
func (s *FileStore) scan(p *storePoller, baseline bool) []string {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	dfi, err := os.Stat(s.dir)
	if err != nil {
		return nil
	}
	now := time.Now()
	ds := sigOf(dfi)
	if !baseline && p.dirSafe && ds.same(p.dirSig) && now.Sub(p.lastFull) < fullScanEvery {
		return nil // no file was created, renamed or removed
	}
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil
	}
	disk := make(map[string]fileSig, len(des))
	for _, de := range des {
		id, ok := entryID(de.Name())
		if !ok {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		disk[id] = sigOf(fi)
	}
	p.dirSig, p.dirSafe, p.lastFull = ds, now.Sub(dfi.ModTime()) > dirMtimeSlack, now

	var changed []string
	if !baseline {
		for id, sg := range disk {
			if old, ok := p.seen[id]; !ok || !old.same(sg) {
				changed = append(changed, id)
			}
		}
		for id := range p.seen {
			if _, ok := disk[id]; !ok {
				changed = append(changed, id)
			}
		}
	}
	p.seen = disk

	s.mu.Lock()
	dropped := false
	for id, e := range s.entries {
		if sg, ok := disk[id]; !ok || !sg.same(e.fi) {
			delete(s.entries, id)
			dropped = true
		}
	}
	if dropped {
		s.gen++
	}
	s.mu.Unlock()
	sort.Strings(changed)
	return changed
}

// fileSig identifies a version of a file: every write of an entry makes a
// new file (rename), so size, modification time and file identity change.
type fileSig struct {
	size  int64
	mtime int64
	fi    os.FileInfo
}

func sigOf(fi os.FileInfo) fileSig {
	return fileSig{size: fi.Size(), mtime: fi.ModTime().UnixNano(), fi: fi}
}

func (a fileSig) same(b fileSig) bool {
	return a.fi != nil && b.fi != nil && a.size == b.size && a.mtime == b.mtime && os.SameFile(a.fi, b.fi)
}

// writeFile writes data to name in the store's directory atomically and
// durably, and returns the FileInfo of the file written (which another
// process may already have replaced or removed).
func (s *FileStore) writeFile(name string, data []byte) (os.FileInfo, error) {
	tmp, fi, err := s.writeTemp(data)
	if err != nil {
		return nil, fmt.Errorf("mtls: write %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, name)); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("mtls: write %s: %w", name, err)
	}
	storeHook("rename")
	if err := syncStoreDir(s.dir); err != nil {
		return nil, fmt.Errorf("mtls: write %s: %w", name, err)
	}
	storeHook("dirsync")
	return fi, nil
}

// writeTemp writes data to a new temporary file (created with O_EXCL, mode
// 0600), synced and closed, and returns its path and FileInfo.
func (s *FileStore) writeTemp(data []byte) (string, os.FileInfo, error) {
	f, err := os.CreateTemp(s.dir, tmpPrefix+"*")
	if err != nil {
		return "", nil, err
	}
	name := f.Name()
	fail := func(err error) (string, os.FileInfo, error) {
		f.Close()
		os.Remove(name)
		return "", nil, err
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	storeHook("write")
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", nil, err
	}
	storeHook("fsync")
	return name, fi, nil
}

// createExclusive writes data to name atomically, failing with an error
// wrapping fs.ErrExist if name exists: the synced temporary file is
// hard-linked to name, which never replaces a file. Where hard links are
// not supported, name is created with O_EXCL instead.
func (s *FileStore) createExclusive(name string, data []byte) error {
	tmp, _, err := s.writeTemp(data)
	if err != nil {
		return err
	}
	final := filepath.Join(s.dir, name)
	err = os.Link(tmp, final)
	os.Remove(tmp)
	if errors.Is(err, fs.ErrExist) {
		return err
	}
	if err != nil {
		f, err := os.OpenFile(final, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = f.Write(data)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(final)
			return err
		}
	}
	return syncStoreDir(s.dir)
}

func syncStoreDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be synced there; renames are durable
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Entry files.

const (
	entryComment     = "# mtls FileStore entry, format 1: see the documentation of FileStore\n"
	sealedBlockType  = "MTLS SEALED KEY"
	checksumType     = "MTLS CHECKSUM"
	checksumBeginTag = "-----BEGIN " + checksumType + "-----"
	checksumHead     = checksumBeginTag + "\nHash: SHA-256 of every byte before this block\n\n"
	checksumTail     = "\n-----END " + checksumType + "-----\n"
	checksumBlockLen = len(checksumHead) + (sha256.Size+2)/3*4 + len(checksumTail)
)

// encodeEntry returns the file contents of d.
func encodeEntry(d *storeData) []byte {
	var b bytes.Buffer
	b.WriteString(entryComment)
	for _, der := range d.chain {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	if d.leaf == nil {
		pem.Encode(&b, &pem.Block{Type: "PUBLIC KEY", Bytes: d.spki})
	}
	if d.sealed != nil {
		pem.Encode(&b, &pem.Block{Type: sealedBlockType, Headers: map[string]string{
			"Cipher": "AES-256-GCM; nonce, ciphertext of PKCS#8 DER, tag; additional data: the ID",
			"KDF":    "Argon2id, parameters and salt in " + kdfFileName,
		}, Bytes: d.sealed})
	}
	b.Write(checksumBlock(sha256.Sum256(b.Bytes())))
	return b.Bytes()
}

func corruptEntry(id, why string) error {
	return fmt.Errorf("%w: %s: the store file is corrupt (%s)", ErrNotFound, id, why)
}

// checkEntry checks the checksum of the file contents of the entry named
// id, and returns what it covers.
func checkEntry(id string, data []byte) (body []byte, err error) {
	data = bytes.TrimRight(data, " \t\r\n") // the block's final newline too
	i := len(data) - (checksumBlockLen - 1) // the block ends the file
	if i < 0 || !bytes.HasPrefix(data[i:], []byte(checksumBeginTag)) {
		return nil, corruptEntry(id, "no checksum")
	}
	body = data[:i]
	if want := checksumBlock(sha256.Sum256(body)); !bytes.Equal(data[i:], want[:len(want)-1]) {
		return nil, corruptEntry(id, "checksum mismatch")
	}
	return body, nil
}

// checksumBlock returns the PEM block that ends an entry file whose body has
// the given SHA-256, as pem.Encode would write it.
func checksumBlock(sum [sha256.Size]byte) []byte {
	b := make([]byte, 0, checksumBlockLen)
	b = append(b, checksumHead...)
	b = base64.StdEncoding.AppendEncode(b, sum[:])
	return append(b, checksumTail...)
}

// parseEntryBody parses the checked body of the entry named id.
func parseEntryBody(id string, body []byte) (*storeData, error) {
	var certs [][]byte
	var pub, sealed []byte
	blocks := 0
	for rest := body; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		blocks++
		switch {
		case b.Type == "CERTIFICATE" && len(certs) < maxChainLen:
			certs = append(certs, b.Bytes)
		case b.Type == "PUBLIC KEY" && pub == nil:
			pub = b.Bytes
		case b.Type == sealedBlockType && sealed == nil:
			sealed = b.Bytes
		default:
			return nil, corruptEntry(id, "unexpected block "+truncateForError(b.Type, 40))
		}
	}
	if blocks != bytes.Count(body, []byte("-----BEGIN")) {
		return nil, corruptEntry(id, "malformed block")
	}
	var p *parsedPEM
	switch {
	case pub != nil && len(certs) == 0 && sealed == nil:
		var err error
		if p, err = parsePublicKeyBlock(pub); err != nil {
			return nil, corruptEntry(id, err.Error())
		}
	case pub == nil && len(certs) > 0:
		leaf, err := parseChain(certs)
		if err != nil {
			return nil, corruptEntry(id, err.Error())
		}
		p = &parsedPEM{chain: certs, leaf: leaf, pub: leaf.PublicKey, spki: leaf.RawSubjectPublicKeyInfo, id: Fingerprint(leaf.Raw)}
	default:
		return nil, corruptEntry(id, "no certificate or public key")
	}
	if p.id != id {
		return nil, corruptEntry(id, "content does not match the file name")
	}
	return newStored(p, p.chain, sealed), nil
}

// Key derivation parameters: kdf.json.

type kdfFile struct {
	Format int    `json:"format"` // 1
	KDF    string `json:"kdf"`    // "argon2id"
	kdfParams
	KeyLen int    `json:"key_len"` // 32
	Cipher string `json:"cipher"`  // "AES-256-GCM"
	Salt   []byte `json:"salt"`    // 16 random bytes
	Check  []byte `json:"check"`   // sealed kdfCheck, additional data kdfFileName
}

var kdfCheck = []byte("mtls: the store secret is right")

// loadKeys derives the store's AEAD from kdf.json, creating the file when
// create is set and it does not exist.
func (s *FileStore) loadKeys(secret []byte, create bool) (cipher.AEAD, bool, error) {
	path := filepath.Join(s.dir, kdfFileName)
	for range 2 {
		data, err := os.ReadFile(path)
		if err == nil {
			return openKDF(data, secret)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, false, fmt.Errorf("mtls: read %s: %w", kdfFileName, err)
		}
		if !create {
			return nil, false, fmt.Errorf("%w: %s has no %s, from which keys are derived", ErrDecrypt, s.dir, kdfFileName)
		}
		kf := kdfFile{Format: 1, KDF: "argon2id", kdfParams: argon2Params, KeyLen: kdfKeyLen, Cipher: "AES-256-GCM", Salt: make([]byte, kdfSaltLen)}
		if _, err := rand.Read(kf.Salt); err != nil {
			return nil, false, err
		}
		aead, err := deriveAEAD(secret, kf.Salt, kf.kdfParams)
		if err != nil {
			return nil, false, err
		}
		nonce := make([]byte, gcmNonce, gcmNonce+len(kdfCheck)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, false, err
		}
		kf.Check = aead.Seal(nonce, nonce, kdfCheck, []byte(kdfFileName))
		out, err := json.MarshalIndent(kf, "", "  ")
		if err != nil {
			return nil, false, err
		}
		err = s.createExclusive(kdfFileName, append(out, '\n'))
		if err == nil {
			return aead, false, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, false, fmt.Errorf("mtls: create %s: %w", kdfFileName, err)
		}
		// Another process created it first: use theirs.
	}
	return nil, false, fmt.Errorf("mtls: cannot read or create %s", kdfFileName)
}

// openKDF derives the AEAD from a kdf.json and checks the secret against
// it; a wrong secret is reported with wrong set.
func openKDF(data, secret []byte) (cipher.AEAD, bool, error) {
	var kf kdfFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, false, fmt.Errorf("%w: corrupt %s: %v", ErrDecrypt, kdfFileName, err)
	}
	if kf.Format != 1 || kf.KDF != "argon2id" || kf.KeyLen != kdfKeyLen || kf.Cipher != "AES-256-GCM" ||
		!kf.kdfParams.valid() || len(kf.Salt) < kdfSaltLen || len(kf.Check) < gcmNonce+16 {
		return nil, false, fmt.Errorf("%w: %s has unsupported or invalid parameters", ErrDecrypt, kdfFileName)
	}
	aead, err := deriveAEAD(secret, kf.Salt, kf.kdfParams)
	if err != nil {
		return nil, false, err
	}
	got, err := aead.Open(nil, kf.Check[:gcmNonce], kf.Check[gcmNonce:], []byte(kdfFileName))
	if err != nil || !bytes.Equal(got, kdfCheck) {
		return nil, true, fmt.Errorf("%w: wrong secret for this store", ErrDecrypt)
	}
	return aead, false, nil
}
