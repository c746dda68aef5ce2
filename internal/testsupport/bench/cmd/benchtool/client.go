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
	"strconv"
	"strings"
	"time"

	"github.com/signstar/signstar/internal/testsupport/sshtest"
)

// clientCmd is signstar-client's figures (issue 17): through the same
// throwaway sshd, `signstar-client sign` of 1 file against the bare
// `ssh ... sign < FILE > FILE.sig`, and of N files against the raw
// `ssh ... sign --tar < TAR` session of the same files (the client adds
// the tar, the --expect pass, the checks against the pinned certificate
// and the atomic writes). Runs are interleaved round by round.
func clientCmd(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	bin := fs.String("signstar", "", "signstar binary")
	client := fs.String("client", "", "signstar-client binary")
	n := fs.Int("members", 200, "files of the batch")
	size := fs.Int("size", 100<<10, "bytes of each file")
	runs := fs.Int("runs", 3, "runs per command")
	mode := fs.String("sandbox", "enforce", "sandbox mode of the enclave's config")
	key := fs.String("key", "testdata/keys/ed25519.key", "secret key file")
	pub := fs.String("pub", "testdata/keys/ed25519.pub", "its certificate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" || *client == "" || *runs < 1 || *n < 2 {
		return errors.New("client needs -signstar and -client")
	}
	e, s, err := benchEnclave(*bin, *mode, *key, *pub)
	if err != nil {
		return err
	}
	defer e.Remove()
	defer s.Close()
	dir := filepath.Join(e.Dir, "out")
	files, tarPath, err := writeMembers(dir, *n, *size)
	if err != nil {
		return err
	}
	cfg, err := clientConfig(s, dir, abs(*pub))
	if err != nil {
		return err
	}
	run := func(files ...string) (sample, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, abs(*client), append([]string{"--config", cfg, "sign"}, files...)...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		start := time.Now()
		err := cmd.Run()
		wall := time.Since(start)
		if err != nil {
			return sample{}, fmt.Errorf("signstar-client sign: %v: %s", err, bytes.TrimSpace(errb.Bytes()))
		}
		return sample{wall: wall}, nil
	}
	// The client checks every signature against the certificate itself;
	// gpgv checks one of each shape once more.
	if _, err := run(files...); err != nil {
		return err
	}
	for _, f := range []string{files[0], files[len(files)-1]} {
		sig, err := os.ReadFile(f + ".sig")
		if err != nil {
			return err
		}
		if err := gpgv(e.Dir, e.Pub, sig, f); err != nil {
			return err
		}
	}
	var one, oneRaw, batch, batchRaw []sample
	for i := 0; i < *runs; i++ {
		r, err := run(files[0])
		if err != nil {
			return err
		}
		one = append(one, r)
		raw, err := sshRunWords(s, files[0], "sign")
		if err != nil {
			return fmt.Errorf("ssh sign: %v", err)
		}
		oneRaw = append(oneRaw, raw.sample)
		if r, err = run(files...); err != nil {
			return err
		}
		batch = append(batch, r)
		if raw, err = sshRunWords(s, tarPath, "sign", "--tar"); err != nil {
			return fmt.Errorf("ssh sign --tar: %v", err)
		}
		batchRaw = append(batchRaw, raw.sample)
	}
	for _, c := range []struct {
		name string
		runs []sample
	}{{"client-1", one}, {"ssh-1", oneRaw}, {"client-n", batch}, {"ssh-tar-n", batchRaw}} {
		med, lo, _ := summarize(c.runs)
		fmt.Printf("client\t%s\t%d\t%.6f\t%.6f\t0\n", c.name, len(c.runs), med.Seconds(), lo.Seconds())
	}
	return nil
}

// clientConfig writes signstar-client's configuration for the bench's sshd,
// with the certificate pinned as `signstar-client pin` would, and without
// the witness (the bench enclave has no checkpoint key).
func clientConfig(s *sshtest.Server, dir, pub string) (string, error) {
	state := filepath.Join(dir, "client-state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return "", err
	}
	cert, err := os.ReadFile(pub)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(state, "certificate.asc"), cert, 0o644); err != nil {
		return "", err
	}
	var opts []string
	for _, o := range s.ClientOptions("client") {
		opts = append(opts, strconv.Quote(o))
	}
	path := filepath.Join(dir, "client.toml")
	text := fmt.Sprintf("host = %q\nuser = %q\nstate_dir = %q\nwitness = false\nssh_options = [%s]\n", s.Host, s.User, state, strings.Join(opts, ", "))
	return path, os.WriteFile(path, []byte(text), 0o644)
}
