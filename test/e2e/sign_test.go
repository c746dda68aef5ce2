package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/testsupport/sshtest"
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// enforced is the audit record's sandbox field when landlock (any ABI),
// seccomp, no_new_privs and the descriptor sweep were all applied.
var enforced = regexp.MustCompile(`^landlock=[1-9][0-9]*,seccomp,nnp$`)

// TestSignThroughSSH is the seeds' deployment: ssh signer@host < FILE >
// FILE.sig, verified by gpgv and sqv, audited with user, client and key.
func TestSignThroughSSH(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.String(), func(t *testing.T) {
			e := newEnclave(t, enclaveOptions{deployment: d})
			n := 0
			for _, c := range []struct {
				name   string
				remote []string
			}{
				{"no command", nil},
				{"sign", []string{"sign"}},
				{"sign --armor --expect", nil}, // filled below
			} {
				data := randomBytes(t, 256<<10)
				remote := c.remote
				if c.name == "sign --armor --expect" {
					remote = []string{"sign", "--armor", "--expect", sha256Digest(data)}
				}
				r := e.ssh(t, "client", data, nil, remote...)
				if r.ExitCode != 0 {
					t.Fatalf("%s: exit %d, stderr %q", c.name, r.ExitCode, r.Stderr)
				}
				if len(r.Stderr) != 0 {
					t.Errorf("%s: stderr not empty: %q", c.name, r.Stderr)
				}
				armored := bytes.HasPrefix(r.Stdout, []byte("-----BEGIN PGP SIGNATURE-----"))
				if armored != (c.name == "sign --armor --expect") {
					t.Errorf("%s: armored=%v", c.name, armored)
				}
				e.verifySig(t, data, r.Stdout)
				n++
				rec := e.last(t)
				want := audit.Record{
					Seq: uint64(n), User: e.User, SSHKey: e.Key("client").Fingerprint, Client: "127.0.0.1",
					Command: strings.Join(remote, " "), Profile: "repo", Outcome: audit.Signed,
					Size: int64(len(data)), Digest: sha256Digest(data),
				}
				got := rec
				got.Time, got.Kind, got.Key, got.Signature, got.Sandbox, got.Prev = "", "", "", "", "", ""
				if got != want {
					t.Errorf("%s: audit record\n got %+v\nwant %+v", c.name, got, want)
				}
				if rec.Signature == "" || rec.Key == "" {
					t.Errorf("%s: record without signature or key: %+v", c.name, rec)
				}
				// The enclave runs mode = "enforce": a signature means
				// every layer was applied (sandbox.Report.String).
				if !enforced.MatchString(rec.Sandbox) {
					t.Errorf("%s: audit record sandbox %q, want landlock=ABI,seccomp,nnp", c.name, rec.Sandbox)
				}
			}
			// pubkey and version are the other remote commands.
			r := e.ssh(t, "client", nil, nil, "pubkey")
			if r.ExitCode != 0 || !bytes.HasPrefix(r.Stdout, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
				t.Errorf("pubkey: exit %d, stdout %.60q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
			}
			r = e.ssh(t, "client", nil, nil, "version")
			if r.ExitCode != 0 || !bytes.HasPrefix(r.Stdout, []byte("signstar ")) {
				t.Errorf("version: exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
			}
			e.verifyLog(t, len(e.records(t)))
		})
	}
}

