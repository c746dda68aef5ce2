// Package e2e tests signstar as its users meet it: behind a real OpenSSH
// sshd, as the dedicated signer user, deployed with the repo's sshd drop-in
// as ForceCommand or as the login shell, verified by gpgv and sqv.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/testsupport/sshtest"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// binDir holds the signstar binary built once for all tests.
var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() != 0 {
			// Each test skips (or fails in CI) through testenv.NeedRoot.
			return m.Run()
		}
		dir, err := sshtest.SafeTempDir("e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		root, err := sshtest.RepoFile("go.mod")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		// As make build does: the shipped binary is pure Go.
		build := exec.Command("go", "build", "-o", filepath.Join(dir, "signstar"), "./cmd/signstar")
		build.Dir = filepath.Dir(root)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/signstar: %v\n%s", err, out)
			return 1
		}
		// The repository server's client, as make build makes it too.
		build = exec.Command("go", "build", "-o", filepath.Join(dir, "signstar-client"), "./cmd/signstar-client")
		build.Dir = filepath.Dir(root)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/signstar-client: %v\n%s", err, out)
			return 1
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

// enclave is one deployment: sshd, signstar's files laid out with the
// ownership and modes the drop-in recommends, and the audit log.
type enclave struct {
	*sshtest.Server
	dir, bin, config, key, log, pub string
	appendOnly                      bool
}

type enclaveOptions struct {
	deployment sshtest.Deployment
	keys       []string
	// profiles is extra TOML placed before the default "repo" profile;
	// it may use {KEY:name} for a client key's fingerprint, {SIGNING_KEY}
	// for the enclave's key file and {USER} for the signing user.
	profiles string
	// sftp is sshd's "Subsystem sftp" command (sshtest.Config.SFTP).
	sftp string
	// dropIn replaces the repo's sshd drop-in (sshtest.Config.DropIn).
	dropIn string
	// audit are further lines of the [audit] table; {DIR} stands for the
	// enclave's root-owned directory.
	audit string
}

func newEnclave(t *testing.T, o enclaveOptions) *enclave {
	t.Helper()
	testenv.NeedRoot(t)
	if binDir == "" {
		t.Fatal("signstar was not built")
	}
	l, err := sshtest.NewEnclave("e2e", filepath.Join(binDir, "signstar"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Remove() })
	e := &enclave{dir: l.Dir, bin: l.Bin, config: l.Config, key: l.Key, log: l.Log, pub: l.Pub}
	e.Server = sshtest.New(t, sshtest.Config{
		Deployment: o.deployment,
		Program:    l.Bin,
		Args:       l.Args(),
		Keys:       o.keys,
		SFTP:       o.sftp,
		DropIn:     o.dropIn,
	})

	profiles := strings.NewReplacer("{SIGNING_KEY}", l.Key, "{USER}", e.User).Replace(o.profiles)
	for _, name := range o.keys {
		profiles = strings.ReplaceAll(profiles, "{KEY:"+name+"}", e.Key(name).Fingerprint)
	}
	profiles += fmt.Sprintf(`
[[profile]]
name = "repo"
backend = "keyfile"
key = %q
hash = "sha256"
max_size = "64MiB"
kinds = ["any"]
users = [%q]
`, l.Key, e.User)
	auditLines := strings.ReplaceAll(o.audit, "{DIR}", l.Dir)
	if err := l.Install(e.User, sshtest.EnclaveOptions{Sandbox: "enforce", Audit: auditLines, Profiles: profiles}); err != nil {
		t.Fatal(err)
	}
	e.appendOnly = l.AppendOnly
	if !e.appendOnly {
		t.Logf("%s: file system has no append-only attribute; relying on audit verify", e.log)
	}
	return e
}

// ssh runs the client with key and stdin and returns its result.
func (e *enclave) ssh(t *testing.T, key string, stdin []byte, opts []string, remote ...string) *sshtest.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := e.Run(ctx, bytes.NewReader(stdin), key, opts, remote...)
	if err != nil {
		t.Fatalf("ssh %v: %v (stderr %q)", remote, err, r.Stderr)
	}
	return r
}

// records reads the audit log.
func (e *enclave) records(t *testing.T) []audit.Record {
	t.Helper()
	f, err := os.Open(e.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []audit.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, audit.MaxLine)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %d: %v", len(recs)+1, err)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// last returns the newest audit record.
func (e *enclave) last(t *testing.T) audit.Record {
	t.Helper()
	recs := e.records(t)
	if len(recs) == 0 {
		t.Fatal("audit log is empty")
	}
	return recs[len(recs)-1]
}

// verifyLog runs `signstar audit verify` locally, as root.
func (e *enclave) verifyLog(t *testing.T, wantRecords int) {
	t.Helper()
	out, err := exec.Command(e.bin, "--config", e.config, "audit", "verify").CombinedOutput()
	if err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("ok: %d records", wantRecords); !strings.Contains(string(out), want) {
		t.Fatalf("audit verify said %q, want %q", out, want)
	}
}

// verifySig checks sig over data with gpgv and sqv against the enclave's
// certificate.
func (e *enclave) verifySig(t *testing.T, data, sig []byte) {
	t.Helper()
	dir := t.TempDir()
	dataPath := filepath.Join(dir, "artifact")
	sigPath := dataPath + ".sig"
	os.WriteFile(dataPath, data, 0o600)
	os.WriteFile(sigPath, sig, 0o600)

	gpg := testenv.NeedTool(t, "gpg", "gnupg")
	gpgv := testenv.NeedTool(t, "gpgv", "gpgv")
	keyring := filepath.Join(dir, "keyring.gpg")
	dearmor := exec.Command(gpg, "--batch", "--homedir", dir, "--dearmor", "--output", keyring, e.pub)
	if out, err := dearmor.CombinedOutput(); err != nil {
		t.Fatalf("gpg --dearmor: %v\n%s", err, out)
	}
	if out, err := exec.Command(gpgv, "--homedir", dir, "--keyring", keyring, sigPath, dataPath).CombinedOutput(); err != nil {
		t.Errorf("gpgv rejects the signature: %v\n%s", err, out)
	}
	sqv := testenv.NeedTool(t, "sqv", "sqv")
	if out, err := exec.Command(sqv, "--keyring", e.pub, sigPath, dataPath).CombinedOutput(); err != nil {
		t.Errorf("sqv rejects the signature: %v\n%s", err, out)
	}
}

func repoFile(t *testing.T, rel string) string {
	t.Helper()
	p, err := sshtest.RepoFile(rel)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// deployments are the README's: ForceCommand with /bin/sh as the shell,
// and ForceCommand with signstar as the login shell too. A login shell
// without ForceCommand is not one of them (TestFileTransfer shows why).
var deployments = []sshtest.Deployment{sshtest.ForceCommand, sshtest.ShellAndForceCommand}

func readFile(p string) ([]byte, error) { return os.ReadFile(p) }

// writeFile replaces the contents of p, keeping an existing file's owner
// and mode.
func writeFile(p string, data []byte) error { return os.WriteFile(p, data, 0o600) }

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// settle waits until every session sshd started since it had logged
// sessions has its audit record (signstar audits each request, and may
// finish after the client is gone), and returns the records after before.
func (e *enclave) settle(t *testing.T, before, sessions int) []audit.Record {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		started := strings.Count(e.Log(), "Starting session:") - sessions
		recs := e.records(t)
		if len(recs)-before >= started {
			if len(recs)-before > started {
				t.Errorf("%d records for %d sessions", len(recs)-before, started)
			}
			return recs[before:]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions started, only %d audit records after 30s", started, len(recs)-before)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
