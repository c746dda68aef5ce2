package sshtest

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// probe prints what the session sees: the user, the environment, and the
// ExposeAuthInfo file.
var probe = []string{"-c", `id -un; env | sort; echo ---; cat "$SSH_USER_AUTH"`}

func TestForceCommandRuns(t *testing.T) {
	for _, d := range []Deployment{ForceCommand, LoginShell, ShellAndForceCommand} {
		t.Run(d.String(), func(t *testing.T) {
			s := New(t, Config{Deployment: d, Program: "/bin/sh", Args: probe})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var remote []string
			if d != LoginShell {
				// The forced command runs whatever the client asks.
				remote = []string{"echo", "hijacked"}
			}
			r, err := s.Run(ctx, nil, "client", nil, remote...)
			if err != nil || r.ExitCode != 0 {
				t.Fatalf("ssh: %v, exit %d, stderr %q", err, r.ExitCode, r.Stderr)
			}
			out := string(r.Stdout)
			if strings.Contains("\n"+out, "\nhijacked\n") {
				t.Errorf("the client's command ran:\n%s", out)
			}
			if !strings.HasPrefix(out, s.User+"\n") {
				t.Errorf("session did not run as %s:\n%s", s.User, out)
			}
			env, auth, _ := strings.Cut(out, "---\n")
			if !strings.Contains(env, "\nSSH_CONNECTION=127.0.0.1 ") {
				t.Errorf("no SSH_CONNECTION from 127.0.0.1:\n%s", env)
			}
			want := "publickey " + strings.Join(strings.Fields(s.Key("client").Public)[:2], " ") + "\n"
			if auth != want {
				t.Errorf("ExposeAuthInfo file = %q, want %q", auth, want)
			}
			if len(r.Stderr) != 0 {
				t.Errorf("stderr not empty: %q", r.Stderr)
			}
		})
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	s := New(t, Config{Program: "/bin/true"})
	dir := s.Dir
	pid := s.cmd.Process.Pid
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close: %v", dir, err)
	}
	if _, err := os.Stat("/proc/" + itoa(pid)); !os.IsNotExist(err) {
		t.Errorf("sshd %d still running after Close", pid)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestClientEnvironment: the drop-in's AcceptEnv replaces Debian's global
// "AcceptEnv LANG LC_*", so nothing the client sends reaches the session.
func TestClientEnvironment(t *testing.T) {
	s := New(t, Config{Program: "/bin/sh", Args: probe})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := s.Run(ctx, nil, "client", []string{"-o", "SetEnv=LC_ALL=C.evil LANG=evil SSH_USER_AUTH=/tmp/evil BASH_ENV=/tmp/evil"})
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("ssh: %v, exit %d, stderr %q", err, r.ExitCode, r.Stderr)
	}
	if strings.Contains(string(r.Stdout), "evil") {
		t.Errorf("the client's environment reached the session:\n%s", r.Stdout)
	}
}
