package sshtest

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lockUser takes the exclusive lock that serialises servers for user, in
// this process and in others (go test runs packages in parallel).
func lockUser(name string) (*os.File, error) {
	path := filepath.Join("/run/lock", "signstar-sshtest-"+name+".lock")
	if fi, err := os.Stat("/run/lock"); err != nil || !fi.IsDir() {
		path = filepath.Join(os.TempDir(), "signstar-sshtest-"+name+".lock")
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %v", path, err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %v (another sshtest server for %s is running)", path, err, name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SafeTempDir makes a new directory, root-owned and mode 0755, below a
// parent whose every ancestor is root-owned and not writable by group or
// others. sshd's StrictModes walks up from authorized_keys and refuses
// /tmp (mode 1777); the user must be able to reach the program and its
// files there too.
func SafeTempDir(prefix string) (string, error) {
	for _, parent := range []string{os.Getenv("SIGNSTAR_SSHTEST_DIR"), os.TempDir(), "/run", "/var/lib"} {
		if parent == "" || !secureAncestors(parent) {
			continue
		}
		dir, err := os.MkdirTemp(parent, "signstar-"+prefix+"-")
		if err != nil {
			continue
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			os.Remove(dir)
			return "", err
		}
		return dir, nil
	}
	return "", errors.New("no directory fit for sshd's StrictModes: set SIGNSTAR_SSHTEST_DIR to a root-owned directory not writable by others")
}

func secureAncestors(dir string) bool {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
			return false
		}
		if d == "/" {
			return true
		}
	}
}

// AppendOnly sets the file's append-only attribute (chattr +a): even its
// owner can then only append, never truncate, rewrite, rename or delete.
// It reports false, with no error, when the file system does not support
// the attribute.
func AppendOnly(path string) (bool, error) {
	return setAppend(path, true)
}

func setAppend(path string, on bool) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
			return false, nil
		}
		return false, fmt.Errorf("%s: reading file attributes: %v", path, err)
	}
	want := flags &^ fsAppendFL
	if on {
		want = flags | fsAppendFL
	}
	if want == flags {
		return true, nil
	}
	v := int(want)
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, v); err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
			return false, nil
		}
		return false, fmt.Errorf("%s: setting file attributes: %v", path, err)
	}
	return true, nil
}

// RemoveAll removes dir like os.RemoveAll, first clearing append-only
// attributes that AppendOnly set below it.
func RemoveAll(dir string) error {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			setAppend(p, false)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// passwordLocked reports whether the account's password field in
// /etc/shadow starts with "!".
func passwordLocked(name string) (bool, error) {
	f, err := os.Open("/etc/shadow")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), ":", 3)
		if len(fields) >= 2 && fields[0] == name {
			return strings.HasPrefix(fields[1], "!"), nil
		}
	}
	return false, sc.Err()
}

// loginShell is the account's shell from /etc/passwd.
func loginShell(name string) (string, error) {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) == 7 && fields[0] == name {
			return fields[6], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("user %s not in /etc/passwd", name)
}

// fsAppendFL is FS_APPEND_FL of linux/fs.h, which x/sys/unix lacks.
const fsAppendFL = 0x00000020

// LockUser takes the lock that serialises the servers for user (and
// anything else that changes the account or logs in as it, such as the
// packaging test's own sshd), until unlock is called.
func LockUser(name string) (unlock func(), err error) {
	f, err := lockUser(name)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}
