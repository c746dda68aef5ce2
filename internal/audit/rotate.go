package audit

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Rotation starts a new log file whose first record chains to the old
// file's last: seq, prev and the tree continue. The old file and its side
// files are renamed to PATH.FIRST-LAST (.idx, .tree); the new log is empty,
// its index a copy of the old one (entries keep counting by seq) and its
// tree file a copy of the old one's hashes, under a header that names the
// last record before it (its seq and line hash), which is where a new
// record chains from and where audit verify of the new file alone starts.
//
// No record may be lost or land in the old file: every Log (Open) holds a
// shared flock on the log's directory from before it opens the log until
// it is closed, and Rotate takes it exclusively, so it runs only when no
// request has the log open, and a request that starts meanwhile waits
// before opening anything (it has read nothing yet). So that a stream of
// requests cannot keep a rotation out, Rotate first makes PATH.rotating,
// and a new request waits while it is there.

// RotatingPath is the marker a rotation holds.
func RotatingPath(path string) string { return path + ".rotating" }

// enterGate waits out a rotation and takes the shared gate.
func enterGate(path string, timeout time.Duration) (*os.File, error) {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Lstat(RotatingPath(path)); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("audit log %s is being rotated (%s exists) for more than %v: wait, or remove it if no signstar audit rotate runs", path, RotatingPath(path), timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	d, err := os.OpenFile(filepath.Dir(path), os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open the audit log's directory %s: %v", filepath.Dir(path), unwrapPath(err))
	}
	for {
		err := unix.Flock(int(d.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		if err == nil {
			return d, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			d.Close()
			return nil, fmt.Errorf("cannot lock the audit log's directory %s: %v", filepath.Dir(path), err)
		}
		if time.Now().After(deadline) {
			d.Close()
			return nil, fmt.Errorf("audit log %s stayed locked by a rotation for %v", path, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// RotateResult says what Rotate did.
type RotateResult struct {
	Archive     string // the old file's new name
	First, Last uint64 // its records
}

// Rotate rotates the log at path (see above), waiting at most timeout for
// the requests that have it open. It needs root when the files are
// append-only: their attribute is cleared for the renames and set again on
// the old and the new files.
func Rotate(path string, timeout time.Duration) (RotateResult, error) {
	var res RotateResult
	marker := RotatingPath(path)
	mf, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return res, fmt.Errorf("%s exists: another rotation runs, or one was interrupted (then remove it)", marker)
		}
		return res, fmt.Errorf("cannot create %s: %v", marker, unwrapPath(err))
	}
	mf.Close()
	defer os.Remove(marker)
	d, err := os.OpenFile(filepath.Dir(path), os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return res, fmt.Errorf("cannot open the audit log's directory: %v", unwrapPath(err))
	}
	defer d.Close()
	if err := flockWait(d, path, timeout); err != nil {
		return res, fmt.Errorf("%v (requests still have the log open: try again)", err)
	}
	l, err := open(path)
	if err != nil {
		return res, err
	}
	defer l.Close()
	tx, err := l.Lock()
	if err != nil {
		return res, err
	}
	defer tx.Unlock()
	if tx.size == 0 {
		return res, fmt.Errorf("audit log %s has no records since it was started: nothing to rotate", path)
	}
	res.First, res.Last = tx.tree.header.Base+1, tx.lastSeq
	res.Archive = fmt.Sprintf("%s.%d-%d", path, res.First, res.Last)
	olds := []string{path, IndexPath(path), TreePath(path)}
	archives := []string{res.Archive, IndexPath(res.Archive), TreePath(res.Archive)}
	for _, a := range archives {
		if _, err := os.Lstat(a); !errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("%s exists already: move it away first", a)
		}
	}
	fi, err := l.r.Stat()
	if err != nil {
		return res, err
	}
	var prev [32]byte
	if _, err := hex.Decode(prev[:], []byte(tx.lastHash)); err != nil {
		return res, fmt.Errorf("audit log %s: the last line's hash: %v", path, err)
	}
	// The new files, beside the old ones.
	news := make([]string, 3)
	defer func() {
		for _, n := range news {
			if n != "" {
				os.Remove(n)
			}
		}
	}()
	fill := []func(w io.Writer) error{
		func(w io.Writer) error { return nil },
		func(w io.Writer) error { _, err := io.Copy(w, io.NewSectionReader(l.ir, 0, 1<<62)); return err },
		func(w io.Writer) error {
			if _, err := w.Write(treeHeader{Base: tx.lastSeq, BasePrev: prev}.marshal()); err != nil {
				return err
			}
			_, err := io.Copy(w, io.NewSectionReader(l.tr, TreeHeaderSize, 1<<62))
			return err
		},
	}
	for i := range news {
		tmp, err := os.CreateTemp(filepath.Dir(path), ".signstar-rotate-*")
		if err != nil {
			return res, fmt.Errorf("cannot write the new log files: %v", unwrapPath(err))
		}
		news[i] = tmp.Name()
		err = fill[i](tmp)
		if err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				err = tmp.Chown(int(st.Uid), int(st.Gid))
			}
		}
		if err == nil {
			err = tmp.Chmod(fi.Mode().Perm())
		}
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return res, fmt.Errorf("cannot write the new log file %s: %v", news[i], unwrapPath(err))
		}
	}
	// Append-only files cannot be renamed: clear, rename, set again.
	wasAppendOnly := appendOnly(path)
	for _, p := range olds {
		if err := setAppendOnly(p, false); err != nil && wasAppendOnly {
			return res, fmt.Errorf("cannot clear the append-only attribute of %s: %v (run signstar audit rotate as root)", p, err)
		}
	}
	for i := range olds {
		if err := os.Rename(olds[i], archives[i]); err != nil {
			return res, fmt.Errorf("cannot rename %s: %v", olds[i], unwrapPath(err))
		}
	}
	for i := range news {
		if err := os.Rename(news[i], olds[i]); err != nil {
			return res, fmt.Errorf("cannot put the new %s in place: %v (the old file is %s)", olds[i], unwrapPath(err), archives[i])
		}
		news[i] = ""
	}
	d.Sync()
	if wasAppendOnly {
		for _, p := range append(olds, archives...) {
			if err := setAppendOnly(p, true); err != nil {
				return res, fmt.Errorf("rotated, but cannot make %s append-only again: %v (chattr +a it)", p, err)
			}
		}
	}
	return res, nil
}

// fsAppendFL is FS_APPEND_FL of linux/fs.h.
const fsAppendFL = 0x00000020

func appendOnly(p string) bool {
	f, err := os.OpenFile(p, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	return err == nil && flags&fsAppendFL != 0
}

func setAppendOnly(p string, on bool) error {
	f, err := os.OpenFile(p, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	if on {
		flags |= fsAppendFL
	} else {
		flags &^= fsAppendFL
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags))
}
