package client

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFiles puts the files on disk before they are renamed into place: one
// syncfs(2) per directory's file system instead of an fsync per file,
// since a batch is hundreds of small signatures (BENCHMARKS.md).
func syncFiles(_ []string, dirs map[string]bool) error {
	for dir := range dirs {
		d, err := os.Open(dir)
		if err != nil {
			return err
		}
		err = unix.Syncfs(int(d.Fd()))
		d.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
