// Command signstar is a signing enclave behind SSH: it reads an artifact on
// stdin and writes a detached OpenPGP signature on stdout, after appending an
// audit record. See README.md and docs/CONTRACT.md for the command line.
//
// This package holds only command-line concerns: modes, words, messages and
// exit codes. The work is done in internal/.
//
// updatemaxprocs=0: a signing process lives milliseconds, so the runtime's
// goroutine that follows cgroup CPU-limit changes only costs start-up time.
//
//go:debug updatemaxprocs=0
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/command"
	"github.com/signstar/signstar/internal/config"
	"github.com/signstar/signstar/internal/request"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "0.1.0-dev"

// Exit codes of the contract.
const (
	exitOK      = request.ExitOK
	exitFailed  = request.ExitFailed
	exitRefused = request.ExitRefused
)

// now is the clock; tests in this package may replace it.
var now = time.Now

func main() { os.Exit(Main()) }

// Main runs signstar with the process's arguments and streams and returns
// the exit code. It is also registered as the `signstar` command in the
// testscript tests.
func Main() int {
	hardenProcess()
	// A client that goes away must not kill us before the failure is audited.
	signal.Ignore(syscall.SIGPIPE)
	ignoreDumpSignals()
	r := &run{
		args:     os.Args,
		getenv:   os.Getenv,
		stdin:    os.Stdin,
		stdout:   os.Stdout,
		stderr:   os.Stderr,
		stderrFD: -1,
	}
	return r.guardedMain()
}

// guardedMain is main with a panic turned into a failure (crash_linux.go);
// main itself recovers, and audits, those after the log is open.
func (r *run) guardedMain() (code int) {
	defer func() {
		if p := recover(); p != nil {
			code = r.recovered(p)
		}
	}()
	return r.main()
}

// run is one invocation.
type run struct {
	args   []string
	getenv func(string) string // read only for SSH_* variables sshd sets
	stdin  *os.File
	stdout io.Writer
	stderr io.Writer
	// stderrFD is stderr's private descriptor in a remote process
	// (quietRuntime), kept through the lock-down; -1 when there is none.
	stderrFD int
	// rq is the request once the log is open, for recovered.
	rq *request.Request

	inv *invocation
	log *audit.Log
}

// invocation is how signstar was started.
type invocation struct {
	remote        bool
	configPath    string
	serverProfile string
	command       string   // remote: the client's command string
	words         []string // local: the command and its arguments
	// refusal, when set, refuses the request once its log is open: a
	// command string that looks like signstar's own forced command but
	// cannot be one (see forcedThroughShell).
	refusal string
}

// usageError is a refusal of how signstar itself was started.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// parseInvocation tells the three modes apart. Only sshd-set variables and
// the server-side arguments are read; the client's words are only the
// command string.
func parseInvocation(args []string, getenv func(string) string) (*invocation, error) {
	inv := &invocation{configPath: config.DefaultPath}
	loginShell := len(args) > 0 && strings.HasPrefix(filepath.Base(args[0]), "-")
	// sshd sets SSH_ORIGINAL_COMMAND only when the client sent a command;
	// SSH_CONNECTION and SSH_CLIENT are set for every session.
	hasOrig := getenv("SSH_ORIGINAL_COMMAND") != ""
	inv.remote = loginShell || hasOrig || getenv("SSH_CONNECTION") != "" || getenv("SSH_CLIENT") != ""

	rest := args[1:]
	hasC := false
	for len(rest) > 0 {
		a := rest[0]
		opt, val, hasVal := strings.Cut(a, "=")
		switch opt {
		case "--config", "--profile":
			if !hasVal {
				if len(rest) < 2 {
					return nil, &usageError{opt + " needs a value"}
				}
				val, rest = rest[1], rest[1:]
			}
			if val == "" {
				return nil, &usageError{opt + " needs a value"}
			}
			if opt == "--config" {
				inv.configPath = val
			} else {
				inv.serverProfile = val
			}
			rest = rest[1:]
			continue
		case "-c":
			if len(rest) != 2 {
				return nil, &usageError{"-c takes exactly one command string"}
			}
			hasC = true
			inv.command = rest[1]
			rest = nil
			continue
		}
		break
	}
	if hasC {
		inv.remote = true
		if words, ok := forcedThroughShell(inv.command); ok {
			forcedCommand(inv, words, getenv)
		}
		return inv, nil
	}
	if inv.remote {
		if len(rest) > 0 {
			return nil, &usageError{"a remote signstar takes only --config and --profile on the server side; the client's command comes from sshd"}
		}
		inv.command = getenv("SSH_ORIGINAL_COMMAND")
		return inv, nil
	}
	inv.words = rest
	return inv, nil
}

