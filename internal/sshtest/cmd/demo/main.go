// Command demo is `make demo`: it lays out a throwaway enclave (signstar,
// key, config, append-only audit log), starts a real sshd with the repo's
// drop-in, signs the given files through ssh as the signer user, verifies
// the signatures with gpgv, prints the audit records and cleans up.
//
//	go run ./internal/sshtest/cmd/demo -signstar PATH FILE...
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/signstar/signstar/internal/sshtest"
)

func main() {
	bin := flag.String("signstar", "", "the signstar binary to deploy")
	flag.Parse()
	if err := run(*bin, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func step(f string, a ...any) { fmt.Printf("==> "+f+"\n", a...) }

func run(bin string, files []string) error {
	if bin == "" || len(files) == 0 {
		return fmt.Errorf("usage: demo -signstar PATH FILE [FILE]")
	}
	dir, err := sshtest.SafeTempDir("demo")
	if err != nil {
		return err
	}
	defer sshtest.RemoveAll(dir)
	for _, d := range []string{"bin", "etc", "log", "out"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	prog := filepath.Join(dir, "bin", "signstar")
	if err := copyFile(bin, prog, 0o755); err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "etc", "config.toml")
	step("starting a throwaway sshd on 127.0.0.1 (ForceCommand %s --config %s)", prog, cfgPath)
	s, err := sshtest.Start(sshtest.Config{Program: prog, Args: []string{"--config", cfgPath}})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Printf("    port %d, user %s, client key %s\n", s.Port, s.User, s.Key("client").Fingerprint)

	u, err := user.Lookup(s.User)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	keySrc, err := sshtest.RepoFile("testdata/keys/ed25519.key")
	if err != nil {
		return err
	}
	pubSrc, _ := sshtest.RepoFile("testdata/keys/ed25519.pub")
	key := filepath.Join(dir, "etc", "repo.key.asc")
	logPath := filepath.Join(dir, "log", "audit.jsonl")
	if err := copyFile(keySrc, key, 0o400); err != nil {
		return err
	}
	if err := os.Chown(key, uid, gid); err != nil {
		return err
	}
	cfg := fmt.Sprintf("[audit]\npath = %q\n\n[sandbox]\nmode = \"enforce\"\n\n[[profile]]\nname = \"repo\"\nbackend = \"keyfile\"\nkey = %q\nkinds = [\"pacman-db\", \"pacman-package\"]\nusers = [%q]\n", logPath, key, s.User)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(logPath, nil, 0o660); err != nil {
		return err
	}
	os.Chmod(logPath, 0o660)
	if err := os.Chown(logPath, 0, gid); err != nil {
		return err
	}
	if ok, _ := sshtest.AppendOnly(logPath); ok {
		fmt.Println("    audit log is append-only (chattr +a)")
	}
	keyring := filepath.Join(dir, "out", "keyring.gpg")
	if out, err := exec.Command("gpg", "--batch", "--homedir", filepath.Join(dir, "out"), "--dearmor", "--output", keyring, pubSrc).CombinedOutput(); err != nil {
		return fmt.Errorf("gpg --dearmor: %v: %s", err, out)
	}

	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		step("ssh signer@127.0.0.1 < %s > %s.sig", filepath.Base(f), filepath.Base(f))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		r, err := s.Run(ctx, bytes.NewReader(data), "client", nil)
		cancel()
		if err != nil || r.ExitCode != 0 {
			return fmt.Errorf("ssh: %v, exit %d: %s", err, r.ExitCode, r.Stderr)
		}
		sig := filepath.Join(dir, "out", filepath.Base(f)+".sig")
		if err := os.WriteFile(sig, r.Stdout, 0o644); err != nil {
			return err
		}
		step("gpgv %s.sig %s", filepath.Base(f), filepath.Base(f))
		out, err := exec.Command("gpgv", "--homedir", filepath.Join(dir, "out"), "--keyring", keyring, sig, f).CombinedOutput()
		os.Stdout.Write(out)
		if err != nil {
			return fmt.Errorf("gpgv: %v", err)
		}
	}
	if err := pacmanCheck(dir, pubSrc, files); err != nil {
		return err
	}
	step("what the client may not do: ssh signer@127.0.0.1 cat /etc/passwd")
	r, _ := s.Run(context.Background(), nil, "client", nil, "cat", "/etc/passwd")
	fmt.Printf("    exit %d: %s", r.ExitCode, r.Stderr)

	step("audit log %s", logPath)
	log, _ := os.ReadFile(logPath)
	os.Stdout.Write(log)
	step("signstar audit verify")
	out, err := exec.Command(prog, "--config", cfgPath, "audit", "verify").CombinedOutput()
	os.Stdout.Write(out)
	if err != nil {
		return fmt.Errorf("audit verify: %v", err)
	}
	step("cleaning up")
	return nil
}

func copyFile(from, to string, mode os.FileMode) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		return err
	}
	return os.Chmod(to, mode)
}

