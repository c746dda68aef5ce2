package sshtest

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/signstar/signstar/internal/audit"
)

// Enclave is signstar laid out in a throwaway directory with the owners and
// modes the README deploys (section "Files, owners and modes"), for the
// end-to-end tests, `make demo` and the ssh benchmark:
//
//	Dir/                     root:root   0755
//	Dir/bin/signstar         root:root   0755
//	Dir/etc/config.toml      root:USER   0640
//	Dir/etc/repo.key.asc     USER:USER   0400
//	Dir/etc/repo.pub.asc     root:root   0644
//	Dir/log/audit.jsonl      root:USER   0660, append-only where supported
//	Dir/log/audit.jsonl.idx  root:USER   0660, likewise (signstar audit rebuild)
//	Dir/log/audit.jsonl.tree root:USER   0660, likewise
//
// It takes two steps because sshd and the user come in between:
// NewEnclave lays out the directories and the binary (Start needs the
// program's path), then Install, once Start created the user, writes the
// key, the configuration and the audit log for that user.
type Enclave struct {
	Dir    string
	Bin    string
	Config string
	Key    string
	Pub    string
	Log    string
	// User and AppendOnly are set by Install; AppendOnly is false when
	// the file system has no append-only attribute.
	User       string
	AppendOnly bool
}

// EnclaveOptions is what differs between enclaves.
type EnclaveOptions struct {
	// KeyFile and PubFile are the OpenPGP secret key and its certificate
	// to deploy; the repo's testdata/keys/ed25519.key and .pub when "".
	KeyFile, PubFile string
	// Sandbox is the [sandbox] mode; "enforce" when "".
	Sandbox string
	// Audit are further lines of the [audit] table (after its path).
	Audit string
	// Profiles is the configuration after the [audit] and [sandbox]
	// tables: the [[profile]] tables, which may name Key and User.
	Profiles string
}

// NewEnclave makes the enclave's directories below a SafeTempDir and copies
// the signstar binary at program into it. Remove undoes it.
func NewEnclave(prefix, program string) (e *Enclave, err error) {
	dir, err := SafeTempDir(prefix)
	if err != nil {
		return nil, err
	}
	e = &Enclave{
		Dir:    dir,
		Bin:    filepath.Join(dir, "bin", "signstar"),
		Config: filepath.Join(dir, "etc", "config.toml"),
		Key:    filepath.Join(dir, "etc", "repo.key.asc"),
		Pub:    filepath.Join(dir, "etc", "repo.pub.asc"),
		Log:    filepath.Join(dir, "log", "audit.jsonl"),
	}
	defer func() {
		if err != nil {
			e.Remove()
			e = nil
		}
	}()
	for _, d := range []string{"bin", "etc", "log"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return e, err
		}
		// Past the umask: the user must reach the files below.
		if err := os.Chmod(filepath.Join(dir, d), 0o755); err != nil {
			return e, err
		}
	}
	data, err := os.ReadFile(program)
	if err != nil {
		return e, err
	}
	return e, writeNew(e.Bin, data, 0o755, 0, 0)
}

// Args are the program arguments that make signstar read the enclave's
// configuration: sshtest.Config.Args.
func (e *Enclave) Args() []string { return []string{"--config", e.Config} }

// Install deploys the key, its certificate, the configuration and an empty
// audit log for the Unix user name, then makes the log append-only.
func (e *Enclave) Install(name string, o EnclaveOptions) error {
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return fmt.Errorf("user %s: uid %q: %v", name, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("user %s: gid %q: %v", name, u.Gid, err)
	}
	if o.KeyFile == "" {
		if o.KeyFile, err = RepoFile("testdata/keys/ed25519.key"); err != nil {
			return err
		}
	}
	if o.PubFile == "" {
		if o.PubFile, err = RepoFile("testdata/keys/ed25519.pub"); err != nil {
			return err
		}
	}
	if o.Sandbox == "" {
		o.Sandbox = "enforce"
	}
	e.User = name

	// The secret key: the user's own and read-only, in a root-owned
	// directory (signstar refuses a key open to group or others).
	key, err := os.ReadFile(o.KeyFile)
	if err != nil {
		return err
	}
	if err := writeNew(e.Key, key, 0o400, uid, gid); err != nil {
		return err
	}
	pub, err := os.ReadFile(o.PubFile)
	if err != nil {
		return err
	}
	if err := writeNew(e.Pub, pub, 0o644, 0, 0); err != nil {
		return err
	}
	// The policy: readable by the user, not writable.
	cfg := fmt.Sprintf("[audit]\npath = %q\n%s\n[sandbox]\nmode = %q\n\n%s", e.Log, o.Audit, o.Sandbox, o.Profiles)
	if err := writeNew(e.Config, []byte(cfg), 0o640, 0, gid); err != nil {
		return err
	}
	// The log: created by root, writable by the user's group, append-only
	// where the file system allows it.
	if err := writeNew(e.Log, nil, 0o660, 0, gid); err != nil {
		return err
	}
	// Its index, as `signstar audit rebuild` makes it: with the log's
	// owner and mode.
	if _, err := audit.Rebuild(e.Log, 10*time.Second); err != nil {
		return err
	}
	if e.AppendOnly, err = AppendOnly(e.Log); err != nil || !e.AppendOnly {
		return err
	}
	if _, err = AppendOnly(audit.IndexPath(e.Log)); err != nil {
		return err
	}
	_, err = AppendOnly(audit.TreePath(e.Log))
	return err
}

// Remove deletes the enclave, append-only log included.
func (e *Enclave) Remove() error { return RemoveAll(e.Dir) }

// writeNew creates path, which must not exist, with data, mode (past the
// umask) and owner uid:gid.
func writeNew(path string, data []byte, mode os.FileMode, uid, gid int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	err = errors.Join(err, f.Chown(uid, gid), f.Chmod(mode), f.Close())
	if err != nil {
		os.Remove(path)
	}
	return err
}