// TestRefusedCommands: whatever the client asks for besides signing reaches
// signstar (never a shell) and is refused and audited. Also in the login
// shell without ForceCommand, which the README no longer offers but the
// binary still serves: there the client's words come after -c, and words
// that start with signstar's own path are refused after the log is open.
func TestRefusedCommands(t *testing.T) {
	for _, d := range append(deployments, sshtest.LoginShell) {
		t.Run(d.String(), func(t *testing.T) {
			e := newEnclave(t, enclaveOptions{deployment: d})
			for _, c := range []struct {
				name   string
				opts   []string
				remote []string
				// command is what signstar must have received.
				command string
			}{
				{"cat /etc/passwd", nil, []string{"cat", "/etc/passwd"}, "cat /etc/passwd"},
				{"sign; id", nil, []string{"sign; id"}, "sign; id"},
				{"sign && id", nil, []string{"sign", "&&", "id"}, "sign && id"},
				{"$(id)", nil, []string{"sign", "--profile", "$(id)"}, "sign --profile $(id)"},
				{"local-only command", nil, []string{"audit", "verify"}, "audit verify"},
				{"keygen", nil, []string{"keygen", "--uid", "x", "--out", "/tmp/k"}, "keygen --uid x --out /tmp/k"},
				{"signstar --config", nil, []string{e.bin, "--config", "/tmp/evil.toml"}, e.bin + " --config /tmp/evil.toml"},
				{"signstar sign", nil, []string{"/usr/bin/signstar", "sign"}, "/usr/bin/signstar sign"},
			} {
				before := len(e.records(t))
				r := e.ssh(t, "client", []byte("id\n"), c.opts, c.remote...)
				if r.ExitCode != 2 {
					t.Errorf("%s: exit %d, want 2 (refused); stderr %q", c.name, r.ExitCode, r.Stderr)
				}
				if len(r.Stdout) != 0 {
					t.Errorf("%s: stdout not empty: %q", c.name, r.Stdout)
				}
				if !bytes.Contains(r.Stderr, []byte("signstar: ")) {
					t.Errorf("%s: stderr does not come from signstar: %q", c.name, r.Stderr)
				}
				recs := e.records(t)
				if len(recs) != before+1 {
					t.Fatalf("%s: %d new audit records, want 1", c.name, len(recs)-before)
				}
				rec := recs[len(recs)-1]
				if rec.Outcome != audit.Refused || rec.Command != c.command || rec.User != e.User || rec.Signature != "" {
					t.Errorf("%s: audit record %+v", c.name, rec)
				}
			}
			e.verifyLog(t, len(e.records(t)))
		})
	}
}

// TestInteractiveLogin: a terminal is refused by sshd; what the user then
// types is only ever an artifact to sign, never a shell command.
func TestInteractiveLogin(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.String(), func(t *testing.T) {
			e := newEnclave(t, enclaveOptions{deployment: d})
			for _, c := range []struct {
				opt    string
				remote []string
			}{
				{"-t", nil}, {"-tt", nil}, {"-tt", []string{"id"}}, {"-tt", []string{"sign"}},
			} {
				name := strings.Join(append([]string{c.opt}, c.remote...), " ")
				typed := []byte("id\nexit\n")
				before := len(e.records(t))
				sessions := strings.Count(e.Log(), "Starting session:")
				r := e.ssh(t, "client", typed, []string{c.opt}, c.remote...)
				if c.opt == "-tt" && !bytes.Contains(r.Stderr, []byte("PTY allocation request failed")) {
					t.Errorf("%s: sshd granted a terminal? stderr %q", name, r.Stderr)
				}
				// ssh gives up as soon as a forced terminal is refused, but
				// sshd may already run the session: wait for its record.
				recs := e.settle(t, before, sessions)
				// A shell's output, unless stdout is the signature a signed
				// record vouches for (checked below: random signature bytes
				// may hold a "$ ").
				if !(len(recs) == 1 && recs[0].Outcome == audit.Signed) &&
					(bytes.Contains(r.Stdout, []byte("uid=")) || bytes.Contains(r.Stdout, []byte("$ "))) {
					t.Errorf("%s: a shell ran: %q", name, r.Stdout)
				}
				for _, rec := range recs {
					cmd := strings.Join(c.remote, " ")
					switch {
					case rec.Command != cmd:
						t.Errorf("%s: record of command %q", name, rec.Command)
					case rec.Outcome == audit.Signed:
						// The typed bytes are an artifact like any other:
						// signed under kinds = ["any"], refused by a
						// pacman-only profile.
						if r.ExitCode != 0 || rec.Digest != sha256Digest(typed) || cmd == "id" {
							t.Errorf("%s: audited as signed, exit %d, record %+v", name, r.ExitCode, rec)
						}
						// stdout is the signature, and nothing else.
						if base64.StdEncoding.EncodeToString(r.Stdout) != rec.Signature {
							t.Errorf("%s: stdout %q is not the record's signature", name, r.Stdout)
						}
						e.verifySig(t, typed, r.Stdout)
					case len(r.Stdout) != 0:
						t.Errorf("%s: %s, but stdout %q", name, rec.Outcome, r.Stdout)
					case cmd == "id" && rec.Outcome != audit.Refused:
						t.Errorf("%s: %s (%s), want refused", name, rec.Outcome, rec.Reason)
					}
					t.Logf("%s: exit %d, audited %s: %s", name, r.ExitCode, rec.Outcome, rec.Reason)
				}
			}
			e.verifyLog(t, len(e.records(t)))
		})
	}
}