// pacmanCheck hands the signed database and package to pacman, as a mirror
// would: a repository on file://, a keyring that trusts only the signing
// key, SigLevel = Required TrustedOnly, then sync and install into a
// throwaway root.
func pacmanCheck(dir, pub string, files []string) error {
	var db, pkg string
	for _, f := range files {
		switch {
		case strings.Contains(filepath.Base(f), ".db.tar."):
			db = f
		case strings.Contains(filepath.Base(f), ".pkg.tar."):
			pkg = f
		}
	}
	if db == "" || pkg == "" {
		return nil
	}
	if _, err := exec.LookPath("pacman"); err != nil {
		return fmt.Errorf("pacman not found: apt-get install pacman-package-manager")
	}
	repo := filepath.Join(dir, "repo")
	root := filepath.Join(dir, "root")
	for _, d := range []string{repo, filepath.Join(root, "var/lib/pacman"), filepath.Join(dir, "pacman-db"), filepath.Join(dir, "cache")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	name := strings.SplitN(filepath.Base(db), ".db.tar.", 2)[0]
	sigs := filepath.Join(dir, "out")
	copies := [][2]string{
		{db, filepath.Join(repo, filepath.Base(db))},
		{db, filepath.Join(repo, name+".db")},
		{filepath.Join(sigs, filepath.Base(db)+".sig"), filepath.Join(repo, name+".db.sig")},
		{pkg, filepath.Join(repo, filepath.Base(pkg))},
		{filepath.Join(sigs, filepath.Base(pkg)+".sig"), filepath.Join(repo, filepath.Base(pkg)+".sig")},
	}
	for _, c := range copies {
		if err := copyFile(c[0], c[1], 0o644); err != nil {
			return err
		}
	}
	conf := filepath.Join(dir, "pacman.conf")
	gpgdir := filepath.Join(dir, "pacman-gnupg")
	text := fmt.Sprintf("[options]\nRootDir = %s\nDBPath = %s\nCacheDir = %s\nLogFile = %s\nGPGDir = %s\nHookDir = %s\nArchitecture = auto\nSigLevel = Required TrustedOnly\n\n[%s]\nServer = file://%s\n",
		root, filepath.Join(dir, "pacman-db"), filepath.Join(dir, "cache"), filepath.Join(dir, "pacman.log"), gpgdir, filepath.Join(dir, "hooks"), name, repo)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return err
	}
	fpr, err := fingerprint(pub)
	if err != nil {
		return err
	}
	step("pacman: a keyring that trusts only %s, SigLevel = Required TrustedOnly", fpr)
	for _, args := range [][]string{
		{"pacman-key", "--config", conf, "--gpgdir", gpgdir, "--init"},
		{"pacman-key", "--config", conf, "--gpgdir", gpgdir, "--add", pub},
		{"pacman-key", "--config", conf, "--gpgdir", gpgdir, "--lsign-key", fpr},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	pkgname := strings.SplitN(filepath.Base(pkg), "-", 2)[0]
	step("pacman -Sy %s (database and package signatures checked)", pkgname)
	cmd := exec.Command("pacman", "--config", conf, "--noconfirm", "--noprogressbar", "-Sy", pkgname)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pacman -Sy: %v", err)
	}
	out, err := exec.Command("pacman", "--config", conf, "-Qi", pkgname).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pacman -Qi: %v: %s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Name") || strings.HasPrefix(l, "Version") || strings.HasPrefix(l, "Validated By") {
			fmt.Println("    " + l)
		}
	}
	step("pacman refuses the database once a byte changes")
	f, err := os.OpenFile(filepath.Join(repo, name+".db"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	f.Write([]byte{0})
	f.Close()
	out, err = exec.Command("pacman", "--config", conf, "--noconfirm", "--noprogressbar", "-Syy").CombinedOutput()
	if err == nil {
		return fmt.Errorf("pacman accepted a tampered database:\n%s", out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "error:") {
			fmt.Println("    " + l)
		}
	}
	return nil
}

// fingerprint reads the primary key fingerprint of an armored certificate.
func fingerprint(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	el, err := openpgp.ReadArmoredKeyRing(f)
	if err != nil || len(el) != 1 {
		return "", fmt.Errorf("%s: not one certificate", path)
	}
	return fmt.Sprintf("%X", el[0].PrimaryKey.Fingerprint), nil
}
