// Command benchtool is the timing side of `make bench` (scripts/bench.sh):
//
//	benchtool gen -size N -out FILE
//	    N pseudo-random bytes (ChaCha8, fixed seed): generated once, fast,
//	    and incompressible, so no tool can shortcut them.
//	benchtool time -runs N -in FILE [-pipe] [-label L] NAME=CMD...
//	    runs each command N times with FILE on stdin (or `cat FILE |` with
//	    -pipe), interleaved round by round so that load from other jobs
//	    falls on every tool alike; checks exit 0 and non-empty stdout; prints
//	    one tab-separated line per command: label, name, runs, median and
//	    minimum wall seconds, peak RSS in KiB (the largest of the runs, from
//	    wait4's rusage, as /usr/bin/time reports it).
//	benchtool ssh -signstar BIN -in FILE -runs N
//	    starts a throwaway sshd (internal/testsupport/sshtest, needs root) whose forced
//	    command is signstar for a plain login and `cat > /dev/null` for the
//	    login that asks for "devnull", and times both with FILE on stdin,
//	    interleaved; verifies the signature with gpgv.
//	benchtool biglog -records N -signed S -key KEYFILE -profile P -out LOG
//	    writes an audit log of N records over the last 29 days (S of them
//	    signed by KEYFILE for profile P, the rest refusals from 250 clients)
//	    and its index, for the rate check's figure.
//	benchtool tarssh -signstar BIN [-members 200] [-size 102400] -runs N
//	    through the same throwaway sshd: a tar of N pseudo-random members
//	    signed in one `sign --tar` session, against one `sign` session per
//	    member, and against `cat > /dev/null` of the same tar; the first
//	    answer's signatures are checked with gpgv.
//	benchtool targen [-members 1000] [-size 102400] -out FILE
//	    a tar of N pseudo-random members (for the peak RSS of sign --tar).
//	benchtool client -signstar BIN -client CLIENT [-members 200] -runs N
//	    through the same throwaway sshd: signstar-client sign of 1 file
//	    against the bare ssh ... sign, and of N files against the raw
//	    sign --tar session of the same files.
//
// CMD is split on spaces: no quoting, so paths must not contain spaces
// (bench.sh works in a fresh mktemp directory).
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool gen|time|ssh|sshpar|biglog|tarssh|targen|client ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "time":
		err = timeCmd(os.Args[2:])
	case "ssh":
		err = sshCmd(os.Args[2:])
	case "biglog":
		err = biglog(os.Args[2:])
	case "tarssh":
		err = tarSSHCmd(os.Args[2:])
	case "targen":
		err = tarGenCmd(os.Args[2:])
	case "sshpar":
		err = sshParCmd(os.Args[2:])
	case "client":
		err = clientCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	size := fs.Int64("size", 0, "bytes")
	out := fs.String("out", "", "file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *size <= 0 || *out == "" {
		return errors.New("gen needs -size and -out")
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	r := rand.NewChaCha8([32]byte{'s', 'i', 'g', 'n', 's', 't', 'a', 'r', '-', 'b', 'e', 'n', 'c', 'h'})
	if _, err := io.CopyN(f, r, *size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sample is one run of one command.
type sample struct {
	wall   time.Duration
	maxRSS int64 // KiB
}

type command struct {
	name string
	argv []string
	runs []sample
}

func parseCommands(specs []string) ([]*command, error) {
	var cmds []*command
	for _, s := range specs {
		name, line, ok := strings.Cut(s, "=")
		argv := strings.Fields(line)
		if !ok || name == "" || len(argv) == 0 {
			return nil, fmt.Errorf("command %q: want NAME=CMD ARGS", s)
		}
		cmds = append(cmds, &command{name: name, argv: argv})
	}
	return cmds, nil
}

func timeCmd(args []string) error {
	fs := flag.NewFlagSet("time", flag.ContinueOnError)
	runs := fs.Int("runs", 5, "runs per command")
	warm := fs.Int("warmup", 1, "untimed runs per command first")
	in := fs.String("in", "", "input file")
	pipe := fs.Bool("pipe", false, "feed the input through `cat FILE |`")
	label := fs.String("label", "", "first column of the output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || fs.NArg() == 0 || *runs < 1 {
		return errors.New("time needs -in and at least one NAME=CMD")
	}
	cmds, err := parseCommands(fs.Args())
	if err != nil {
		return err
	}
	for round := -*warm; round < *runs; round++ {
		for _, c := range cmds {
			s, err := runOnce(c.argv, *in, *pipe)
			if err != nil {
				return fmt.Errorf("%s: %v", c.name, err)
			}
			if round >= 0 {
				c.runs = append(c.runs, s)
			}
		}
	}
	for _, c := range cmds {
		med, lo, rss := summarize(c.runs)
		fmt.Printf("%s\t%s\t%d\t%.6f\t%.6f\t%d\n", *label, c.name, len(c.runs), med.Seconds(), lo.Seconds(), rss)
	}
	return nil
}

func summarize(runs []sample) (median, minimum time.Duration, maxRSS int64) {
	walls := make([]time.Duration, len(runs))
	for i, r := range runs {
		walls[i] = r.wall
		maxRSS = max(maxRSS, r.maxRSS)
	}
	slices.Sort(walls)
	n := len(walls)
	median = walls[n/2]
	if n%2 == 0 {
		median = (walls[n/2-1] + walls[n/2]) / 2
	}
	return median, walls[0], maxRSS
}

// runOnce runs argv with the input on stdin and stdout collected (it is a
// signature or a digest: small). The wall time runs from the first fork to
// the last exit, so with -pipe it includes cat, as `cat f | tool` would.
func runOnce(argv []string, input string, pipe bool) (sample, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	var cat *exec.Cmd
	var start time.Time
	if pipe {
		r, w, err := os.Pipe()
		if err != nil {
			return sample{}, err
		}
		f, err := os.Open(input)
		if err != nil {
			return sample{}, err
		}
		defer f.Close()
		cat = exec.Command("cat")
		cat.Stdin, cat.Stdout = f, w
		cmd.Stdin = r
		start = time.Now()
		if err := cat.Start(); err != nil {
			return sample{}, err
		}
		err = cmd.Start()
		r.Close()
		w.Close()
		if err != nil {
			cat.Process.Kill()
			cat.Wait()
			return sample{}, err
		}
	} else {
		f, err := os.Open(input)
		if err != nil {
			return sample{}, err
		}
		defer f.Close()
		cmd.Stdin = f
		start = time.Now()
		if err := cmd.Start(); err != nil {
			return sample{}, err
		}
	}
	err := cmd.Wait()
	if cat != nil {
		if cerr := cat.Wait(); cerr != nil && err == nil {
			err = fmt.Errorf("cat: %v", cerr)
		}
	}
	wall := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%v: %s", err, bytes.TrimSpace(errb.Bytes()))
	}
	if out.Len() == 0 {
		return sample{}, fmt.Errorf("no output; stderr: %s", bytes.TrimSpace(errb.Bytes()))
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	return sample{wall: wall, maxRSS: rss}, nil
}

// abs makes a path absolute for sshd, which runs commands elsewhere.
func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}
