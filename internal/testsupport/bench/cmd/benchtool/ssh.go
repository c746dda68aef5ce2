package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/signstar/signstar/internal/testsupport/sshtest"
)

// sshCmd times signing over ssh against `cat > /dev/null` over ssh, through
// one throwaway sshd with the repo's drop-in: its forced command is a small
// dispatcher, so both paths pay the same shell start and the runs can be
// interleaved.
func sshCmd(args []string) error {
	fs := flag.NewFlagSet("ssh", flag.ContinueOnError)
	bin := fs.String("signstar", "", "signstar binary")
	in := fs.String("in", "", "input file")
	runs := fs.Int("runs", 5, "runs per command")
	mode := fs.String("sandbox", "enforce", "sandbox mode of the enclave's config")
	key := fs.String("key", "testdata/keys/ed25519.key", "secret key file")
	pub := fs.String("pub", "testdata/keys/ed25519.pub", "its certificate, for gpgv")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" || *in == "" || *runs < 1 {
		return errors.New("ssh needs -signstar and -in")
	}
	e, s, err := benchEnclave(*bin, *mode, *key, *pub)
	if err != nil {
		return err
	}
	defer e.Remove()
	defer s.Close()

	// One signature checked by gpgv first: timing a failing path is useless.
	sig, err := sshRun(s, *in, "")
	if err != nil {
		return fmt.Errorf("ssh sign: %v", err)
	}
	if err := gpgv(e.Dir, e.Pub, sig.out, *in); err != nil {
		return err
	}
	var signRuns, catRuns []sample
	for i := 0; i < *runs; i++ {
		r, err := sshRun(s, *in, "")
		if err != nil {
			return fmt.Errorf("ssh sign: %v", err)
		}
		signRuns = append(signRuns, r.sample)
		r, err = sshRun(s, *in, "devnull")
		if err != nil {
			return fmt.Errorf("ssh cat: %v", err)
		}
		catRuns = append(catRuns, r.sample)
	}
	for _, c := range []struct {
		name string
		runs []sample
	}{{"ssh-signstar", signRuns}, {"ssh-cat", catRuns}} {
		med, lo, _ := summarize(c.runs)
		fmt.Printf("ssh\t%s\t%d\t%.6f\t%.6f\t0\n", c.name, len(c.runs), med.Seconds(), lo.Seconds())
	}
	return nil
}

// benchEnclave is the throwaway enclave and sshd of the ssh figures.
func benchEnclave(bin, mode, key, pub string) (*sshtest.Enclave, *sshtest.Server, error) {
	e, err := sshtest.NewEnclave("bench", abs(bin))
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*sshtest.Enclave, *sshtest.Server, error) {
		e.Remove()
		return nil, nil, err
	}
	if err := os.Mkdir(filepath.Join(e.Dir, "out"), 0o755); err != nil {
		return fail(err)
	}
	dispatch := filepath.Join(e.Dir, "bin", "dispatch")
	script := fmt.Sprintf("#!/bin/sh\n# benchtool ssh: the forced command\nif [ \"$SSH_ORIGINAL_COMMAND\" = devnull ]; then exec cat > /dev/null; fi\nexec %s --config %s\n", e.Bin, e.Config)
	if err := os.WriteFile(dispatch, []byte(script), 0o755); err != nil {
		return fail(err)
	}
	s, err := sshtest.Start(sshtest.Config{Program: dispatch})
	if err != nil {
		return fail(err)
	}
	profile := fmt.Sprintf("[[profile]]\nname = \"bench\"\nbackend = \"keyfile\"\nkey = %q\nmax_size = \"8GiB\"\nkinds = [\"any\"]\nusers = [%q]\n", e.Key, s.User)
	if err := e.Install(s.User, sshtest.EnclaveOptions{KeyFile: abs(key), PubFile: abs(pub), Sandbox: mode, Profiles: profile}); err != nil {
		s.Close()
		return fail(err)
	}
	return e, s, nil
}

type sshResult struct {
	sample
	out []byte
}

func sshRun(s *sshtest.Server, input, remote string) (*sshResult, error) {
	var words []string
	if remote != "" {
		words = []string{remote}
	}
	return sshRunWords(s, input, words...)
}

// sshRunWords runs the client with input on stdin and the command words;
// any but devnull must answer on stdout.
func sshRunWords(s *sshtest.Server, input string, words ...string) (*sshResult, error) {
	f, err := os.Open(input)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := s.Command(ctx, "client", nil, words...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, &out, &errb
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, bytes.TrimSpace(errb.Bytes()))
	}
	if !(len(words) == 1 && words[0] == "devnull") && out.Len() == 0 {
		return nil, fmt.Errorf("no signature: %s", bytes.TrimSpace(errb.Bytes()))
	}
	return &sshResult{sample{wall: wall}, out.Bytes()}, nil
}

func gpgv(dir, pub string, sig []byte, data string) error {
	home := filepath.Join(dir, "out")
	keyring := filepath.Join(home, "keyring.gpg")
	os.Remove(keyring) // gpg --dearmor does not overwrite
	if out, err := exec.Command("gpg", "--batch", "--homedir", home, "--dearmor", "--output", keyring, pub).CombinedOutput(); err != nil {
		return fmt.Errorf("gpg --dearmor: %v: %s", err, out)
	}
	sigPath := filepath.Join(home, "data.sig")
	if err := os.WriteFile(sigPath, sig, 0o644); err != nil {
		return err
	}
	if out, err := exec.Command("gpgv", "--homedir", home, "--keyring", keyring, sigPath, data).CombinedOutput(); err != nil {
		return fmt.Errorf("gpgv refused the signature made over ssh: %v: %s", err, out)
	}
	return nil
}
