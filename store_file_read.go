package mtls

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/mtlsgo/mtls/internal/certkit"
)

// The FileStore's reads (semantics §5, §6): an entry is served from cache
// while it is fresh, read again when its file changed, and never cached
// after a change that happened while it was read (the store's generation).
// No file blocks a read: see readRegular.

// Get implements [CertStore.Get]. An entry already decrypted and fresh
// (see [FileStorePollInterval]) is returned without I/O or allocation.
func (s *FileStore) Get(ctx context.Context, id string) (*Certificate, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	id, err := plainID(id)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	e, gen := s.entries[id], s.gen
	s.mu.RUnlock()
	if e != nil && s.fresh(e) {
		if c := e.cert.Load(); c != nil {
			return c, nil
		}
	}
	e, err = s.load(id, e, gen)
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
	id, err := plainID(id)
	if err != nil {
		return Metadata{}, err
	}
	s.mu.RLock()
	e, gen := s.entries[id], s.gen
	s.mu.RUnlock()
	e, err = s.load(id, e, gen)
	if err != nil {
		return Metadata{}, err
	}
	d, err := e.decode(id)
	if err != nil {
		return Metadata{}, err
	}
	return cloneMetadata(metadataOf(d, d.Sealed != nil)), nil
}

// fresh reports whether e can be trusted without looking at its file:
// while a poller watches the directory, or for FileStorePollInterval after
// the last look.
func (s *FileStore) fresh(e *fileEntry) bool {
	return s.polling.Load() || storeMonoNow()-e.checked.Load() < int64(FileStorePollInterval)
}

// load returns the current, valid entry of id, given the cached entry e (or
// nil) seen at generation gen: e itself when it is fresh or its file has
// not changed, else the entry read from the file, cached unless the store
// changed meanwhile.
func (s *FileStore) load(id string, e *fileEntry, gen uint64) (*fileEntry, error) {
	if e != nil {
		if !s.fresh(e) {
			if v, err := statVersion(filepath.Join(s.dir, entryName(id))); err == nil && v == e.version {
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
// corrupt one, or anything but a regular file, gives an entry whose err
// wraps it. No file blocks it: see readRegular.
func (s *FileStore) readEntry(id string) (*fileEntry, error) {
	data, v, err := readRegular(filepath.Join(s.dir, entryName(id)), maxEntryFileSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, errIDNotFound(id)
	case err != nil && !isCheckError(err):
		return nil, errorf("read %s: %w", id, err)
	}
	e := &fileEntry{version: v}
	e.checked.Store(storeMonoNow())
	if err != nil {
		e.err = fromKit(fmt.Errorf("%w: %s (%w)", certkit.ErrCorrupt, id, err))
		return e, nil
	}
	body, err := certkit.Check(id, data)
	e.raw, e.err = body, fromKit(err)
	return e, nil
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
		return nil, errorf("list: %w", err)
	}
	ids := make([]string, 0, len(des))
	for _, de := range des {
		id, ok := entryID(de.Name())
		if !ok {
			continue
		}
		if err := ctxErr(ctx); err != nil {
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
	slices.Sort(ids)
	return ids, nil
}
