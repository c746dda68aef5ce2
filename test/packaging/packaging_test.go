//go:build packaging

// Package packaging tests the packages as an operator meets them (make
// test-packaging, not make test: each builds a package): the .deb built by
// make deb, installed with dpkg -i, set up by the README's script, signing
// through the system's sshd configuration, checked by signstar doctor and
// purged; the Arch package built by makepkg as an unprivileged user and
// installed by pacman into a throwaway root.
package packaging

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/testsupport/pacmantest"
	"github.com/signstar/signstar/internal/testsupport/sshtest"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	p, err := sshtest.RepoFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(p)
}

// run runs name in dir and returns its output; a failure fails the test.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// readmeScript is the setup script of README.md's package route: the first
// sh block after "### The package route".
func readmeScript(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, "### The package route")
	if i < 0 {
		t.Fatal("README.md has no package route section")
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	if start < 0 {
		t.Fatal("README.md's package route has no ```sh block")
	}
	s = s[start+len("```sh\n"):]
	end := strings.Index(s, "\n```")
	if end < 0 {
		t.Fatal("README.md's setup block does not end")
	}
	return s[:end+1]
}

// The paths the package and the README's script own on this machine.
var systemPaths = []string{"/usr/bin/signstar", "/usr/bin/signstar-client", "/etc/signstar", "/var/log/signstar", "/etc/ssh/sshd_config.d/signstar.conf"}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// TestDeb builds the .deb, installs it, runs the README's setup script
// against the installed paths, signs a pacman package through sshd running
// the system's configuration (with the drop-in the script installed),
// verifies it, runs signstar doctor, and purges the package.
func TestDeb(t *testing.T) {
	testenv.NeedRoot(t)
	for _, tool := range [][2]string{{"dpkg-buildpackage", "dpkg-dev"}, {"dh", "debhelper"}, {"lintian", "lintian"},
		{"mandoc", "mandoc"}, {"sqv", "sqv"}, {"chattr", "e2fsprogs"}, {"ssh", "openssh-client"}, {"ssh-keygen", "openssh-client"}, {"useradd", "passwd"}} {
		testenv.NeedTool(t, tool[0], tool[1])
	}
	sshd := testenv.NeedTool(t, "/usr/sbin/sshd", "openssh-server")
	pacmantest.NeedTools(t)
	for _, p := range systemPaths {
		if exists(p) {
			t.Fatalf("%s exists already: this test installs the package on this machine and needs it clean (dpkg --purge signstar, and remove it)", p)
		}
	}
	// Nothing else logs in as signer or changes the account meanwhile.
	unlock, err := sshtest.LockUser("signer")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	root := repoRoot(t)
	hadSSHDir := exists("/var/lib/signer/.ssh")
	t.Cleanup(func() {
		exec.Command("dpkg", "--purge", "signstar").Run()
		// The README's script makes the log and its index append-only (and
		// a rotation or rebuild may leave more files): an append-only file
		// cannot be removed, and would leave the next run a dirty machine.
		if logs, _ := filepath.Glob("/var/log/signstar/*"); len(logs) > 0 {
			exec.Command("chattr", append([]string{"-a"}, logs...)...).Run()
		}
		for _, p := range systemPaths {
			if err := os.RemoveAll(p); err != nil {
				t.Errorf("cleanup: %v: the next run will find this machine dirty", err)
			}
		}
		if !hadSSHDir {
			os.RemoveAll("/var/lib/signer/.ssh")
		}
	})

	start := time.Now()
	deb := filepath.Join(root, lastLine(run(t, root, nil, "scripts/deb.sh")))
	t.Logf("make deb: %s in %v", filepath.Base(deb), time.Since(start).Round(time.Second))
	run(t, root, nil, "dpkg", "-i", deb)

	// What the package holds, and that nothing is enabled.
	files := run(t, root, nil, "dpkg", "-L", "signstar")
	for _, want := range []string{"/usr/bin/signstar", "/usr/bin/signstar-client", "/usr/share/man/man1/signstar.1.gz", "/usr/share/man/man1/signstar-client.1.gz", "/usr/share/man/man5/signstar.toml.5.gz",
		"/usr/share/bash-completion/completions/signstar", "/usr/share/zsh/vendor-completions/_signstar",
		"/usr/share/fish/vendor_completions.d/signstar.fish", "/etc/signstar/config.toml",
		"/usr/share/doc/signstar/examples/sshd_config.d/signstar.conf"} {
		if !strings.Contains(files, want+"\n") {
			t.Errorf("the package lacks %s", want)
		}
	}
	if exists("/etc/ssh/sshd_config.d/signstar.conf") {
		t.Error("installing the package enabled the sshd drop-in")
	}
	if conf := run(t, root, nil, "dpkg-query", "-W", "-f=${Conffiles}", "signstar"); !strings.Contains(conf, "/etc/signstar/config.toml") {
		t.Errorf("config.toml is not a conffile: %q", conf)
	}
	// The installed man pages lint clean, cross-references included.
	for _, page := range []string{"/usr/share/man/man1/signstar.1.gz", "/usr/share/man/man5/signstar.toml.5.gz", "/usr/share/man/man1/signstar-client.1.gz"} {
		src := run(t, root, nil, "zcat", page)
		lint := exec.Command("mandoc", "-Tlint")
		lint.Stdin = strings.NewReader(src)
		out, _ := lint.CombinedOutput()
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" && !strings.Contains(l, "outdated mandoc.db") {
				t.Errorf("mandoc -Tlint %s: %s", page, l)
			}
		}
	}
	// bash-completion finds the completion where the package put it.
	if got := run(t, root, nil, "bash", "--norc", "-c", "source /usr/share/bash-completion/bash_completion; _completion_loader signstar; complete -p signstar"); !strings.Contains(got, "_signstar signstar") {
		t.Errorf("bash-completion did not load the completion: %q", got)
	}

	// The README's script, against the installed package. systemctl is a
	// stand-in (no systemd here): this test starts sshd itself below.
	dir := t.TempDir()
	run(t, dir, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "repo-server", "-f", filepath.Join(dir, "client"))
	clientKey, err := os.ReadFile(filepath.Join(dir, "client.pub"))
	if err != nil {
		t.Fatal(err)
	}
	shim := filepath.Join(dir, "shim")
	os.Mkdir(shim, 0o755)
	os.WriteFile(filepath.Join(shim, "systemctl"), []byte("#!/bin/sh\necho \"$*\" >> "+filepath.Join(dir, "systemctl.log")+"\n"), 0o755)
	env := []string{"PATH=" + shim + ":/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8",
		"CLIENT_KEY=" + strings.TrimSpace(string(clientKey)), "CLIENT_ADDR=127.0.0.1"}
	script := filepath.Join(dir, "setup.sh")
	os.WriteFile(script, []byte(readmeScript(t, root)), 0o755)
	setup := run(t, dir, env, "sh", script)
	t.Logf("README setup script:\n%s", setup)
	if !strings.Contains(setup, "ok: ") {
		t.Errorf("the setup script's signstar doctor did not say ok: %s", setup)
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "systemctl.log")); string(log) != "reload ssh\n" {
		t.Errorf("the script ran systemctl %q, want reload ssh", log)
	}

	// sshd with the system's configuration, on a loopback port.
	port := startSSHD(t, sshd)
	ssh := func(stdin []byte, remote ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		args := []string{"-i", filepath.Join(dir, "client"), "-p", fmt.Sprint(port), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "signer@127.0.0.1"}
		cmd := exec.CommandContext(ctx, "ssh", append(args, remote...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("ssh %v: %v: %s", remote, err, stderr.String())
		}
		return stdout.Bytes()
	}
	pkgDir := t.TempDir()
	pkg, err := pacmantest.Build(pkgDir, pacmantest.Hello)
	if err != nil {
		t.Fatal(err)
	}
	sig := ssh(pkg)
	pub := ssh(nil, "pubkey")
	os.WriteFile(filepath.Join(dir, "pkg"), pkg, 0o644)
	os.WriteFile(filepath.Join(dir, "pkg.sig"), sig, 0o644)
	os.WriteFile(filepath.Join(dir, "pub.asc"), pub, 0o644)
	run(t, dir, nil, "sqv", "--keyring", filepath.Join(dir, "pub.asc"), filepath.Join(dir, "pkg.sig"), filepath.Join(dir, "pkg"))
	if got := run(t, dir, nil, "/usr/bin/signstar", "audit", "verify"); !strings.HasPrefix(got, "ok: 1 records") {
		t.Errorf("audit verify: %q", got)
	}
	if got := run(t, dir, nil, "/usr/bin/signstar", "doctor"); !strings.HasPrefix(got, "ok: ") {
		t.Errorf("doctor after signing: %q", got)
	}

	// Purge: the package's files and the conffile go; the key and the
	// audit log (evidence) stay.
	run(t, root, nil, "dpkg", "--purge", "signstar")
	for _, gone := range []string{"/usr/bin/signstar", "/usr/bin/signstar-client", "/etc/signstar/config.toml", "/usr/share/man/man1/signstar.1.gz"} {
		if exists(gone) {
			t.Errorf("%s is still there after dpkg --purge", gone)
		}
	}
	for _, kept := range []string{"/etc/signstar/repo.key.asc", "/var/log/signstar/audit.jsonl"} {
		if !exists(kept) {
			t.Errorf("dpkg --purge removed %s", kept)
		}
	}
}

