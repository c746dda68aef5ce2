package sshtest

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// access stands in for signstar: run by sshd as the user with --config
// PATH, it reports what the user may do to the enclave's files.
const access = `#!/bin/sh
d=$(dirname "$(dirname "$2")")
t() { if (eval "$2") >/dev/null 2>&1; then echo "$1 yes"; else echo "$1 no"; fi; }
t read-config 'cat "$d/etc/config.toml"'
t write-config ': >> "$d/etc/config.toml"'
t read-key 'cat "$d/etc/repo.key.asc"'
t write-key ': >> "$d/etc/repo.key.asc"'
t append-log 'echo appended >> "$d/log/audit.jsonl"'
t truncate-log ': > "$d/log/audit.jsonl"'
t create-in-etc ': > "$d/etc/new"'
t create-in-log ': > "$d/log/new"'
t replace-binary ': > "$d/bin/signstar"'
`

// TestEnclaveLayout deploys an enclave for a real sshd user and checks the
// owners and modes from outside, then what the user can do from inside a
// session: read its policy and key, append to the log, and nothing else.
func TestEnclaveLayout(t *testing.T) {
	prog := filepath.Join(t.TempDir(), "access")
	if err := os.WriteFile(prog, []byte(access), 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := NewEnclave("enclave-test", prog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Remove(); err != nil {
			t.Error(err)
		}
		if _, err := os.Lstat(e.Dir); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", e.Dir, err)
		}
	})
	s := New(t, Config{Program: e.Bin, Args: e.Args()})
	profiles := "[[profile]]\nname = \"test\"\nusers = [\"" + s.User + "\"]\n"
	if err := e.Install(s.User, EnclaveOptions{Sandbox: "best-effort", Profiles: profiles}); err != nil {
		t.Fatal(err)
	}
	if e.User != s.User {
		t.Errorf("User %q, want %q", e.User, s.User)
	}
	u, err := user.Lookup(s.User)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, f := range []struct {
		path     string
		uid, gid int
		mode     os.FileMode
	}{
		{e.Dir, 0, 0, os.ModeDir | 0o755},
		{filepath.Dir(e.Bin), 0, 0, os.ModeDir | 0o755},
		{filepath.Dir(e.Config), 0, 0, os.ModeDir | 0o755},
		{filepath.Dir(e.Log), 0, 0, os.ModeDir | 0o755},
		{e.Bin, 0, 0, 0o755},
		{e.Config, 0, gid, 0o640},
		{e.Key, uid, gid, 0o400},
		{e.Pub, 0, 0, 0o644},
		{e.Log, 0, gid, 0o660},
	} {
		fi, err := os.Lstat(f.path)
		if err != nil {
			t.Error(err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != f.mode || int(st.Uid) != f.uid || int(st.Gid) != f.gid {
			t.Errorf("%s: %d:%d %v, want %d:%d %v", f.path, st.Uid, st.Gid, fi.Mode(), f.uid, f.gid, f.mode)
		}
	}
	for path, src := range map[string]string{e.Bin: prog, e.Key: "testdata/keys/ed25519.key", e.Pub: "testdata/keys/ed25519.pub"} {
		if !strings.HasPrefix(src, "/") {
			var err error
			if src, err = RepoFile(src); err != nil {
				t.Fatal(err)
			}
		}
		want, _ := os.ReadFile(src)
		if got, err := os.ReadFile(path); err != nil || string(got) != string(want) || len(want) == 0 {
			t.Errorf("%s is not a copy of %s (%v)", path, src, err)
		}
	}
	cfg, _ := os.ReadFile(e.Config)
	if want := "[audit]\npath = \"" + e.Log + "\"\n\n[sandbox]\nmode = \"best-effort\"\n\n" + profiles; string(cfg) != want {
		t.Errorf("config:\n%s\nwant:\n%s", cfg, want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := s.Run(ctx, nil, "client", nil)
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("ssh: %v, exit %d, stderr %q", err, r.ExitCode, r.Stderr)
	}
	truncate := "yes"
	if e.AppendOnly {
		truncate = "no"
	} else {
		t.Logf("%s: file system has no append-only attribute", e.Log)
	}
	want := "read-config yes\nwrite-config no\nread-key yes\nwrite-key no\nappend-log yes\n" +
		"truncate-log " + truncate + "\ncreate-in-etc no\ncreate-in-log no\nreplace-binary no\n"
	if string(r.Stdout) != want {
		t.Errorf("as %s:\n%s\nwant:\n%s", s.User, r.Stdout, want)
	}
	if log, _ := os.ReadFile(e.Log); e.AppendOnly && string(log) != "appended\n" {
		t.Errorf("log after the session: %q, want the appended line", log)
	}

	// Root too is held to appending while the attribute is set.
	if e.AppendOnly {
		if f, err := os.OpenFile(e.Log, os.O_WRONLY|os.O_TRUNC, 0); err == nil {
			f.Close()
			t.Errorf("root truncated the append-only log")
		}
	}
	// Install fails closed rather than overwrite a deployed file.
	if err := e.Install(s.User, EnclaveOptions{}); err == nil {
		t.Error("a second Install succeeded over the deployed files")
	}
}

func TestNewEnclaveMissingProgram(t *testing.T) {
	e, err := NewEnclave("enclave-test", filepath.Join(t.TempDir(), "missing"))
	if err == nil {
		e.Remove()
		t.Fatal("NewEnclave succeeded without a program")
	}
}
