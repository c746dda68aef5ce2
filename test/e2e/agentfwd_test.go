package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/testsupport/sshtest"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// TestAgentForwardingRefused: a client with a real ssh-agent asks for agent
// forwarding (-A); the drop-in refuses it, so nothing in the session can
// reach the client's keys. The ForceCommand here is env(1), so the test sees
// the session's environment exactly as signstar would get it.
func TestAgentForwardingRefused(t *testing.T) {
	s := sshtest.New(t, sshtest.Config{Program: "/usr/bin/env"})
	if env := forwardedEnv(t, s); strings.Contains(env, "SSH_AUTH_SOCK") {
		t.Fatalf("agent forwarding reached the session:\n%s", env)
	}
	// Servers for one user take turns (the harness holds a lock).
	s.Close()

	// The control: the same drop-in without its forwarding lines lets the
	// agent through, so the check above can fail.
	src, err := sshtest.RepoFile("configs/sshd_config.d/signstar.conf")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.Contains(l, "AllowAgentForwarding") && !strings.Contains(l, "DisableForwarding") {
			kept = append(kept, l)
		}
	}
	loose := filepath.Join(t.TempDir(), "loose.conf")
	if err := os.WriteFile(loose, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := sshtest.New(t, sshtest.Config{Program: "/usr/bin/env", DropIn: loose})
	if env := forwardedEnv(t, s2); !strings.Contains(env, "SSH_AUTH_SOCK=") {
		t.Fatalf("control: without the drop-in's forwarding lines the agent should arrive:\n%s", env)
	}
}

// forwardedEnv logs in with a real ssh-agent holding a key, asks for agent
// forwarding and returns the session's environment as env(1) printed it.
func forwardedEnv(t *testing.T, s *sshtest.Server) string {
	agentBin := testenv.NeedTool(t, "ssh-agent", "openssh-client")

	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command(agentBin, "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The agent holds a key, so forwarding would be worth something.
	if out, err := exec.Command("ssh-add", s.Key("client").Path).CombinedOutput(); err != nil {
		addEnv := exec.Command("ssh-add", s.Key("client").Path)
		addEnv.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		if out2, err := addEnv.CombinedOutput(); err != nil {
			t.Fatalf("ssh-add: %v: %s %s", err, out, out2)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The harness's client options say IdentityAgent=none; an attacker's
	// client would not, so drop it and forward the agent with -A.
	var args []string
	opts := s.ClientOptions("client")
	for i := 0; i < len(opts); i++ {
		if opts[i] == "-o" && i+1 < len(opts) && opts[i+1] == "IdentityAgent=none" {
			i++
			continue
		}
		args = append(args, opts[i])
	}
	args = append(args, "-A", "-v", s.User+"@"+s.Host)
	cmd := exec.CommandContext(ctx, sshtest.SSH, args...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ssh: %v\n%s", err, stderr.String())
	}
	// The client did ask: without this the test could not fail.
	if !strings.Contains(stderr.String(), "Requesting authentication agent forwarding") {
		t.Fatalf("the ssh client never requested agent forwarding:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), "SSH_CONNECTION=") {
		t.Fatalf("env did not run as the ForceCommand:\n%s", stdout.String())
	}
	return stdout.String()
}
