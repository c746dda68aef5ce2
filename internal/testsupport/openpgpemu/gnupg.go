package openpgpemu

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/testsupport/pivemu"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// Start makes sure pcscd runs with the vpcd reader (pivemu.StartPCSC, which
// holds the reader's cross-process lock for the test) and inserts card.
// Cleanup removes it.
func Start(t testing.TB, card *Card) *pivemu.Emulator {
	t.Helper()
	pivemu.StartPCSC(t)
	return pivemu.PlugApplet(t, card)
}

// GnuPG is a throw-away GnuPG home whose gpg-agent reaches cards through
// scdaemon and pcscd (disable-ccid), with loopback pinentry and no cache.
type GnuPG struct {
	t      testing.TB
	Home   string
	Socket string // the agent's socket
}

// StartGnuPG creates the home under /tmp (socket paths are short), starts
// gpg-agent in it and, at Cleanup, stops it and its scdaemon (before the
// reader lock of Start is released: Cleanup runs in reverse order).
func StartGnuPG(t testing.TB) *GnuPG {
	t.Helper()
	for _, tool := range []string{"gpg", "gpg-agent", "gpgconf", "gpg-connect-agent"} {
		testenv.NeedTool(t, tool, "gnupg")
	}
	if _, err := os.Stat("/usr/lib/gnupg/scdaemon"); err != nil {
		testenv.Missing(t, "no /usr/lib/gnupg/scdaemon: apt-get install scdaemon")
	}
	home, err := os.MkdirTemp("/tmp", "sgc")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	g := &GnuPG{t: t, Home: home}
	t.Cleanup(func() {
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(home, "scdaemon.log")); err == nil {
				t.Logf("scdaemon.log (tail):\n%s", tail(log, 8000))
			}
		}
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	files := map[string]string{
		"gpg-agent.conf": "allow-loopback-pinentry\ndefault-cache-ttl 0\nmax-cache-ttl 0\n",
		// pcscd, not scdaemon's own CCID driver: the card is in vpcd.
		"scdaemon.conf": "disable-ccid\nlog-file " + filepath.Join(home, "scdaemon.log") + "\ndebug-level basic\n",
		"gpg.conf":      "no-autostart\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(home, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	start := exec.Command("gpg-agent", "--homedir", home, "--daemon")
	start.Env = g.env()
	logPath := filepath.Join(home, "start.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// The daemon keeps whatever stdout it is given: give it a file.
	start.Stdout, start.Stderr = logf, logf
	err = start.Run()
	logf.Close()
	if err != nil {
		out, _ := os.ReadFile(logPath)
		t.Fatalf("gpg-agent --daemon: %v\n%s", err, out)
	}
	out, err := g.Run(nil, "gpgconf", "--homedir", home, "--list-dirs", "agent-socket")
	if err != nil {
		t.Fatal(err)
	}
	g.Socket = strings.TrimSpace(out)
	return g
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (g *GnuPG) env() []string {
	return append(os.Environ(), "GNUPGHOME="+g.Home, "LC_ALL=C")
}

// Run runs a program with GNUPGHOME set and returns its stdout; an error
// carries its stderr.
func (g *GnuPG) Run(stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = g.env()
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// GPG runs gpg in batch mode with loopback pinentry and fails the test on
// error.
func (g *GnuPG) GPG(stdin []byte, args ...string) string {
	g.t.Helper()
	out, err := g.Run(stdin, "gpg", append([]string{"--homedir", g.Home, "--batch", "--no-tty", "--pinentry-mode", "loopback"}, args...)...)
	if err != nil {
		g.t.Fatal(err)
	}
	return out
}

// Agent sends command lines to the agent with gpg-connect-agent and
// returns what it printed.
func (g *GnuPG) Agent(lines ...string) string {
	g.t.Helper()
	out, err := g.Run(nil, "gpg-connect-agent", append(append([]string{"--homedir", g.Home}, lines...), "/bye")...)
	if err != nil {
		g.t.Fatal(err)
	}
	return out
}

// Interact runs gpg with --command-fd and --status-fd and answers each
// GET_LINE, GET_BOOL and GET_HIDDEN prompt with answer(keyword); a prompt
// answer does not know fails the test. It returns the status lines.
func (g *GnuPG) Interact(answer func(keyword string) (string, bool), args ...string) string {
	g.t.Helper()
	args = append([]string{"--homedir", g.Home, "--no-tty", "--pinentry-mode", "loopback", "--command-fd", "0", "--status-fd", "1"}, args...)
	cmd := exec.Command("gpg", args...)
	cmd.Env = g.env()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		g.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		g.t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	var status strings.Builder
	var unknown string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			status.WriteString(line + "\n")
			f := strings.Fields(line)
			if len(f) < 3 || f[0] != "[GNUPG:]" || (f[1] != "GET_LINE" && f[1] != "GET_BOOL" && f[1] != "GET_HIDDEN") {
				continue
			}
			a, ok := answer(f[2])
			if !ok {
				unknown = f[2]
				stdin.Close()
				continue
			}
			io.WriteString(stdin, a+"\n")
		}
	}()
	timer := time.AfterFunc(3*time.Minute, func() { cmd.Process.Kill() })
	<-done
	err = cmd.Wait()
	timer.Stop()
	if unknown != "" {
		g.t.Fatalf("gpg %s asked %q, which the test does not answer\nstatus:\n%s\nstderr:\n%s", strings.Join(args, " "), unknown, status.String(), stderr.String())
	}
	if err != nil {
		g.t.Fatalf("gpg %s: %v\nstatus:\n%s\nstderr:\n%s", strings.Join(args, " "), err, status.String(), stderr.String())
	}
	return status.String()
}

// GenerateOnCard runs gpg --card-edit's admin/generate as an operator
// would (no off-card backup, no expiry) and returns the new primary key's
// fingerprint. Every PIN prompt is answered with pin, so the card's PW1
// and PW3 must both be pin.
func (g *GnuPG) GenerateOnCard(pin, name, email string) string {
	g.t.Helper()
	commands := []string{"admin", "generate", "quit"}
	status := g.Interact(func(kw string) (string, bool) {
		switch kw {
		case "cardedit.prompt":
			if len(commands) == 0 {
				return "", false
			}
			c := commands[0]
			commands = commands[1:]
			return c, true
		case "cardedit.genkeys.backup_enc":
			return "n", true
		case "keygen.comment":
			return "", true
		case "cardedit.genkeys.replace_keys":
			return "y", true
		case "keygen.valid":
			return "0", true
		case "keygen.name":
			return name, true
		case "keygen.email":
			return email, true
		case "passphrase.enter":
			return pin, true
		}
		return "", false
	}, "--card-edit")
	for _, line := range strings.Split(status, "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[1] == "KEY_CREATED" {
			return f[3]
		}
	}
	g.t.Fatalf("gpg --card-edit generate created no key:\n%s", status)
	return ""
}

// WaitCard waits until scdaemon finds an OpenPGP card and reads it (SCD
// SERIALNO, GETATTR): pcscd may report a newly powered card a moment after
// vpcd asked for its ATR.
func (g *GnuPG) WaitCard() {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// After a card change scdaemon may answer SERIALNO from memory
		// and fail the first read: wait for both.
		out, err := g.Run(nil, "gpg-connect-agent", "--homedir", g.Home, "SCD SERIALNO openpgp", "SCD GETATTR CHV-STATUS", "/bye")
		if err == nil && strings.Contains(out, "S SERIALNO ") && strings.Contains(out, "S CHV-STATUS ") {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("scdaemon found no OpenPGP card within 10s: %v %s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// SoftKey makes a signing-only key in the home (gpg --quick-gen-key, algo
// as gpg names it: rsa2048, ed25519, nistp256), protected by pass, and
// returns its fingerprint.
func (g *GnuPG) SoftKey(pass, uid, algo string) string {
	g.t.Helper()
	g.GPG(nil, "--passphrase", pass, "--quick-gen-key", uid, algo, "sign", "never")
	out := g.GPG(nil, "--with-colons", "--list-secret-keys", uid)
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" {
			return f[9]
		}
	}
	g.t.Fatalf("no key %q after --quick-gen-key:\n%s", uid, out)
	return ""
}

// KeyToCard moves the primary key fpr into the card's signature slot with
// gpg --edit-key's keytocard, then saves: the home keeps a stub. The key's
// passphrase and the admin PIN must both be pin.
func (g *GnuPG) KeyToCard(pin, fpr string) {
	g.t.Helper()
	commands := []string{"keytocard", "save"}
	g.Interact(func(kw string) (string, bool) {
		switch kw {
		case "keyedit.prompt":
			if len(commands) == 0 {
				return "", false
			}
			c := commands[0]
			commands = commands[1:]
			return c, true
		case "keyedit.keytocard.use_primary", "cardedit.genkeys.replace_key":
			return "y", true
		case "cardedit.genkeys.storekeytype":
			return "1", true
		case "passphrase.enter":
			return pin, true
		}
		return "", false
	}, "--edit-key", fpr)
}
