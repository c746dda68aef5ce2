// Command signstar-client is the repository server's side of signstar: it
// signs files through the enclave in one ssh session, checks every
// signature against a pinned certificate before writing it, writes each
// .sig atomically (all of a batch or none), witnesses the enclave's
// transparency log, and stands in for gpg for repo-add, makepkg and
// release scripts. See README.md and docs/CONTRACT.md.
//
// This package holds only command-line concerns: words, messages and exit
// codes. The work is done in internal/client.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/signstar/signstar/internal/client"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "0.1.0-dev"

// Exit codes (docs/CONTRACT.md, signstar-client).
const (
	exitOK        = 0
	exitFailed    = 1
	exitRefused   = 2
	exitUntrusted = 3
)

func main() { os.Exit(Main()) }

// Main runs the client with the process's arguments and streams. It is
// also the `signstar-client` and `gpg` commands of the testscript tests.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	r := &run{ctx: ctx, args: os.Args, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, env: client.OSEnv()}
	return r.main()
}

type run struct {
	ctx            context.Context
	args           []string
	stdin          io.Reader
	stdout, stderr io.Writer
	env            client.Env
	configPath     string
	configExplicit bool
	prefix         string // of every message: "signstar-client: " or "signstar-client: gpg: "
}

func (r *run) main() int {
	r.prefix = "signstar-client: "
	if filepath.Base(r.args[0]) == "gpg" {
		return r.gpg(r.args[1:])
	}
	args := r.args[1:]
	for len(args) > 0 {
		a := args[0]
		switch {
		case a == "--config" && len(args) > 1:
			r.configPath, r.configExplicit = args[1], true
			args = args[2:]
			continue
		case strings.HasPrefix(a, "--config="):
			r.configPath, r.configExplicit = strings.TrimPrefix(a, "--config="), true
			args = args[1:]
			continue
		case a == "--config":
			return r.usage("--config needs a file")
		}
		break
	}
	if len(args) == 0 {
		return r.usage("no command")
	}
	switch args[0] {
	case "sign":
		return r.sign(args[1:])
	case "pin":
		return r.pin(args[1:])
	case "gpg":
		return r.gpg(args[1:])
	case "version", "--version":
		if len(args) != 1 {
			return r.usage("version takes no argument")
		}
		fmt.Fprintf(r.stdout, "signstar-client %s\n", Version)
		return exitOK
	case "help", "--help", "-h":
		fmt.Fprint(r.stdout, usageText)
		return exitOK
	}
	return r.usage(fmt.Sprintf("unknown command %q", args[0]))
}

const usageText = `usage: signstar-client [--config FILE] COMMAND
  sign [--host [USER@]HOST] [--armor] FILE...   sign the files in one session: FILE.sig each
  pin [--host [USER@]HOST]                      fetch the enclave's certificate and pin it
  gpg ARGS...                                   gpg's subset for repo-add, makepkg and scripts
  version
The configuration is ~/.config/signstar/client.toml unless --config names one;
installed as "gpg", the binary runs in gpg mode. See signstar-client(1).
`

func (r *run) usage(msg string) int {
	r.errorf("%s (signstar-client help lists the commands)", msg)
	return exitRefused
}

func (r *run) errorf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	// One line: whatever came from outside stays on it.
	msg = strings.Map(func(c rune) rune {
		if c == '\n' || c == '\r' {
			return ' '
		}
		return c
	}, msg)
	fmt.Fprintln(r.stderr, r.prefix+msg)
}

// config loads the configuration and applies --host.
func (r *run) config(host string) (*client.Config, error) {
	path := r.configPath
	if path == "" {
		path = r.env.DefaultPath()
	}
	cfg, err := client.Load(path, r.env)
	if err != nil {
		return nil, err
	}
	if host != "" {
		if err := cfg.SetDestination(host); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// fail reports err and returns its exit code.
func (r *run) fail(err error) int {
	r.errorf("%v", err)
	return exitCode(err)
}

func exitCode(err error) int {
	var re *client.RemoteError
	var ue *client.UntrustedError
	var me *client.MismatchError
	var np *client.NotPinnedError
	var ce *client.ConfigError
	switch {
	case errors.As(err, &ue), errors.As(err, &me):
		return exitUntrusted
	case errors.As(err, &re):
		if re.Refused() {
			return exitRefused
		}
		return exitFailed
	case errors.As(err, &np):
		return exitRefused
	case errors.As(err, &ce):
		return exitFailed
	}
	return exitFailed
}

// flags parses the options of a subcommand: those in valued take a value
// (--x V or --x=V), those in bools none; the rest are positional (after
// "--", everything is).
func flags(args []string, valued, bools []string) (map[string]string, []string, error) {
	got := map[string]string{}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		switch {
		case contains(valued, name):
			if !hasVal {
				if i+1 >= len(args) {
					return nil, nil, fmt.Errorf("%s needs a value", name)
				}
				i++
				val = args[i]
			}
			if _, dup := got[name]; dup {
				return nil, nil, fmt.Errorf("%s given twice", name)
			}
			got[name] = val
		case contains(bools, name) && !hasVal:
			got[name] = ""
		default:
			return nil, nil, fmt.Errorf("unknown option %q", a)
		}
	}
	return got, pos, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
