package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// The files signstar trusts must be out of the signing user's reach, as
// sshd's StrictModes insists for authorized_keys (OpenSSH's safe_path):
//
//   - the configuration file is a regular file owned by root and not
//     writable by group or others;
//   - every directory above it, above the audit log, and above each key,
//     passphrase and PIN file, on the path as written and on the path with
//     symbolic links resolved, is owned by root and not writable by group
//     or others.
//
// Root, not "root or the running user" as sshd has it: the user signstar
// runs as is the one these checks keep out, since a signer that can rewrite
// its policy or swap its key directory has no policy. (When signstar runs
// as root the two rules are the same.)
//
// One exception, which sshd does not make: a root-owned directory with the
// sticky bit (/tmp, 1777) is accepted above an entry owned by root, because
// the sticky bit stops everyone but root from renaming or deleting that
// entry. Above an entry owned by anyone else it is refused like any other
// group- or world-writable directory.
//
// The key, passphrase and PIN files themselves belong to the signing user
// (it must read them); the backends refuse them when group or others have
// any access. The audit log is root:signer 0660 by design.

// trustedUID owns every trusted file and directory.
const trustedUID = 0

// openConfig opens the configuration without blocking (a FIFO would wait for
// a writer for ever), refuses anything but a regular file, and, when trust
// is set, checks its owner and mode and its directories before a byte is
// read.
func openConfig(path string, trust bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read configuration: " + errText(err)}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, &Error{File: path, Msg: "cannot read configuration: " + errText(err)}
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &Error{File: path, Msg: fmt.Sprintf("the configuration is not a regular file (%s): point --config at the TOML file", kindOf(fi.Mode()))}
	}
	if !trust {
		return f, nil
	}
	if err := checkConfigFile(path, fi); err != nil {
		f.Close()
		return nil, &Error{File: path, Msg: err.Error()}
	}
	if err := checkDirs(path, "the configuration", map[string]bool{}); err != nil {
		f.Close()
		return nil, &Error{File: path, Msg: err.Error()}
	}
	return f, nil
}

// checkConfigFile is the configuration's own owner and mode rule.
func checkConfigFile(path string, fi os.FileInfo) error {
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != trustedUID {
		return fmt.Errorf("the configuration is owned by %s, not root, so the signing user could rewrite its policy: run chown root %s (README: root:signer 0640)", owner(st.Uid), path)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("the configuration has mode %04o, writable by group or others: run chmod go-w %s (README: root:signer 0640)", perm, path)
	}
	return nil
}

// CheckConfigFile applies Load's owner and mode rule for the configuration
// file at path, for signstar doctor; the error says what to run.
func CheckConfigFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return checkConfigFile(path, fi)
}

// CheckDirs applies Load's rule for the directories above path (as written
// and with symbolic links resolved) and returns the first problem, for
// signstar doctor; what names path in the message. seen, shared between
// calls, skips directories already found good.
func CheckDirs(path, what string, seen map[string]bool) error {
	return checkDirs(path, what, seen)
}

// checkPaths checks the directories above the audit log and the key,
// passphrase and PIN files of every profile.
func (c *Config) checkPaths() error {
	seen := map[string]bool{}
	if err := checkDirs(c.Audit.Path, "the audit log", seen); err != nil {
		return &Error{File: c.Path, Key: "audit.path", Msg: err.Error()}
	}
	if k := c.Audit.CheckpointKey; k != "" {
		if err := checkDirs(k, k, seen); err != nil {
			return &Error{File: c.Path, Key: "audit.checkpoint_key", Msg: err.Error()}
		}
	}
	// Whoever can put a socket at this path receives the records, and
	// with syslog_required decides which signatures leave.
	if c.Audit.Syslog != "" {
		if err := checkDirs(c.Audit.Syslog, "the syslog socket", seen); err != nil {
			return &Error{File: c.Path, Key: "audit.syslog", Msg: err.Error()}
		}
	}
	for i := range c.Profiles {
		p := &c.Profiles[i]
		for _, f := range []struct{ key, val string }{
			{"key", p.Key}, {"next_key", p.NextKey}, {"passphrase_file", p.PassphraseFile}, {"piv.pin_file", p.PIV.PINFile},
			{"tpm.auth_file", p.TPM.AuthFile}, {"tpm.key_blob", p.TPM.KeyBlob},
		} {
			if f.val == "" {
				continue
			}
			if err := checkDirs(f.val, f.val, seen); err != nil {
				return &Error{File: c.Path, Key: fmt.Sprintf("profile[%d].%s", i+1, f.key), Msg: err.Error()}
			}
		}
	}
	return nil
}