// forcedThroughShell reports whether the -c string is signstar's own path
// (an absolute path ending in /signstar), and returns its words. sshd runs
// a ForceCommand through the user's shell, so with signstar as both the
// login shell and the ForceCommand (the README's second deployment) it
// starts `signstar -c "/usr/bin/signstar"` and puts the client's command
// in SSH_ORIGINAL_COMMAND.
func forcedThroughShell(s string) ([]string, bool) {
	words := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' })
	if len(words) == 0 || !strings.HasPrefix(words[0], "/") || filepath.Base(words[0]) != "signstar" {
		return nil, false
	}
	return words, true
}

// forcedCommand takes the client's command from SSH_ORIGINAL_COMMAND, as in
// ForceCommand mode, and the server's --profile from the forced command's
// words. Nothing else may follow the path: a login-shell-only sshd (no
// ForceCommand) hands signstar the client's own words here, so a --config
// in them could name any file. Such a string is refused, and audited, once
// the log is open.
func forcedCommand(inv *invocation, words []string, getenv func(string) string) {
	inv.command = getenv("SSH_ORIGINAL_COMMAND")
	rest := words[1:]
	for len(rest) > 0 {
		opt, val, hasVal := strings.Cut(rest[0], "=")
		if opt != "--profile" {
			break
		}
		if !hasVal && len(rest) > 1 {
			val, rest = rest[1], rest[1:]
		}
		if !config.ValidName(val) {
			break
		}
		inv.serverProfile = val
		rest = rest[1:]
	}
	if len(rest) > 0 {
		inv.command = strings.Join(words, " ")
		inv.refusal = fmt.Sprintf("refused %q after %s: a ForceCommand run through signstar as the login shell may add only --profile NAME (signstar reads %s)", rest[0], words[0], inv.configPath)
	}
}

func (r *run) main() (code int) {
	inv, err := parseInvocation(r.args, r.getenv)
	if err != nil {
		return r.fail(exitRefused, err.Error())
	}
	r.inv = inv
	if inv.remote {
		if r.stderrFD, err = r.quietRuntime(); err != nil {
			return r.fail(exitFailed, err.Error())
		}
	}
	if !inv.remote && len(inv.words) > 0 {
		switch inv.words[0] {
		case "keygen":
			return r.keygen(inv.words[1:])
		case "audit":
			return r.auditCmd(inv.words[1:])
		case "sandbox":
			return r.sandboxCmd(inv.words[1:])
		case "piv":
			return r.pivCmd(inv.words[1:])
		case "doctor":
			return r.doctor(inv.words[1:])
		case "tpm":
			return r.tpmCmd(inv.words[1:])
		case "help", "--help", "-h":
			fmt.Fprint(r.stderr, command.Usage())
			return exitOK
		case command.Version:
			// Needs neither the configuration nor the audit log: a
			// successful version is not recorded anyway, and an
			// administrator asks it before either exists.
			if _, err := command.ParseWords(inv.words, false); err != nil {
				return r.fail(exitRefused, err.Error())
			}
			return r.output([]byte("signstar " + Version + "\n"))
		}
	}

	cfg, err := config.Load(inv.configPath)
	if err != nil {
		return r.fail(exitFailed, err.Error())
	}
	r.log, err = audit.Open(cfg.Audit.Path)
	if err != nil {
		var ie *audit.IndexError
		if errors.As(err, &ie) {
			return r.fail(exitFailed, err.Error())
		}
		return r.fail(exitFailed, err.Error()+": check [audit] path and that this user may append to it")
	}
	defer r.log.Close()
	if cfg.Audit.Syslog != "" {
		// Connected here, before the lock-down; a socket that does not
		// answer fails sign requests only with syslog_required.
		r.log.Forward(audit.DialSyslog(cfg.Audit.Syslog, cfg.Audit.SyslogRequired))
	}
	// Runs before the log is closed: the panic is audited through it.
	defer func() {
		if p := recover(); p != nil {
			code = r.recovered(p)
		}
	}()

	setRefusalLimitsForTests()
	return r.serve(cfg)
}

// commandText is the command as received, for the audit record.
func (r *run) commandText() string {
	if r.inv.remote {
		s := r.inv.command
		if len(s) > command.MaxLength {
			s = s[:command.MaxLength] + "...(" + strconv.Itoa(len(r.inv.command)) + " bytes)"
		}
		return s
	}
	// Local arguments are bounded only by the kernel (128 KiB each): cut
	// them as the remote grammar's limit does, so the record still fits
	// a log line (audit.MaxLine).
	s := strings.Join(r.inv.words, " ")
	if len(s) > command.MaxLength {
		s = s[:command.MaxLength] + "...(" + strconv.Itoa(len(s)) + " bytes)"
	}
	return s
}

// output writes the result to stdout in one piece and exits 0.
func (r *run) output(b []byte) int {
	if _, err := r.stdout.Write(b); err != nil {
		fmt.Fprintf(r.stderr, "signstar: cannot write to stdout: %v\n", errors.Unwrap(err))
		return exitFailed
	}
	return exitOK
}

// fail prints one line and returns code; nothing is audited.
func (r *run) fail(code int, msg string) int {
	fmt.Fprintf(r.stderr, "signstar: %s\n", oneLine(msg))
	return code
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}