// TestFileTransfer: scp (both protocols), sftp and a raw subsystem request
// (-s) reach signstar as a command, which refuses and audits; nothing is
// read or written on the server. With both sftp subsystems: Debian's
// sftp-server, which sshd starts through the user's shell, and
// internal-sftp, which sshd serves itself unless ForceCommand overrides it.
func TestFileTransfer(t *testing.T) {
	for _, d := range deployments {
		for _, sftp := range []string{"", "internal-sftp"} {
			name := d.String()
			if sftp != "" {
				name += "/" + sftp
			}
			t.Run(name, func(t *testing.T) {
				e := newEnclave(t, enclaveOptions{deployment: d, sftp: sftp})
				subsystem := "/usr/lib/openssh/sftp-server"
				if sftp != "" {
					subsystem = sftp
				}
				for _, c := range fileTransfers(t, e, d) {
					before := len(e.records(t))
					out, err := c.run()
					if err == nil {
						t.Errorf("%s succeeded: %s", c.name, out)
					}
					if c.leaked() {
						t.Errorf("%s: the key left the server or a file was written (output %s)", c.name, out)
					}
					want := c.command
					if want == "" {
						want = subsystem
					}
					recs := e.records(t)
					if len(recs) != before+1 {
						t.Fatalf("%s: %d new records, want 1 (output %s)", c.name, len(recs)-before, out)
					}
					if rec := recs[len(recs)-1]; rec.Outcome != audit.Refused || rec.Command != want {
						t.Errorf("%s: record %+v, want refused %q", c.name, rec, want)
					}
				}
			})
		}
	}
	// The control, and the reason the README offers no login shell without
	// ForceCommand: sshd serves internal-sftp itself, signstar never runs,
	// and the signing key is downloaded without a record.
	t.Run("control/login-shell-only/internal-sftp", func(t *testing.T) {
		e := newEnclave(t, enclaveOptions{deployment: sshtest.LoginShell, sftp: "internal-sftp"})
		for _, c := range fileTransfers(t, e, sshtest.LoginShell) {
			if c.name != "sftp get" {
				continue
			}
			out, err := c.run()
			if err != nil || !c.leaked() {
				t.Fatalf("control: sftp should fetch the key here: %v: %s", err, out)
			}
			if n := len(e.records(t)); n != 0 {
				t.Errorf("control: %d records; signstar should not have run", n)
			}
		}
	})
}

// transfer is one file transfer attempt against an enclave.
type transfer struct {
	name string
	run  func() ([]byte, error)
	// leaked reports whether the key arrived or a file was written.
	leaked func() bool
	// command is what signstar must have refused; "" for the sftp
	// subsystem's command.
	command string
}

func fileTransfers(t *testing.T, e *enclave, d sshtest.Deployment) []transfer {
	local := t.TempDir()
	payload := filepath.Join(local, "payload")
	if err := writeFile(payload, []byte("payload\n")); err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(local, "got.key")
	// Names of this test's own, so that a stray file of another program
	// (a /tmp/x) is not taken for a leak.
	remoteFile := "/tmp/signstar-e2e-scp-" + d.String()
	sftpFile := "/tmp/signstar-e2e-sftp-" + d.String()
	leaked := func() bool {
		b, _ := os.ReadFile(got)
		return bytes.Contains(b, []byte("PRIVATE KEY")) || exists(remoteFile) || exists(sftpFile)
	}
	client := func(prog string, stdin string, args ...string) func() ([]byte, error) {
		return func() ([]byte, error) {
			os.Remove(got)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, prog, append(e.ClientOptions("client"), args...)...)
			cmd.Stdin = strings.NewReader(stdin)
			return cmd.CombinedOutput()
		}
	}
	host := e.Host
	return []transfer{
		{"scp put", client("scp", "", payload, host+":"+remoteFile), leaked, ""},
		{"scp get", client("scp", "", host+":"+e.key, got), leaked, ""},
		{"scp -O put", client("scp", "", "-O", payload, host+":"+remoteFile), leaked, "scp -t " + remoteFile},
		{"scp -O get", client("scp", "", "-O", host+":"+e.key, got), leaked, "scp -f " + e.key},
		{"sftp get", client("sftp", "get "+e.key+" "+got+"\n", "-b", "-", host), leaked, ""},
		{"sftp put", client("sftp", "put "+payload+" "+sftpFile+"\nls /\n", "-b", "-", host), leaked, ""},
		{"ssh -s sftp", client("ssh", "", "-s", host, "sftp"), leaked, ""},
	}
}