// checkDirs checks every directory above path, as written and with symbolic
// links resolved. what names path in messages. seen holds the directories
// already found good (with whether the entry below was root's).
func checkDirs(path, what string, seen map[string]bool) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if err := checkChain(abs, what, seen); err != nil {
		return err
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		// The file may not exist yet (an audit log before its first
		// record); resolve its directory instead.
		dir, derr := filepath.EvalSymlinks(filepath.Dir(abs))
		if derr != nil {
			return nil // the caller's open reports the missing directory
		}
		resolved = filepath.Join(dir, filepath.Base(abs))
	}
	if resolved == abs {
		return nil
	}
	return checkChain(resolved, what, seen)
}

// checkChain walks from path up to /.
func checkChain(path, what string, seen map[string]bool) error {
	for child := path; ; {
		dir := filepath.Dir(child)
		if dir == child {
			return nil
		}
		childRoot := false
		if fi, err := os.Lstat(child); err == nil {
			childRoot = fi.Sys().(*syscall.Stat_t).Uid == trustedUID
		}
		key := dir + "\x00" + strconv.FormatBool(childRoot)
		if !seen[key] {
			if err := checkDir(dir, child, childRoot, what); err != nil {
				return err
			}
			seen[key] = true
		}
		child = dir
	}
}

// DirError is a directory above a trusted file that fails the rule; Dir
// lets signstar doctor name each directory once.
type DirError struct {
	Dir string
	Msg string
}

func (e *DirError) Error() string { return e.Msg }

func dirError(dir, format string, args ...any) error {
	return &DirError{Dir: dir, Msg: fmt.Sprintf(format, args...)}
}

func checkDir(dir, child string, childRoot bool, what string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing there to trust; opening the file below fails clearly
	}
	if err != nil {
		return dirError(dir, "cannot check directory %s above %s: %s", dir, what, errText(err))
	}
	if !fi.IsDir() {
		return dirError(dir, "%s above %s is not a directory", dir, what)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != trustedUID {
		return dirError(dir, "directory %s above %s is owned by %s, not root, so the signing user could replace what is in it: run chown root %s (README: root:root 0755)", dir, what, owner(st.Uid), dir)
	}
	perm := fi.Mode().Perm()
	if perm&0o022 == 0 {
		return nil
	}
	if fi.Mode()&os.ModeSticky != 0 && childRoot {
		return nil // only root may rename or delete root's entry in it
	}
	if fi.Mode()&os.ModeSticky != 0 {
		return dirError(dir, "directory %s above %s has mode %s: sticky, but %s is not root's, so its owner may replace it: move it to a root-owned directory of mode 0755, or chown root %s", dir, what, modeText(fi.Mode()), child, child)
	}
	return dirError(dir, "directory %s above %s has mode %s, writable by group or others, so the signing user could replace what is in it: run chmod go-w %s (README: root:root 0755)", dir, what, modeText(fi.Mode()), dir)
}

// modeText is the mode in octal with the sticky, setgid and setuid bits.
func modeText(m os.FileMode) string {
	v := uint32(m.Perm())
	if m&os.ModeSticky != 0 {
		v |= 0o1000
	}
	if m&os.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&os.ModeSetuid != 0 {
		v |= 0o4000
	}
	return fmt.Sprintf("%04o", v)
}

// owner names a uid for messages: "signer (uid 999)".
func owner(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username + " (uid " + id + ")"
	}
	return "uid " + id
}

func kindOf(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "mode " + m.String()
}
