// Command demo is `make demo`: it lays out a throwaway enclave (signstar,
// key, config, append-only audit log), starts a real sshd with the repo's
// drop-in, signs the given files through ssh as the signer user, verifies
// the signatures with gpgv, prints the audit records and cleans up.
//
//	go run ./internal/testsupport/sshtest/cmd/demo -signstar PATH FILE...
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/signstar/signstar/internal/testsupport/pacmantest"
	"github.com/signstar/signstar/internal/testsupport/sshtest"
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
	e, err := sshtest.NewEnclave("demo", bin)
	if err != nil {
		return err
	}
	defer e.Remove()
	if err := os.Mkdir(filepath.Join(e.Dir, "out"), 0o755); err != nil {
		return err
	}
	step("starting a throwaway sshd on 127.0.0.1 (ForceCommand %s --config %s)", e.Bin, e.Config)
	s, err := sshtest.Start(sshtest.Config{Program: e.Bin, Args: e.Args()})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Printf("    port %d, user %s, client key %s\n", s.Port, s.User, s.Key("client").Fingerprint)

	profile := fmt.Sprintf("[[profile]]\nname = \"repo\"\nbackend = \"keyfile\"\nkey = %q\nkinds = [\"pacman-db\", \"pacman-package\"]\nusers = [%q]\n", e.Key, s.User)
	if err := e.Install(s.User, sshtest.EnclaveOptions{Sandbox: "enforce", Profiles: profile}); err != nil {
		return err
	}
	if e.AppendOnly {
		fmt.Println("    audit log is append-only (chattr +a)")
	}
	keyring := filepath.Join(e.Dir, "out", "keyring.gpg")
	if out, err := exec.Command("gpg", "--batch", "--homedir", filepath.Join(e.Dir, "out"), "--dearmor", "--output", keyring, e.Pub).CombinedOutput(); err != nil {
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
		sig := filepath.Join(e.Dir, "out", filepath.Base(f)+".sig")
		if err := os.WriteFile(sig, r.Stdout, 0o644); err != nil {
			return err
		}
		step("gpgv %s.sig %s", filepath.Base(f), filepath.Base(f))
		out, err := exec.Command("gpgv", "--homedir", filepath.Join(e.Dir, "out"), "--keyring", keyring, sig, f).CombinedOutput()
		os.Stdout.Write(out)
		if err != nil {
			return fmt.Errorf("gpgv: %v", err)
		}
	}
	if err := pacmanCheck(e.Dir, e.Pub, files); err != nil {
		return err
	}
	step("what the client may not do: ssh signer@127.0.0.1 cat /etc/passwd")
	r, _ := s.Run(context.Background(), nil, "client", nil, "cat", "/etc/passwd")
	fmt.Printf("    exit %d: %s", r.ExitCode, r.Stderr)

	step("audit log %s", e.Log)
	log, _ := os.ReadFile(e.Log)
	os.Stdout.Write(log)
	step("signstar audit verify")
	out, err := exec.Command(e.Bin, "--config", e.Config, "audit", "verify").CombinedOutput()
	os.Stdout.Write(out)
	if err != nil {
		return fmt.Errorf("audit verify: %v", err)
	}
	step("cleaning up")
	return nil
}

// pacmanCheck hands the signed database and package to pacman, as a mirror
// would: a repository on file://, a keyring that trusts only the signing
// key, SigLevel = Required TrustedOnly, then sync and install into a
// throwaway root (internal/testsupport/pacmantest, which the backend tests use too).
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
	for _, tool := range pacmantest.Tools {
		if _, err := exec.LookPath(tool[0]); err != nil {
			return fmt.Errorf("%s not found: apt-get install %s", tool[0], tool[1])
		}
	}
	o := pacmantest.Options{
		Repo:     strings.SplitN(filepath.Base(db), ".db.tar.", 2)[0],
		Name:     strings.SplitN(filepath.Base(pkg), "-", 2)[0],
		PkgFile:  filepath.Base(pkg),
		Progress: func(s string) { step("%s", s) },
		Output:   os.Stdout,
	}
	sigs := filepath.Join(dir, "out")
	for _, r := range []struct {
		path string
		dst  *[]byte
	}{
		{pub, nil}, {pkg, &o.Pkg}, {filepath.Join(sigs, filepath.Base(pkg)+".sig"), &o.PkgSig},
		{db, &o.DB}, {filepath.Join(sigs, filepath.Base(db)+".sig"), &o.DBSig},
	} {
		data, err := os.ReadFile(r.path)
		if err != nil {
			return err
		}
		if r.dst == nil {
			o.Certs = append(o.Certs, data)
			continue
		}
		*r.dst = data
	}
	pdir := filepath.Join(dir, "pacman")
	if err := os.Mkdir(pdir, 0o755); err != nil {
		return err
	}
	env, err := pacmantest.Run(pdir, o)
	if err != nil {
		return err
	}
	defer env.Close()
	for _, l := range env.Info {
		fmt.Println("    " + l)
	}
	line, err := env.RefuseTamperedDB()
	if err != nil {
		return err
	}
	fmt.Println("    " + line)
	line, err = env.RefuseTamperedPackage()
	if err != nil {
		return err
	}
	fmt.Println("    " + line)
	return nil
}