// TestLoad: 32 sessions at once, each signing its own file.
func TestLoad(t *testing.T) {
	const n = 32
	e := newEnclave(t, enclaveOptions{deployment: sshtest.ForceCommand})
	before := len(e.records(t))
	type result struct {
		data []byte
		r    *sshtest.Result
		err  error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range results {
		results[i].data = randomBytes(t, 64<<10+i)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			results[i].r, results[i].err = e.Run(ctx, bytes.NewReader(results[i].data), "client", nil, "sign")
		}(i)
	}
	wg.Wait()
	digests := map[string]bool{}
	for i, res := range results {
		if res.err != nil || res.r.ExitCode != 0 {
			t.Errorf("session %d: %v, exit %d, stderr %q", i, res.err, res.r.ExitCode, res.r.Stderr)
			continue
		}
		e.verifySig(t, res.data, res.r.Stdout)
		digests[sha256Digest(res.data)] = true
	}
	recs := e.records(t)
	if len(recs)-before != n {
		t.Fatalf("%d new records, want %d", len(recs)-before, n)
	}
	for _, rec := range recs[before:] {
		if rec.Outcome != audit.Signed || !digests[rec.Digest] {
			t.Errorf("record %d: %s %s", rec.Seq, rec.Outcome, rec.Digest)
		}
		delete(digests, rec.Digest)
	}
	e.verifyLog(t, len(recs))
}

// TestClientKilledMidUpload: no signature for a partial upload.
func TestClientKilledMidUpload(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.String(), func(t *testing.T) {
			e := newEnclave(t, enclaveOptions{deployment: d})
			before := len(e.records(t))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := e.Command(ctx, "client", nil, "sign")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			chunk := randomBytes(t, 1<<20)
			for i := 0; i < 8; i++ {
				if _, err := stdin.Write(chunk); err != nil {
					t.Fatalf("writing chunk %d: %v", i, err)
				}
			}
			// The upload is under way and the input is not finished.
			cmd.Process.Kill()
			cmd.Wait()
			stdin.Close()

			var rec audit.Record
			deadline := time.Now().Add(30 * time.Second)
			for {
				if recs := e.records(t); len(recs) > before {
					rec = recs[len(recs)-1]
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no audit record 30s after the client was killed")
				}
				time.Sleep(100 * time.Millisecond)
			}
			if stdout.Len() != 0 {
				t.Errorf("the killed client received %d bytes", stdout.Len())
			}
			if rec.Outcome == audit.Signed || rec.Signature != "" {
				t.Errorf("a partial upload was signed: %+v", rec)
			}
			if rec.Reason == "" || rec.Size >= 8<<20+1 {
				t.Errorf("record: outcome %s, reason %q, size %d", rec.Outcome, rec.Reason, rec.Size)
			}
			t.Logf("record after kill: %s: %s (%d bytes read)", rec.Outcome, rec.Reason, rec.Size)
			e.verifyLog(t, len(e.records(t)))
		})
	}
}

