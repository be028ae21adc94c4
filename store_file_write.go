package mtls

import (
	"crypto/cipher"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/mtlsgo/mtls/internal/certkit"
)

// The FileStore's writes (semantics §5: files written atomically, a
// half-written file never taken for a certificate): a temporary file,
// synced, renamed into place, and the directory synced; and kdf.json,
// created once with a hard link that never replaces a file.

// writeFile writes data to name in the store's directory atomically and
// durably, and returns the FileInfo of the file written (which another
// process may already have replaced or removed).
func (s *FileStore) writeFile(name string, data []byte) (os.FileInfo, error) {
	tmp, fi, err := s.writeTemp(data)
	if err != nil {
		return nil, errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, name)); err != nil {
		os.Remove(tmp)
		return nil, errorf("write %s: %w", name, err)
	}
	storeHook("rename")
	if err := syncDir(s.dir); err != nil {
		return nil, errorf("write %s: %w", name, err)
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
	return syncDir(s.dir)
}

func syncDir(dir string) error {
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

// maxKDFFileSize bounds kdf.json: a few hundred bytes when written here.
const maxKDFFileSize = 64 << 10

// loadKeys derives the store's AEAD from kdf.json, creating the file when
// create is set and it does not exist.
func (s *FileStore) loadKeys(secret []byte, create bool) (cipher.AEAD, error) {
	path := filepath.Join(s.dir, kdfFileName)
	for range 2 {
		data, _, err := readRegular(path, maxKDFFileSize)
		if err == nil {
			return certkit.OpenKDF(data, secret)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, errorf("read %s: %w", kdfFileName, err)
		}
		if !create {
			return nil, errorf("%w: %s has no %s, from which keys are derived", ErrDecrypt, s.dir, kdfFileName)
		}
		record, aead, err := certkit.NewKDF(secret)
		if err != nil {
			return nil, err
		}
		err = s.createExclusive(kdfFileName, record)
		if err == nil {
			return aead, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, errorf("create %s: %w", kdfFileName, err)
		}
		// Another process created it first: use theirs.
	}
	return nil, errorf("cannot read or create %s", kdfFileName)
}
