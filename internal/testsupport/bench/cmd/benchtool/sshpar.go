package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/signstar/signstar/internal/audit"
)

// sshParCmd times N concurrent ssh sign sessions of one input through one
// throwaway sshd: the wall time from the first start to the last
// signature, per round, interleaved between the binaries given (each in an
// enclave of its own). It is what holding the log's lock from reading the
// tree root through signing to the append costs concurrent signers: with
// it, the signings queue behind each other's.
func sshParCmd(args []string) error {
	fs := flag.NewFlagSet("sshpar", flag.ContinueOnError)
	var bins multiFlag
	fs.Var(&bins, "signstar", "NAME=BINARY, once per binary to compare")
	in := fs.String("in", "", "input file")
	n := fs.Int("n", 32, "concurrent sessions")
	runs := fs.Int("runs", 5, "rounds per binary")
	mode := fs.String("sandbox", "enforce", "sandbox mode of the enclave's config")
	key := fs.String("key", "testdata/keys/ed25519.key", "secret key file")
	pub := fs.String("pub", "testdata/keys/ed25519.pub", "its certificate, for gpgv")
	label := fs.String("label", "sshpar", "label of the output lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(bins) == 0 || *in == "" || *n < 1 {
		return errors.New("sshpar needs -signstar NAME=BIN and -in")
	}
	type target struct {
		name, bin string
		walls     []sample
	}
	var ts []*target
	for _, b := range bins {
		name, bin, ok := cut(b)
		if !ok {
			return fmt.Errorf("-signstar %q: want NAME=BINARY", b)
		}
		ts = append(ts, &target{name: name, bin: bin})
	}
	// Each round gets an enclave and sshd of its own, taken down before the
	// next binary's: the servers of one user are serialised by sshtest's
	// lock, so two at once in this process would wait for each other.
	round := func(t *target) (time.Duration, error) {
		e, s, err := benchEnclave(t.bin, *mode, *key, *pub)
		if err != nil {
			return 0, err
		}
		defer e.Remove()
		defer s.Close()
		// The side files as this binary makes them (an older one has
		// another index version, and no tree).
		for _, p := range []string{audit.IndexPath(e.Log), audit.TreePath(e.Log)} {
			exec.Command("chattr", "-a", p).Run()
			os.Remove(p)
		}
		if out, err := exec.Command(t.bin, "audit", "rebuild", e.Log).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("audit rebuild: %v: %s", err, out)
		}
		sig, err := sshRun(s, *in, "")
		if err != nil {
			return 0, fmt.Errorf("ssh sign: %v", err)
		}
		if err := gpgv(e.Dir, e.Pub, sig.out, *in); err != nil {
			return 0, err
		}
		var wg sync.WaitGroup
		errs := make(chan error, *n)
		start := time.Now()
		for i := 0; i < *n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := sshRun(s, *in, ""); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		d := time.Since(start)
		close(errs)
		if err := <-errs; err != nil {
			return 0, err
		}
		return d, nil
	}
	for r := 0; r < *runs; r++ {
		for _, t := range ts {
			d, err := round(t)
			if err != nil {
				return fmt.Errorf("%s: %v", t.name, err)
			}
			t.walls = append(t.walls, sample{wall: d})
		}
	}
	for _, t := range ts {
		med, lo, _ := summarize(t.walls)
		fmt.Printf("%s\t%s\t%d\t%.6f\t%.6f\t0\n", *label, t.name, len(t.walls), med.Seconds(), lo.Seconds())
	}
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint(*m) }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return s[:i], s[i+1:], i > 0 && i < len(s)-1
		}
	}
	return "", "", false
}
