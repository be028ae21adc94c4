//go:build unix

package mtls

import (
	"io/fs"
	"syscall"
)

// openNonblock is added to the flags of files opened for reading: opening a
// FIFO without a writer then returns at once instead of blocking.
const openNonblock = syscall.O_NONBLOCK

func fileID(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino)
	}
	return 0, 0
}
