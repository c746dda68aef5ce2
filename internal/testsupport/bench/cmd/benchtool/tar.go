package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// tarSSHCmd is the `sign --tar` figures over ssh (issue 16): N members of
// SIZE bytes each (pseudo-random, so of no kind), signed in one `sign --tar`
// session against one `sign` session per member, and the same tar through
// `sign --tar` against `cat > /dev/null`. Runs are interleaved round by
// round; the answer of the first run is checked with gpgv member by member.
func tarSSHCmd(args []string) error {
	fs := flag.NewFlagSet("tarssh", flag.ContinueOnError)
	bin := fs.String("signstar", "", "signstar binary")
	n := fs.Int("members", 200, "members of the tar")
	size := fs.Int("size", 100<<10, "bytes of each member")
	runs := fs.Int("runs", 3, "runs per command")
	mode := fs.String("sandbox", "enforce", "sandbox mode of the enclave's config")
	key := fs.String("key", "testdata/keys/ed25519.key", "secret key file")
	pub := fs.String("pub", "testdata/keys/ed25519.pub", "its certificate, for gpgv")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" || *runs < 1 || *n < 1 {
		return errors.New("tarssh needs -signstar")
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
	first, err := sshRunWords(s, tarPath, "sign", "--tar")
	if err != nil {
		return fmt.Errorf("ssh sign --tar: %v", err)
	}
	if err := checkAnswer(e.Dir, e.Pub, first.out, files); err != nil {
		return err
	}
	var tarRuns, singleRuns, catRuns []sample
	for i := 0; i < *runs; i++ {
		r, err := sshRunWords(s, tarPath, "sign", "--tar")
		if err != nil {
			return fmt.Errorf("ssh sign --tar: %v", err)
		}
		tarRuns = append(tarRuns, r.sample)
		r, err = sshRun(s, tarPath, "devnull")
		if err != nil {
			return fmt.Errorf("ssh cat: %v", err)
		}
		catRuns = append(catRuns, r.sample)
		var all sample
		for _, f := range files {
			r, err := sshRun(s, f, "")
			if err != nil {
				return fmt.Errorf("ssh sign: %v", err)
			}
			all.wall += r.wall
		}
		singleRuns = append(singleRuns, all)
	}
	for _, c := range []struct {
		name string
		runs []sample
	}{{"ssh-sign-tar", tarRuns}, {"ssh-sign-each", singleRuns}, {"ssh-cat-tar", catRuns}} {
		med, lo, _ := summarize(c.runs)
		fmt.Printf("tarssh\t%s\t%d\t%.6f\t%.6f\t0\n", c.name, len(c.runs), med.Seconds(), lo.Seconds())
	}
	return nil
}

// tarGenCmd writes a tar of N pseudo-random members of SIZE bytes.
func tarGenCmd(args []string) error {
	fs := flag.NewFlagSet("targen", flag.ContinueOnError)
	n := fs.Int("members", 1000, "members")
	size := fs.Int("size", 100<<10, "bytes of each member")
	out := fs.String("out", "", "the tar")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("targen needs -out")
	}
	dir, err := os.MkdirTemp(filepath.Dir(*out), ".targen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	_, p, err := writeMembers(dir, *n, *size)
	if err != nil {
		return err
	}
	return os.Rename(p, *out)
}

// writeMembers writes n files of size pseudo-random bytes into dir and a
// tar of them (ustar, as GNU tar writes it for such names), and returns
// their paths and the tar's.
func writeMembers(dir string, n, size int) ([]string, string, error) {
	r := rand.NewChaCha8([32]byte{'s', 'i', 'g', 'n', 's', 't', 'a', 'r', '-', 't', 'a', 'r'})
	tarPath := filepath.Join(dir, "members.tar")
	tf, err := os.Create(tarPath)
	if err != nil {
		return nil, "", err
	}
	defer tf.Close()
	tw := tar.NewWriter(tf)
	var files []string
	buf := make([]byte, size)
	for i := 0; i < n; i++ {
		r.Read(buf)
		name := fmt.Sprintf("bench%04d-1.0-1-x86_64.pkg.tar.zst", i)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			return nil, "", err
		}
		files = append(files, p)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(size), Mode: 0o644, Format: tar.FormatUSTAR}); err != nil {
			return nil, "", err
		}
		tw.Write(buf)
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	return files, tarPath, tf.Close()
}

// checkAnswer checks the tar of signatures: one NAME.sig per file, in
// order, each verified by gpgv.
func checkAnswer(dir, pub string, answer []byte, files []string) error {
	tr := tar.NewReader(bytes.NewReader(answer))
	for i := 0; ; i++ {
		h, err := tr.Next()
		if err == io.EOF {
			if i != len(files) {
				return fmt.Errorf("the answer holds %d signatures, want %d", i, len(files))
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("the answer: %v", err)
		}
		if i >= len(files) || h.Name != filepath.Base(files[i])+".sig" {
			return fmt.Errorf("the answer's member %d is %q", i, h.Name)
		}
		sig, _ := io.ReadAll(tr)
		if err := gpgv(dir, pub, sig, files[i]); err != nil {
			return fmt.Errorf("%s: %v", h.Name, err)
		}
	}
}
