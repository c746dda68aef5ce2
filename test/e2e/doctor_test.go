package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/backend/piv"
	"github.com/signstar/signstar/internal/backend/tpm"
	"github.com/signstar/signstar/internal/testsupport/openpgpemu"
	"github.com/signstar/signstar/internal/testsupport/pivemu"
	"github.com/signstar/signstar/internal/testsupport/swtpmtest"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// doctor runs the enclave's signstar doctor as root against the enclave's
// configuration and the test sshd's configuration, and returns its exit
// code and the finding lines.
func (e *enclave) doctor(t *testing.T) (int, []string, string) {
	t.Helper()
	cmd := exec.Command(e.bin, "--config", e.config, "doctor", "--sshd-config", filepath.Join(e.Server.Dir, "sshd_config"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != 0 && stdout.Len() > 0 {
		t.Errorf("doctor exited %d with stdout %q", code, stdout.String())
	}
	var findings []string
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if strings.HasPrefix(l, "signstar: doctor: ") && !strings.Contains(l, "finding(s) in the deployment") {
			findings = append(findings, strings.TrimPrefix(l, "signstar: doctor: "))
		}
	}
	return code, findings, stdout.String() + stderr.String()
}

// mustRun runs a command of the test's own (chattr, usermod, chown).
func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

// chmodAppendOnly changes the mode of an append-only file (which needs the
// attribute lifted for a moment) and returns the undo.
func chmodAppendOnly(t *testing.T, path string, mode, old os.FileMode) func() {
	t.Helper()
	set := func(m os.FileMode) {
		mustRun(t, "chattr", "-a", path)
		if err := os.Chmod(path, m); err != nil {
			t.Fatal(err)
		}
		mustRun(t, "chattr", "+a", path)
	}
	set(mode)
	return func() { set(old) }
}

func editFile(t *testing.T, path, old, new string) func() {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%s has no %q", path, old)
	}
	fi, _ := os.Stat(path)
	if err := os.WriteFile(path, bytes.Replace(data, []byte(old), []byte(new), 1), fi.Mode()); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.WriteFile(path, data, fi.Mode()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDoctor deploys the enclave as the README says, signs through the real
// sshd, checks that doctor finds nothing, then injects one deployment
// mistake at a time and checks that doctor names it, and only it.
func TestDoctor(t *testing.T) {
	testenv.NeedTool(t, "chattr", "e2fsprogs")
	testenv.NeedTool(t, "usermod", "passwd")
	e := newEnclave(t, enclaveOptions{})
	if !e.appendOnly {
		testenv.Missing(t, e.log+": the test's file system has no append-only attribute")
	}
	data := []byte("doctor's artifact\n")
	r := e.ssh(t, "client", data, nil)
	if r.ExitCode != 0 {
		t.Fatalf("signing through sshd: exit %d: %s", r.ExitCode, r.Stderr)
	}
	e.verifySig(t, data, r.Stdout)

	clean := func(t *testing.T) {
		t.Helper()
		code, findings, out := e.doctor(t)
		if code != 0 || len(findings) > 0 || !strings.HasPrefix(out, "ok: ") {
			t.Fatalf("doctor on a clean deployment: exit %d, findings %q, output %q", code, findings, out)
		}
	}
	clean(t)

	dropIn := filepath.Join(e.Server.Dir, "sshd_config.d", "signstar.conf")
	etc := filepath.Dir(e.config)
	logDir := filepath.Dir(e.log)
	idx := audit.IndexPath(e.log)
	tree := audit.TreePath(e.log)
	key := filepath.Join(etc, "repo.key.asc")
	for _, tc := range []struct {
		name   string
		inject func(t *testing.T) (undo func())
		want   string // in the one finding
	}{
		{"config writable by the signer's group", func(t *testing.T) func() {
			os.Chmod(e.config, 0o660)
			return func() { os.Chmod(e.config, 0o640) }
		}, "the configuration has mode 0660, writable by group or others"},
		{"config owned by the signer", func(t *testing.T) func() {
			mustRun(t, "chown", e.User, e.config)
			return func() { mustRun(t, "chown", "root", e.config) }
		}, "the configuration is owned by " + e.User + " (uid"},
		{"config directory writable by others", func(t *testing.T) func() {
			os.Chmod(etc, 0o777)
			return func() { os.Chmod(etc, 0o755) }
		}, etc + ": directory " + etc + " above the configuration has mode 0777"},
		{"key mode 0644", func(t *testing.T) func() {
			os.Chmod(key, 0o644)
			return func() { os.Chmod(key, 0o400) }
		}, "repo.key.asc has mode 0644, open to group or others"},
		{"key owned by root", func(t *testing.T) func() {
			mustRun(t, "chown", "root", key)
			return func() { mustRun(t, "chown", e.User, key) }
		}, "repo.key.asc: owned by root, not by " + e.User},
		{"key that does not parse", func(t *testing.T) func() {
			old, _ := os.ReadFile(key)
			os.WriteFile(key, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nnonsense\n"), 0o400)
			return func() { os.WriteFile(key, old, 0o400) }
		}, "profile repo: the keyfile backend does not open"},
		{"log without chattr +a", func(t *testing.T) func() {
			mustRun(t, "chattr", "-a", e.log)
			return func() { mustRun(t, "chattr", "+a", e.log) }
		}, "audit.jsonl: not append-only"},
		{"log open to others", func(t *testing.T) func() {
			return chmodAppendOnly(t, e.log, 0o666, 0o660)
		}, "audit.jsonl: mode 0666: open to others"},
		{"log not writable by the signer", func(t *testing.T) func() {
			return chmodAppendOnly(t, e.log, 0o640, 0o660)
		}, "audit.jsonl: user " + e.User + " cannot append to it"},
		{"index without chattr +a", func(t *testing.T) func() {
			mustRun(t, "chattr", "-a", idx)
			return func() { mustRun(t, "chattr", "+a", idx) }
		}, "audit.jsonl.idx: not append-only"},
		{"index open to others", func(t *testing.T) func() {
			return chmodAppendOnly(t, idx, 0o666, 0o660)
		}, "audit.jsonl.idx: mode 0666: open to others"},
		{"index owned by the signer", func(t *testing.T) func() {
			owner := func(who string) {
				mustRun(t, "chattr", "-a", idx)
				mustRun(t, "chown", who, idx)
				mustRun(t, "chattr", "+a", idx)
			}
			owner(e.User)
			return func() { owner("root") }
		}, "audit.jsonl.idx: owned by " + e.User + ", not root"},
		{"tree without chattr +a", func(t *testing.T) func() {
			mustRun(t, "chattr", "-a", tree)
			return func() { mustRun(t, "chattr", "+a", tree) }
		}, "audit.jsonl.tree: not append-only"},
		{"tree missing", func(t *testing.T) func() {
			saved, err := os.ReadFile(tree)
			if err != nil {
				t.Fatal(err)
			}
			mustRun(t, "chattr", "-a", tree)
			os.Remove(tree)
			return func() {
				if err := os.WriteFile(tree, saved, 0o660); err != nil {
					t.Fatal(err)
				}
				// The log's owner and group, as audit rebuild gives it.
				fi, _ := os.Stat(e.log)
				os.Chown(tree, 0, int(fi.Sys().(*syscall.Stat_t).Gid))
				os.Chmod(tree, 0o660)
				mustRun(t, "chattr", "+a", tree)
			}
		}, "audit.jsonl.tree"},
		{"log directory owned by the signer", func(t *testing.T) func() {
			mustRun(t, "chown", e.User, logDir)
			return func() { mustRun(t, "chown", "root", logDir) }
		}, logDir + ": directory " + logDir + " above the audit log is owned by " + e.User},
		{"log that does not verify", func(t *testing.T) func() {
			fi, _ := os.Stat(e.log)
			f, err := os.OpenFile(e.log, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(`{"seq":99,"prev":"00"}` + "\n")
			f.Close()
			return func() {
				mustRun(t, "chattr", "-a", e.log)
				if err := os.Truncate(e.log, fi.Size()); err != nil {
					t.Fatal(err)
				}
				mustRun(t, "chattr", "+a", e.log)
			}
		}, "audit.jsonl: the audit chain does not verify"},
		{"drop-in missing", func(t *testing.T) func() {
			if err := os.Rename(dropIn, dropIn+".off"); err != nil {
				t.Fatal(err)
			}
			return func() { os.Rename(dropIn+".off", dropIn) }
		}, "no ForceCommand in force"},
		{"PermitTTY yes", func(t *testing.T) func() {
			return editFile(t, dropIn, "PermitTTY no", "PermitTTY yes")
		}, "PermitTTY is yes"},
		{"AllowTcpForwarding yes", func(t *testing.T) func() {
			return editFile(t, dropIn, "AllowTcpForwarding no", "AllowTcpForwarding yes")
		}, "AllowTcpForwarding is yes"},
		{"AllowStreamLocalForwarding yes", func(t *testing.T) func() {
			return editFile(t, dropIn, "AllowStreamLocalForwarding no", "AllowStreamLocalForwarding yes")
		}, "AllowStreamLocalForwarding is yes"},
		{"X11Forwarding yes", func(t *testing.T) func() {
			return editFile(t, dropIn, "X11Forwarding no", "X11Forwarding yes")
		}, "X11Forwarding is yes"},
		{"AllowAgentForwarding yes", func(t *testing.T) func() {
			return editFile(t, dropIn, "AllowAgentForwarding no", "AllowAgentForwarding yes")
		}, "AllowAgentForwarding is yes"},
		{"PermitTunnel yes", func(t *testing.T) func() {
			return editFile(t, dropIn, "PermitTunnel no", "PermitTunnel yes")
		}, "PermitTunnel is yes"},
		{"ExposeAuthInfo no", func(t *testing.T) func() {
			return editFile(t, dropIn, "ExposeAuthInfo yes", "ExposeAuthInfo no")
		}, "ExposeAuthInfo is no"},
		{"signer's shell nologin", func(t *testing.T) func() {
			mustRun(t, "usermod", "--shell", "/usr/sbin/nologin", e.User)
			return func() { mustRun(t, "usermod", "--shell", "/bin/sh", e.User) }
		}, "login shell /usr/sbin/nologin cannot start the ForceCommand"},
		{"signstar as the login shell, with a ForceCommand that adds --config", func(t *testing.T) func() {
			mustRun(t, "usermod", "--shell", e.bin, e.User)
			return func() { mustRun(t, "usermod", "--shell", "/bin/sh", e.User) }
		}, "with signstar as the login shell, the ForceCommand may add only --profile NAME"},
		{"signstar as the login shell without ForceCommand", func(t *testing.T) func() {
			mustRun(t, "usermod", "--shell", e.bin, e.User)
			undo := editFile(t, dropIn, "\tForceCommand ", "\t#ForceCommand ")
			return func() { undo(); mustRun(t, "usermod", "--shell", "/bin/sh", e.User) }
		}, "signstar is the login shell but no ForceCommand is in force"},
		{"program writable by others", func(t *testing.T) func() {
			os.Chmod(e.bin, 0o757)
			return func() { os.Chmod(e.bin, 0o755) }
		}, "bin/signstar: mode 0757: writable by group or others"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			undo := tc.inject(t)
			code, findings, out := e.doctor(t)
			undo()
			if code != 1 {
				t.Errorf("doctor exited %d, want 1: %s", code, out)
			}
			if len(findings) != 1 || !strings.Contains(findings[0], tc.want) {
				t.Errorf("doctor's findings %q, want one with %q", findings, tc.want)
			}
			clean(t)
		})
	}
}

// TestDoctorCard adds a piv profile whose card sits in the emulator behind
// pcscd, and checks that doctor passes it with 3 PIN attempts left, names it
// with 1 (signstar would refuse to try the PIN) and passes it again once
// the counter is back.
func TestDoctorCard(t *testing.T) {
	e := newEnclave(t, enclaveOptions{})
	card := pivemu.NewCard(pivemu.Options{})
	pivemu.Start(t, card)
	etc := filepath.Dir(e.config)
	pin := filepath.Join(etc, "card.pin")
	if err := os.WriteFile(pin, []byte(pivemu.DefaultPIN+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "chown", e.User+":", pin)
	cert, err := piv.Setup(piv.SetupOptions{Reader: pivemu.ReaderName, Slot: "9c", UID: "Card <card@example.org>",
		Generate: "ecc-p256", PINFile: pin, Now: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	certPath := filepath.Join(etc, "card.pub.asc")
	if err := os.WriteFile(certPath, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(e.config, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[[profile]]\nname = \"card\"\nbackend = \"piv\"\nkey = %q\nusers = [%q]\n[profile.piv]\nreader = %q\nslot = \"9c\"\npin_file = %q\n",
		certPath, e.User, pivemu.ReaderName, pin)
	f.Close()

	if code, findings, out := e.doctor(t); code != 0 || len(findings) > 0 {
		t.Fatalf("doctor with the card at 3 attempts: exit %d, %q: %s", code, findings, out)
	}
	card.SetPINRetries(1)
	code, findings, out := e.doctor(t)
	if code != 1 || len(findings) != 1 || !strings.Contains(findings[0], "profile card: the piv backend does not open") {
		t.Errorf("doctor with 1 PIN attempt left: exit %d, findings %q: %s", code, findings, out)
	}
	if card.PINRetries() != 1 {
		t.Errorf("doctor spent a PIN attempt: %d left", card.PINRetries())
	}
	card.SetPINRetries(3)
	if code, findings, out := e.doctor(t); code != 0 || len(findings) > 0 {
		t.Errorf("doctor with the card back at 3 attempts: exit %d, %q: %s", code, findings, out)
	}
}

// TestDoctorTPM adds a tpm profile whose key lives in swtpm, and checks that
// doctor passes it, names a key blob open to others, and a blob the TPM
// cannot load.
func TestDoctorTPM(t *testing.T) {
	e := newEnclave(t, enclaveOptions{})
	sim := swtpmtest.Start(t)
	etc := filepath.Dir(e.config)
	blob := filepath.Join(etc, "repo.tpmkey")
	res, err := tpm.Setup(tpm.SetupOptions{Device: sim.Socket, UID: "TPM <tpm@example.org>", KeyBlob: blob, Now: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blob, res.Blob, 0o400); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "chown", e.User+":", blob)
	cert := filepath.Join(etc, "tpm.pub.asc")
	if err := os.WriteFile(cert, res.Cert, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(e.config, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[[profile]]\nname = \"tpm\"\nbackend = \"tpm\"\nkey = %q\nusers = [%q]\n[profile.tpm]\ndevice = %q\nkey_blob = %q\n",
		cert, e.User, sim.Socket, blob)
	f.Close()

	if code, findings, out := e.doctor(t); code != 0 || len(findings) > 0 {
		t.Fatalf("doctor with the TPM profile: exit %d, %q: %s", code, findings, out)
	}
	os.Chmod(blob, 0o644)
	code, findings, out := e.doctor(t)
	if code != 1 || len(findings) != 1 || !strings.Contains(findings[0], "repo.tpmkey has mode 0644") {
		t.Errorf("doctor with the key blob at 0644: exit %d, findings %q: %s", code, findings, out)
	}
	os.Chmod(blob, 0o400)
	good, _ := os.ReadFile(blob)
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0xff
	os.WriteFile(blob, bad, 0o400)
	code, findings, out = e.doctor(t)
	if code != 1 || len(findings) != 1 || !strings.Contains(findings[0], "profile tpm: the tpm backend does not open") {
		t.Errorf("doctor with an edited key blob: exit %d, findings %q: %s", code, findings, out)
	}
	os.WriteFile(blob, good, 0o400)
	if code, findings, out := e.doctor(t); code != 0 || len(findings) > 0 {
		t.Errorf("doctor with the blob restored: exit %d, %q: %s", code, findings, out)
	}
}

// TestDoctorAgent adds a gpg-agent profile and checks that doctor passes it
// while the agent holds the key, and names it when the agent is gone.
func TestDoctorAgent(t *testing.T) {
	testenv.NeedTool(t, "gpg", "gnupg")
	gpgconf := testenv.NeedTool(t, "gpgconf", "gpgconf")
	testenv.NeedTool(t, "gpg-agent", "gpg-agent")
	e := newEnclave(t, enclaveOptions{})
	// Not t.TempDir: the agent's socket path must stay under 108 bytes.
	home, err := os.MkdirTemp("", "dr-gnupg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	os.WriteFile(filepath.Join(home, "gpg-agent.conf"), []byte("allow-loopback-pinentry\n"), 0o600)
	kill := func() { exec.Command(gpgconf, "--homedir", home, "--kill", "all").Run() }
	t.Cleanup(kill)
	mustRun(t, gpgconf, "--homedir", home, "--launch", "gpg-agent")
	mustRun(t, "gpg", "--homedir", home, "--batch", "--import", repoFile(t, "testdata/keys/rsa3072.key"))
	out, err := exec.Command(gpgconf, "--homedir", home, "--list-dirs", "agent-socket").Output()
	if err != nil {
		t.Fatal(err)
	}
	socket := strings.TrimSpace(string(out))
	cert := filepath.Join(filepath.Dir(e.config), "agent.pub.asc")
	pub, err := os.ReadFile(repoFile(t, "testdata/keys/rsa3072.pub"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cert, pub, 0o644)
	f, err := os.OpenFile(e.config, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[[profile]]\nname = \"agent\"\nbackend = \"gpg-agent\"\nkey = %q\nusers = [%q]\n[profile.gpg_agent]\nsocket = %q\n", cert, e.User, socket)
	f.Close()

	if code, findings, out := e.doctor(t); code != 0 || len(findings) > 0 {
		t.Fatalf("doctor with the agent holding the key: exit %d, %q: %s", code, findings, out)
	}
	kill()
	code, findings, out2 := e.doctor(t)
	if code != 1 || len(findings) != 1 || !strings.Contains(findings[0], "profile agent: the gpg-agent backend does not open") {
		t.Errorf("doctor with the agent gone: exit %d, findings %q: %s", code, findings, out2)
	}
}

// TestDoctorAgentCard adds a gpg-agent profile whose key is on an emulated
// OpenPGP card behind the agent: doctor passes it, names it with one PIN
// attempt left (without sending the PIN), and names a card PIN file that
// others may read.
func TestDoctorAgentCard(t *testing.T) {
	e := newEnclave(t, enclaveOptions{})
	const cardPIN = "12345678" // PW1 and PW3, as gpg --card-edit's prompts get
	card := openpgpemu.NewCard(openpgpemu.Options{PIN: cardPIN})
	openpgpemu.Start(t, card)
	g := openpgpemu.StartGnuPG(t)
	g.WaitCard()
	fpr := g.GenerateOnCard(cardPIN, "Card Repo", "card@example.org")
	etc := filepath.Dir(e.config)
	pin := filepath.Join(etc, "card.pin")
	if err := os.WriteFile(pin, []byte(cardPIN+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "chown", e.User+":", pin)
	certPath := filepath.Join(etc, "card.pub.asc")
	if err := os.WriteFile(certPath, []byte(g.GPG(nil, "--export", "--armor", fpr)), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(e.config, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[[profile]]\nname = \"card\"\nbackend = \"gpg-agent\"\nkey = %q\nusers = [%q]\n[profile.gpg_agent]\nsocket = %q\npin_file = %q\n",
		certPath, e.User, g.Socket, pin)
	f.Close()

	if code, findings, out := e.doctor(t); code != 0 || len(findings) > 0 {
		t.Fatalf("doctor with the card at 3 attempts: exit %d, %q: %s", code, findings, out)
	}
	card.SetPINRetries(1)
	shown := card.Verifies()
	code, findings, out := e.doctor(t)
	if code != 1 || len(findings) != 1 || !strings.Contains(findings[0], "only 1 attempt left") {
		t.Errorf("doctor with 1 PIN attempt left: exit %d, findings %q: %s", code, findings, out)
	}
	if card.PINRetries() != 1 || card.Verifies() != shown {
		t.Errorf("doctor touched the card: %d attempts left, %d PINs shown", card.PINRetries(), card.Verifies()-shown)
	}
	card.SetPINRetries(3)
	if err := os.Chmod(pin, 0o444); err != nil {
		t.Fatal(err)
	}
	if code, findings, _ := e.doctor(t); code != 1 || len(findings) == 0 || !strings.Contains(strings.Join(findings, "\n"), "card PIN file") {
		t.Errorf("doctor with a readable card PIN file: exit %d, findings %q", code, findings)
	}
}
