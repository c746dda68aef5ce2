//go:build !linux

package client

import "os"

// syncFiles puts the files on disk before they are renamed into place.
func syncFiles(files []string, _ map[string]bool) error {
	for _, p := range files {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
