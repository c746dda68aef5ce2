//go:build !linux

package doctor

import (
	"errors"
	"os"
)

// ErrNoAttributes is AppendOnly's error where there are no file attributes
// to read: signstar's append-only log needs Linux.
var ErrNoAttributes = errors.New("no append-only attribute on this system")

// AppendOnly reports ErrNoAttributes: only Linux has FS_IOC_GETFLAGS.
func AppendOnly(string) (bool, error) { return false, ErrNoAttributes }

func info(fi os.FileInfo) *fileInfo {
	return &fileInfo{mode: fi.Mode().Perm(), dir: fi.IsDir(), uid: -1, gid: -1}
}
