package mtls

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Reading the files that Maps name and that a FileStore keeps. No file may
// block a request: a path is checked before it is opened, opened without
// blocking (a FIFO without a writer would block an open, and a device a
// read), and checked again on the open file, which may have been replaced
// in between.

// readRegular reads the regular file at path, of at most max bytes, and
// returns it with its version. A missing file is an error wrapping
// fs.ErrNotExist; anything but a regular file, or a larger one, an error
// saying so.
func readRegular(path string, max int64) ([]byte, fileVersion, error) {
	if fi, err := os.Stat(path); err != nil {
		return nil, fileVersion{}, err
	} else if err := checkRegular(fi, max); err != nil {
		return nil, fileVersion{}, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, fileVersion{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileVersion{}, err
	}
	if err := checkRegular(fi, max); err != nil {
		return nil, fileVersion{}, err
	}
	// One buffer of the file's size; a file that grew is read to max+1
	// bytes, so that growth past the limit is seen.
	data := make([]byte, fi.Size())
	n, err := io.ReadFull(f, data)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fileVersion{}, checkError("the file shrank while it was read")
	} else if err != nil {
		return nil, fileVersion{}, err
	}
	if more, _ := f.Read(make([]byte, 1)); more > 0 || int64(n) > max {
		return nil, fileVersion{}, checkError(fmt.Sprintf("the file is larger than %d bytes", max))
	}
	return data, versionOf(fi), nil
}

// checkRegular refuses anything but a regular file of at most max bytes.
func checkRegular(fi fs.FileInfo, max int64) error {
	switch {
	case !fi.Mode().IsRegular():
		return checkError("not a regular file (" + fi.Mode().Type().String() + ")")
	case fi.Size() > max:
		return checkError(fmt.Sprintf("the file is larger than %d bytes", max))
	}
	return nil
}

// checkError is why a file is not one that readRegular reads.
type checkError string

func (e checkError) Error() string { return string(e) }

// isCheckError reports whether err says what is wrong with a file, as
// opposed to a failure to read it.
func isCheckError(err error) bool {
	var ce checkError
	return errors.As(err, &ce)
}

// statVersion returns the version of the file at path.
func statVersion(path string) (fileVersion, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileVersion{}, err
	}
	return versionOf(fi), nil
}