// TestProfileBySSHKey: a profile restricted by ssh_keys serves only its key.
func TestProfileBySSHKey(t *testing.T) {
	e := newEnclave(t, enclaveOptions{
		deployment: sshtest.ForceCommand,
		keys:       []string{"a", "b"},
		profiles: `
[[profile]]
name = "restricted"
backend = "keyfile"
key = "` + repoFile(t, "testdata/keys/ed25519.key") + `"
kinds = ["any"]
users = ["signer"]
ssh_keys = ["{KEY:b}"]
`,
	})
	// The restricted profile reads the key from the repo checkout; give it
	// the enclave's copy instead.
	fixProfileKey(t, e)
	data := []byte("artifact\n")
	for _, c := range []struct {
		key, profile string
		exit         int
		want         string // profile in the record
	}{
		{"b", "restricted", 0, "restricted"},
		{"a", "restricted", 2, ""},
		{"a", "", 0, "repo"},
		{"b", "", 0, "restricted"},
	} {
		remote := []string{"sign"}
		if c.profile != "" {
			remote = append(remote, "--profile", c.profile)
		}
		r := e.ssh(t, c.key, data, nil, remote...)
		rec := e.last(t)
		if r.ExitCode != c.exit || rec.Profile != c.want || rec.SSHKey != e.Key(c.key).Fingerprint {
			t.Errorf("key %s, %v: exit %d (want %d), record profile %q (want %q), ssh_key %s (want %s); stderr %q",
				c.key, remote, r.ExitCode, c.exit, rec.Profile, c.want, rec.SSHKey, e.Key(c.key).Fingerprint, r.Stderr)
		}
		if c.exit == 0 {
			e.verifySig(t, data, r.Stdout)
		}
	}
	e.verifyLog(t, 4)
}

func fixProfileKey(t *testing.T, e *enclave) {
	t.Helper()
	cfg, err := readFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte(fmt.Sprintf("%q", repoFile(t, "testdata/keys/ed25519.key"))),
		[]byte(fmt.Sprintf("%q", e.dir+"/etc/repo.key.asc")), 1)
	if err := writeFile(e.config, cfg); err != nil {
		t.Fatal(err)
	}
}

// TestUntrustedFiles: as the signing user behind sshd, signstar refuses a
// configuration, or a directory above it, the log or the key, that this
// user could change (StrictModes for signstar), and names the fix.
func TestUntrustedFiles(t *testing.T) {
	e := newEnclave(t, enclaveOptions{deployment: sshtest.ForceCommand})
	u, err := user.Lookup(e.User)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	signs := func(t *testing.T) {
		t.Helper()
		if r := e.ssh(t, "client", []byte("x\n"), nil, "sign"); r.ExitCode != 0 {
			t.Fatalf("sign: exit %d, stderr %q", r.ExitCode, r.Stderr)
		}
	}
	signs(t)
	etc, logDir := filepath.Dir(e.config), filepath.Dir(e.log)
	for _, c := range []struct {
		name         string
		change, undo func() error
		want         string
	}{
		{"config owned by the signer",
			func() error { return os.Chown(e.config, uid, gid) },
			func() error { return os.Chown(e.config, 0, gid) },
			"the configuration is owned by " + e.User + " (uid " + u.Uid + "), not root, so the signing user could rewrite its policy: run chown root " + e.config},
		{"config group-writable by the signer",
			func() error { return os.Chmod(e.config, 0o660) },
			func() error { return os.Chmod(e.config, 0o640) },
			"the configuration has mode 0660, writable by group or others: run chmod go-w " + e.config},
		{"config directory owned by the signer",
			func() error { return os.Chown(etc, uid, gid) },
			func() error { return os.Chown(etc, 0, 0) },
			"directory " + etc + " above the configuration is owned by " + e.User},
		{"log directory owned by the signer",
			func() error { return os.Chown(logDir, uid, gid) },
			func() error { return os.Chown(logDir, 0, 0) },
			"audit.path: directory " + logDir + " above the audit log is owned by " + e.User},
		{"log directory group-writable",
			func() error { return os.Chmod(logDir, 0o775) },
			func() error { return os.Chmod(logDir, 0o755) },
			"audit.path: directory " + logDir + " above the audit log has mode 0775"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.records(t))
			if err := c.change(); err != nil {
				t.Fatal(err)
			}
			r := e.ssh(t, "client", []byte("x\n"), nil, "sign")
			if err := c.undo(); err != nil {
				t.Fatal(err)
			}
			if r.ExitCode != 1 || len(r.Stdout) != 0 || !bytes.HasPrefix(r.Stderr, []byte("signstar: ")) ||
				!bytes.Contains(r.Stderr, []byte(c.want)) || bytes.Count(r.Stderr, []byte("\n")) != 1 {
				t.Errorf("exit %d, %d bytes out, stderr %q; want exit 1 and %q", r.ExitCode, len(r.Stdout), r.Stderr, c.want)
			}
			if n := len(e.records(t)); n != before {
				t.Errorf("%d records written with an untrusted configuration", n-before)
			}
			signs(t)
		})
	}
}
