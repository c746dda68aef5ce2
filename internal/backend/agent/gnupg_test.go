package agent

import (
	"bytes"
	"crypto"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/testsupport/gnupgtest"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// gnupg is a throw-away GnuPG home with its own running gpg-agent.
type gnupg struct {
	t      testing.TB
	home   string
	socket string
}

// startAgent creates a GnuPG home under /tmp (unix socket paths are limited
// to 108 bytes), starts a real gpg-agent in it with loopback pinentry and no
// passphrase cache, and kills it when the test ends.
func startAgent(t testing.TB) *gnupg {
	t.Helper()
	testenv.NeedTool(t, "gpg", "gpg")
	testenv.NeedTool(t, "gpg-agent", "gpg-agent")
	testenv.NeedTool(t, "gpgconf", "gpgconf")
	testenv.NeedTool(t, "gpg-connect-agent", "gpgconf")
	home, err := os.MkdirTemp("/tmp", "sga")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	g := &gnupg{t: t, home: home}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	// No cache, so every signature with a protected key asks for the
	// passphrase and a wrong one is always noticed.
	conf := "allow-loopback-pinentry\ndefault-cache-ttl 0\nmax-cache-ttl 0\n"
	if err := os.WriteFile(filepath.Join(home, "gpg-agent.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// The daemon keeps whatever stdout it is given; give it none, or
	// reading its output would wait for the agent to exit.
	start := exec.Command("gpg-agent", "--homedir", home, "--daemon")
	start.Env = append(os.Environ(), "GNUPGHOME="+home)
	logPath := filepath.Join(home, "start.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	start.Stdout, start.Stderr = logf, logf
	err = start.Run()
	logf.Close()
	if err != nil {
		out, _ := os.ReadFile(logPath)
		t.Fatalf("gpg-agent --daemon: %v\n%s", err, out)
	}
	g.socket = strings.TrimSpace(g.run(nil, "gpgconf", "--homedir", home, "--list-dirs", "agent-socket"))
	if _, err := os.Stat(g.socket); err != nil {
		t.Fatalf("gpg-agent started but its socket is missing: %v", err)
	}
	return g
}

// run runs a GnuPG program with GNUPGHOME set and returns its stdout.
func (g *gnupg) run(stdin []byte, name string, args ...string) string {
	g.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+g.home)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		g.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// gpg runs gpg in batch mode against the home.
func (g *gnupg) gpg(stdin []byte, args ...string) string {
	g.t.Helper()
	return g.run(stdin, "gpg", append([]string{"--homedir", g.home, "--batch", "--no-tty", "--pinentry-mode", "loopback"}, args...)...)
}

// agentCmd sends one command line to the agent with gpg-connect-agent.
func (g *gnupg) agentCmd(line string) string {
	g.t.Helper()
	return g.run(nil, "gpg-connect-agent", "--homedir", g.home, line, "/bye")
}

// keygrips lists "fingerprint keygrip" pairs as gpg prints them.
func (g *gnupg) keygrips() map[string]string {
	g.t.Helper()
	out := g.gpg(nil, "--with-colons", "--with-keygrip", "--list-keys")
	grips := map[string]string{}
	var fpr string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ":")
		switch f[0] {
		case "fpr":
			fpr = f[9]
		case "grp":
			grips[fpr] = f[9]
		}
	}
	return grips
}

// TestGnuPGChoice imports each GnuPG-made key into a real agent, as an
// operator does, and checks that Open chooses the key gpg --detach-sign
// chooses with that same agent: the newest signing subkey the agent holds
// (an offline primary, a stub subkey), by the subkey's creation time.
func TestGnuPGChoice(t *testing.T) {
	for _, c := range gnupgtest.Cases(t) {
		t.Run(c.Name, func(t *testing.T) {
			g := startAgent(t)
			g.gpg(c.Secret, "--import")
			data := filepath.Join(g.home, "data")
			if err := os.WriteFile(data, artifact, 0o600); err != nil {
				t.Fatal(err)
			}
			cert := filepath.Join(t.TempDir(), "cert.gpg")
			if err := os.WriteFile(cert, c.Public, 0o644); err != nil {
				t.Fatal(err)
			}
			if c.Signer == "" {
				// gpg cannot sign either: the agent has no signing key.
				var ne *NoKeyError
				if _, err := Open(Options{Cert: cert, Socket: g.socket}, time.Now()); !errors.As(err, &ne) {
					t.Fatalf("Open: got %v, want *NoKeyError", err)
				}
				return
			}
			gpgSig := g.gpg(nil, "--local-user", c.Primary, "--detach-sign", "--output", "-", data)
			gpgKey, err := gnupgtest.IssuerFingerprint([]byte(gpgSig))
			if err != nil {
				t.Fatal(err)
			}
			if gpgKey != c.Signer {
				t.Fatalf("gpg with the agent signs with %s, from the key file with %s", gpgKey, c.Signer)
			}
			key := open(t, cert, g.socket, "")
			if got := backend.Fingerprint(key.Public); got != gpgKey {
				t.Fatalf("signs with %s; gpg signs with %s", got, gpgKey)
			}
			signAndVerify(t, key, crypto.SHA512, artifact)
		})
	}
}
