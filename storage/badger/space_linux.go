//go:build linux

package badger

import (
	"errors"
	"path/filepath"
	"syscall"
)

// statDisk asks the kernel about the filesystem of a store's directory.
type statDisk struct{ dir string }

// newDisk returns the disk of dir for the space guard.
func newDisk(dir string) disk { return statDisk{dir: dir} }

func (d statDisk) available() (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.dir, &st); err != nil {
		return 0, err
	}
	unit := int64(st.Frsize)
	if unit == 0 {
		unit = int64(st.Bsize)
	}
	return int64(st.Bavail) * unit, nil
}

func (d statDisk) unallocated(name string) (int64, error) {
	var st syscall.Stat_t
	err := syscall.Stat(filepath.Join(d.dir, name), &st)
	if errors.Is(err, syscall.ENOENT) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return max(0, int64(st.Size)-int64(st.Blocks)*512), nil // st_blocks counts 512-byte units
}
