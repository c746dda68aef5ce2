package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Remote runs one command on the enclave through the system's OpenSSH
// client, with the operator's ssh configuration, agent and known_hosts.
type Remote struct {
	cfg *Config
	// Stderr gets the enclave's and ssh's messages as they come.
	Stderr io.Writer
}

// NewRemote is the enclave of cfg.
func NewRemote(cfg *Config, stderr io.Writer) *Remote {
	return &Remote{cfg: cfg, Stderr: stderr}
}

// maxStderr bounds the enclave's messages kept for an error.
const maxStderr = 8 << 10

// RemoteError is a session that did not end in exit status 0.
type RemoteError struct {
	// Command is the remote command.
	Command string
	// Exit is ssh's exit status: the enclave's (1 failed, 2 refused, 3 a
	// quorum profile's vote recorded, nothing signed yet), or 255 when ssh
	// itself failed; -1 when ssh was killed by a signal.
	Exit int
	// Message is the last line the enclave or ssh wrote on stderr.
	Message string
}

func (e *RemoteError) Error() string {
	what := "the enclave failed"
	switch e.Exit {
	case 2:
		what = "the enclave refused"
	case 3:
		what = "the enclave recorded a vote, not signed yet,"
	case 255:
		what = "ssh failed"
	case -1:
		what = "ssh was killed"
	}
	s := fmt.Sprintf("%s `%s` (exit status %d)", what, e.Command, e.Exit)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Refused reports whether the enclave refused (exit 2), as opposed to a
// failure.
func (e *RemoteError) Refused() bool { return e.Exit == 2 }

// args is ssh's command line for the remote words.
func (r *Remote) args(words []string) []string {
	// -T: no terminal, so the enclave reads our bytes and nothing else.
	a := []string{"-T", "-o", "BatchMode=yes"}
	if r.cfg.Port != 0 {
		a = append(a, "-p", strconv.Itoa(r.cfg.Port))
	}
	a = append(a, r.cfg.SSHOptions...)
	a = append(a, "--", r.cfg.Destination())
	return append(a, strings.Join(words, " "))
}

// Run runs the remote command with stdin (nil: none) and copies its
// stdout into stdout. Its error is a *RemoteError when the session ran but
// did not end with status 0.
func (r *Remote) Run(ctx context.Context, words []string, stdin io.Reader, stdout io.Writer) error {
	cmd := exec.CommandContext(ctx, r.cfg.SSH, r.args(words)...)
	cmd.Stdin = stdin
	if stdin == nil {
		cmd.Stdin = bytes.NewReader(nil)
	}
	cmd.Stdout = stdout
	var errBuf tail
	errBuf.max = maxStderr
	if r.Stderr != nil {
		cmd.Stderr = io.MultiWriter(&errBuf, r.Stderr)
	} else {
		cmd.Stderr = &errBuf
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	command := strings.Join(words, " ")
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &RemoteError{Command: command, Exit: ee.ExitCode(), Message: errBuf.lastLine()}
	}
	var en *exec.Error
	if errors.As(err, &en) {
		return fmt.Errorf("cannot start the OpenSSH client %q: %v (set ssh in the configuration, or apt-get install openssh-client)", r.cfg.SSH, en.Err)
	}
	return fmt.Errorf("ssh %s: %v", command, err)
}

// Output runs the remote command without input and returns its stdout,
// at most limit bytes.
func (r *Remote) Output(ctx context.Context, words []string, limit int64) ([]byte, error) {
	var out limitBuffer
	out.max = limit
	err := r.Run(ctx, words, nil, &out)
	if err == nil && out.over {
		return nil, fmt.Errorf("`%s` answered more than %d bytes", strings.Join(words, " "), limit)
	}
	return out.Bytes(), err
}

// tail keeps the last max bytes written to it.
type tail struct {
	buf []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tail) lastLine() string {
	lines := strings.Split(strings.TrimRight(string(t.buf), "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// limitBuffer keeps the first max bytes and notes that more came.
type limitBuffer struct {
	bytes.Buffer
	max  int64
	over bool
}

func (b *limitBuffer) Write(p []byte) (int, error) {
	if room := b.max - int64(b.Len()); int64(len(p)) > room {
		b.over = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}