// startSSHD runs sshd with /etc/ssh/sshd_config on a free loopback port
// (without PAM, which containers refuse) until the test ends.
func startSSHD(t *testing.T, sshd string) int {
	t.Helper()
	os.MkdirAll("/run/sshd", 0o755)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(sshd, "-D", "-e", "-f", "/etc/ssh/sshd_config", "-o", fmt.Sprintf("Port=%d", port),
		"-o", "ListenAddress=127.0.0.1", "-o", "UsePAM=no", "-o", "PidFile=none")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan bool, 1)
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !sent && strings.Contains(sc.Text(), "Server listening on 127.0.0.1") {
				ready <- true
				sent = true
			}
		}
		if !sent {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("sshd exited: %s", log.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("sshd did not start: %s", log.String())
	}
	return port
}

// TestArch builds packaging/arch/PKGBUILD with makepkg as an unprivileged
// user, installs the package with pacman into a throwaway root and runs
// signstar version from there.
func TestArch(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedTool(t, "makepkg", "makepkg")
	testenv.NeedTool(t, "pacman", "pacman-package-manager")
	testenv.NeedTool(t, "fakeroot", "fakeroot")
	testenv.NeedTool(t, "runuser", "util-linux")
	root := repoRoot(t)
	start := time.Now()
	pkg := filepath.Join(root, lastLine(run(t, root, nil, "scripts/arch.sh")))
	t.Logf("makepkg: %s in %v", filepath.Base(pkg), time.Since(start).Round(time.Second))
	if !strings.HasSuffix(pkg, ".pkg.tar.zst") {
		t.Fatalf("makepkg made %s, not a .pkg.tar.zst", pkg)
	}
	dest := t.TempDir()
	db := filepath.Join(dest, "var/lib/pacman")
	os.MkdirAll(db, 0o755)
	conf := filepath.Join(dest, "pacman.conf")
	os.WriteFile(conf, []byte("[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n"), 0o644)
	pacman := func(args ...string) string {
		return run(t, root, nil, "pacman", append([]string{"--root", dest, "--dbpath", db, "--config", conf,
			"--cachedir", filepath.Join(dest, "cache"), "--logfile", filepath.Join(dest, "pacman.log"),
			"--gpgdir", filepath.Join(dest, "gnupg"), "--hookdir", filepath.Join(dest, "hooks")}, args...)...)
	}
	pacman("-U", "--noconfirm", pkg)
	version := run(t, root, nil, filepath.Join(dest, "usr/bin/signstar"), "version")
	pkgver := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(pkg), "signstar-"), "-x86_64.pkg.tar.zst")
	if version != "signstar "+pkgver+"\n" {
		t.Errorf("signstar version from the pacman root: %q, want signstar %s", version, pkgver)
	}
	if got := run(t, root, nil, filepath.Join(dest, "usr/bin/signstar-client"), "version"); got != "signstar-client "+pkgver+"\n" {
		t.Errorf("signstar-client version from the pacman root: %q, want signstar-client %s", got, pkgver)
	}
	list := pacman("-Ql", "signstar")
	for _, want := range []string{"/usr/bin/signstar", "/usr/bin/signstar-client", "/usr/share/man/man1/signstar.1.gz", "/usr/share/man/man1/signstar-client.1.gz", "/usr/share/man/man5/signstar.toml.5.gz",
		"/usr/share/bash-completion/completions/signstar", "/usr/share/zsh/site-functions/_signstar",
		"/usr/share/fish/vendor_completions.d/signstar.fish", "/etc/signstar/config.toml",
		"/usr/share/doc/signstar/examples/sshd_config.d/signstar.conf"} {
		if !strings.Contains(list, dest+want+"\n") && !strings.Contains(list, " "+want+"\n") {
			t.Errorf("the pacman package lacks %s", want)
		}
	}
	if info := pacman("-Qii", "signstar"); !strings.Contains(info, "etc/signstar/config.toml") {
		t.Errorf("config.toml is not a backup file:\n%s", info)
	}
	if exists(filepath.Join(dest, "etc/ssh/sshd_config.d/signstar.conf")) {
		t.Error("the pacman package enabled the sshd drop-in")
	}
}
