package doctor

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// fsAppendFL is FS_APPEND_FL of linux/fs.h, which x/sys/unix lacks.
const fsAppendFL = 0x00000020

// ErrNoAttributes is AppendOnly's error for a file system without inode
// flags.
var ErrNoAttributes = errors.New("the file system has no file attributes")

// AppendOnly reads the file's append-only attribute (what lsattr shows as
// "a") with the FS_IOC_GETFLAGS ioctl.
func AppendOnly(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
			return false, ErrNoAttributes
		}
		return false, err
	}
	return flags&fsAppendFL != 0, nil
}

func info(fi os.FileInfo) *fileInfo {
	st := &fileInfo{mode: fi.Mode().Perm(), dir: fi.IsDir(), uid: -1, gid: -1}
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.uid, st.gid = int(s.Uid), int(s.Gid)
	}
	return st
}
