//go:build !unix

package mtls

import "io/fs"

// openNonblock: other systems have no FIFOs to open by path.
const openNonblock = 0

// fileID: elsewhere a file's version is its size and modification time.
func fileID(fs.FileInfo) (dev, ino uint64) { return 0, 0 }
