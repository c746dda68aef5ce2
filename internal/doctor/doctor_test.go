package doctor

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signstar/signstar/internal/config"
)

func TestAccessBits(t *testing.T) {
	signer := &account{name: "signer", uid: 999, gid: 995, groups: map[int]bool{995: true}}
	for _, tc := range []struct {
		st          fileInfo
		read, write bool
	}{
		{fileInfo{mode: 0o640, uid: 0, gid: 995}, true, false},    // the config
		{fileInfo{mode: 0o660, uid: 0, gid: 995}, true, true},     // the log
		{fileInfo{mode: 0o400, uid: 999, gid: 995}, true, false},  // the key
		{fileInfo{mode: 0o400, uid: 0, gid: 0}, false, false},     // a key root kept
		{fileInfo{mode: 0o604, uid: 0, gid: 0}, true, false},      // others' bits
		{fileInfo{mode: 0o046, uid: 999, gid: 995}, false, false}, // the owner's bits count, not the group's
	} {
		if got := canRead(&tc.st, signer); got != tc.read {
			t.Errorf("canRead(%04o %d:%d) = %v", tc.st.mode, tc.st.uid, tc.st.gid, got)
		}
		if got := canWrite(&tc.st, signer); got != tc.write {
			t.Errorf("canWrite(%04o %d:%d) = %v", tc.st.mode, tc.st.uid, tc.st.gid, got)
		}
	}
}

// TestDirsOncePerDirectory: a bad directory above two checked files is one
// finding, named by the directory.
func TestDirsOncePerDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the directories must be root's")
	}
	dir := t.TempDir()
	sub := filepath.Join(dir, "etc")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sub, 0o777); err != nil {
		t.Fatal(err)
	}
	r := &Report{}
	seen := map[string]bool{}
	dirs(r, filepath.Join(sub, "config.toml"), "the configuration", seen)
	dirs(r, filepath.Join(sub, "repo.key.asc"), "the key", seen)
	var mine []Finding
	for _, f := range r.Findings {
		if strings.HasPrefix(f.Subject, dir) {
			mine = append(mine, f)
		}
	}
	if len(mine) != 1 || mine[0].Subject != sub || !strings.Contains(mine[0].Problem, "0777") {
		t.Errorf("findings %v, want one for %s at 0777", mine, sub)
	}
}

func TestAppendOnlyUnset(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	on, err := AppendOnly(p)
	if err == ErrNoAttributes {
		t.Skip("no file attributes on this file system")
	}
	if err != nil || on {
		t.Errorf("AppendOnly of a fresh file = %v, %v", on, err)
	}
}

func TestForcedConfig(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		checked string
		finding bool
	}{
		{nil, "/etc/signstar/config.toml", false},
		{nil, "/srv/c.toml", true},
		{[]string{"--config", "/srv/c.toml"}, "/srv/c.toml", false},
		{[]string{"'--config=/srv/c.toml'"}, "/srv/c.toml", false},
		{[]string{"--config", "/srv/other.toml", "--profile", "repo"}, "/srv/c.toml", true},
	} {
		r := &Report{}
		checkForcedConfig(r, "sshd", tc.args, tc.checked)
		if got := len(r.Findings) > 0; got != tc.finding {
			t.Errorf("ForceCommand args %q, checked %s: findings %v", tc.args, tc.checked, r.Findings)
		}
	}
}

// TestSyslog: a configured syslog socket that nobody answers on, or that
// is not a socket, is a finding; one a daemon listens on is not.
func TestSyslog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	cfg := &config.Config{Path: "/etc/signstar/config.toml", Audit: config.Audit{Syslog: path, SyslogRequired: true}}
	run := func() []Finding {
		r := &Report{}
		checkSyslog(r, cfg, map[string]bool{})
		var mine []Finding
		for _, f := range r.Findings {
			if f.Subject == path {
				mine = append(mine, f)
			}
		}
		return mine
	}
	if f := run(); len(f) != 1 || !strings.Contains(f[0].Problem, "no syslog daemon answers (cannot connect: no such file or directory): with syslog_required every sign request fails") {
		t.Errorf("no socket: %v", f)
	}
	os.WriteFile(path, nil, 0o644)
	if f := run(); len(f) != 1 || f[0].Problem != "[audit] syslog is not a socket" {
		t.Errorf("a file: %v", f)
	}
	os.Remove(path)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if f := run(); len(f) != 0 {
		t.Errorf("a daemon: %v", f)
	}
	c.Close()
	cfg.Audit.SyslogRequired = false
	if f := run(); len(f) != 1 || !strings.Contains(f[0].Problem, "connection refused): the records stay on this host only") {
		t.Errorf("a daemon gone: %v", f)
	}
}
