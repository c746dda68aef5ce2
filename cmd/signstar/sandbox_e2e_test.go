package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"golang.org/x/sys/unix"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/sandbox"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// buildSignstar builds the real binary with the test hooks
// (hooks_testhooks.go), which ldflags may set.
func buildSignstar(t *testing.T, dir, ldflags string) string {
	t.Helper()
	bin := filepath.Join(dir, "signstar")
	cmd := exec.Command("go", "build", "-tags", "testhooks", "-o", bin, "-ldflags", ldflags, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as make build does
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// sandboxSetup writes a key file profile with the given sandbox mode and the
// gpgv keyring for it.
func sandboxSetup(t *testing.T, dir, mode string) (cfg, keyring, logPath string) {
	t.Helper()
	key, err := os.ReadFile(filepath.Join(keysDir, "ed25519.key"))
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "ed25519.key")
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(keysDir, "ed25519.pub"))
	if err != nil {
		t.Fatal(err)
	}
	block, err := armor.Decode(bytes.NewReader(pub))
	if err != nil {
		t.Fatal(err)
	}
	bin, err := io.ReadAll(block.Body)
	if err != nil {
		t.Fatal(err)
	}
	keyring = filepath.Join(dir, "pub.gpg")
	if err := os.WriteFile(keyring, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	logPath = filepath.Join(dir, "audit.jsonl")
	cfg = filepath.Join(dir, "config-"+mode+".toml")
	text := fmt.Sprintf("[audit]\npath = %q\n\n[sandbox]\nmode = %q\n\n[[profile]]\nname = \"repo\"\nbackend = \"keyfile\"\nkey = %q\nusers = [%q]\n",
		logPath, mode, keyPath, testUser())
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg, keyring, logPath
}

// signing is a real `signstar sign` reading from a pipe the test holds.
type signing struct {
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	stdout, stderr bytes.Buffer
	done           bool
}

// startSigning starts bin sign with cfg; Cleanup kills it if the test did
// not wait for it.
func startSigning(t *testing.T, bin, cfg string) *signing {
	t.Helper()
	s := &signing{cmd: exec.Command(bin, "--config", cfg, "sign")}
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !s.done {
			s.cmd.Process.Kill()
			s.cmd.Wait()
		}
	})
	return s
}

func (s *signing) wait() error {
	err := s.cmd.Wait()
	s.done = true
	return err
}

// strictestMode is enforce where this kernel can meet it, else best-effort.
func strictestMode() string {
	if sandbox.Check().CanMeet(sandbox.Enforce) {
		return sandbox.Enforce
	}
	return sandbox.BestEffort
}

func lastAuditRecord(t *testing.T, logPath string) audit.Record {
	t.Helper()
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var rec audit.Record
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

func procStatus(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// TestSandboxE2E runs the real signstar signing from a pipe held open, and
// while it waits on stdin reads /proc/PID/status (and every thread's): the
// sandbox is in force before a byte of the artifact is read. Then the
// signature verifies with gpgv and the audit record names the sandbox.
func TestSandboxE2E(t *testing.T) {
	gpgv := testenv.NeedTool(t, "gpgv", "gpgv")
	dir := t.TempDir()
	bin := buildSignstar(t, dir, "")
	cfg, keyring, logPath := sandboxSetup(t, dir, "enforce")

	s := startSigning(t, bin, cfg)
	cmd, stdin, stdout, stderr := s.cmd, s.stdin, &s.stdout, &s.stderr
	artifact := bytes.Repeat([]byte("signstar sandbox e2e\n"), 4096)
	if _, err := stdin.Write(artifact[:100]); err != nil {
		t.Fatal(err)
	}

	checkLockedDown(t, cmd.Process.Pid, logPath, false, stderr)
	if _, err := stdin.Write(artifact[100:]); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := s.wait(); err != nil {
		t.Fatalf("signstar sign: %v\n%s", err, stderr.String())
	}

	data := filepath.Join(dir, "artifact")
	sig := filepath.Join(dir, "artifact.sig")
	os.WriteFile(data, artifact, 0o644)
	os.WriteFile(sig, stdout.Bytes(), 0o644)
	if out, err := exec.Command(gpgv, "--keyring", keyring, sig, data).CombinedOutput(); err != nil {
		t.Fatalf("gpgv rejects the signature made in the sandbox: %v\n%s", err, out)
	}
	rec := lastAuditRecord(t, logPath)
	if rec.Outcome != audit.Signed || !strings.HasPrefix(rec.Sandbox, "landlock=") || strings.Contains(rec.Sandbox, "none") || !strings.HasSuffix(rec.Sandbox, ",seccomp,nnp") {
		t.Errorf("audit record: outcome %q sandbox %q", rec.Outcome, rec.Sandbox)
	}

	// A remote request (as sshd's ForceCommand starts it) also empties
	// the bounding set.
	remote := exec.Command(bin, "--config", cfg)
	remote.Env = []string{"PATH=/usr/bin:/bin", "SSH_CONNECTION=192.0.2.7 50000 192.0.2.1 22", "SSH_ORIGINAL_COMMAND=sign"}
	rin, err := remote.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var rout, rerr bytes.Buffer
	remote.Stdout, remote.Stderr = &rout, &rerr
	if err := remote.Start(); err != nil {
		t.Fatal(err)
	}
	defer remote.Process.Kill()
	rin.Write(artifact[:100])
	checkLockedDown(t, remote.Process.Pid, logPath, true, &rerr)
	rin.Write(artifact[100:])
	rin.Close()
	if err := remote.Wait(); err != nil || rout.Len() == 0 {
		t.Fatalf("remote sign: %v\n%s", err, rerr.String())
	}
}

// checkLockedDown waits until the signstar process pid has locked down
// (the filter is loaded before stdin is read) and checks every thread: no
// capability left, and with bounding the bounding set empty too; and the
// audit log's descriptors.
func checkLockedDown(t *testing.T, ipid int, logPath string, bounding bool, stderr *bytes.Buffer) {
	t.Helper()
	pid := strconv.Itoa(ipid)
	deadline := time.Now().Add(20 * time.Second)
	var st map[string]string
	for {
		st = procStatus(t, "/proc/"+pid+"/status")
		if st["Seccomp"] == "2" || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" {
		t.Fatalf("signstar waiting on stdin: NoNewPrivs %q Seccomp %q; want 1 and 2 (stderr: %s)", st["NoNewPrivs"], st["Seccomp"], stderr.String())
	}
	if n, _ := strconv.Atoi(st["Seccomp_filters"]); n < 1 {
		t.Errorf("Seccomp_filters %q, want at least 1", st["Seccomp_filters"])
	}
	tasks, err := os.ReadDir("/proc/" + pid + "/task")
	if err != nil {
		t.Fatal(err)
	}
	// Started as root (as these tests are), signstar held every
	// capability; after lock-down no thread holds any, and for a remote
	// request the bounding set is empty.
	capFields := []string{"CapInh", "CapPrm", "CapEff", "CapAmb"}
	if bounding && os.Geteuid() == 0 {
		capFields = append(capFields, "CapBnd")
	}
	for _, task := range tasks {
		ts := procStatus(t, "/proc/"+pid+"/task/"+task.Name()+"/status")
		if ts["NoNewPrivs"] != "1" || ts["Seccomp"] != "2" {
			t.Errorf("thread %s: NoNewPrivs %q Seccomp %q", task.Name(), ts["NoNewPrivs"], ts["Seccomp"])
		}
		for _, f := range capFields {
			if v, err := strconv.ParseUint(ts[f], 16, 64); err != nil || v != 0 {
				t.Errorf("thread %s: %s %q, want 0", task.Name(), f, ts[f])
			}
		}
	}
	checkLogDescriptors(t, pid, logPath)
	t.Logf("pid %s, %d threads: NoNewPrivs %s, Seccomp %s, Seccomp_filters %s", pid, len(tasks), st["NoNewPrivs"], st["Seccomp"], st["Seccomp_filters"])
}

// checkLogDescriptors: the process holds the audit log through exactly two
// descriptors, one read-only and one write-only with O_APPEND; none could
// write anywhere but at the end.
func checkLogDescriptors(t *testing.T, pid, logPath string) {
	t.Helper()
	fds, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	var modes []string
	for _, fd := range fds {
		target, err := os.Readlink("/proc/" + pid + "/fd/" + fd.Name())
		if err != nil || target != logPath {
			continue
		}
		info, err := os.ReadFile("/proc/" + pid + "/fdinfo/" + fd.Name())
		if err != nil {
			t.Fatal(err)
		}
		var flags uint64
		for _, l := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(l, "flags:"); ok {
				flags, err = strconv.ParseUint(strings.TrimSpace(v), 8, 64)
				if err != nil {
					t.Fatalf("fdinfo %s: %q", fd.Name(), l)
				}
			}
		}
		switch {
		case flags&unix.O_ACCMODE == unix.O_RDONLY:
			modes = append(modes, "read")
		case flags&unix.O_ACCMODE == unix.O_WRONLY && flags&unix.O_APPEND != 0:
			modes = append(modes, "append")
		default:
			modes = append(modes, fmt.Sprintf("flags %#o", flags))
		}
	}
	sort.Strings(modes)
	if strings.Join(modes, ",") != "append,read" {
		t.Errorf("descriptors of the audit log: %v, want one read-only and one O_WRONLY|O_APPEND", modes)
	}
}

// TestSandboxE2EWithoutLandlock: a signstar built to see a kernel without
// Landlock refuses in enforce mode (exit 1, nothing on stdout, a failed
// record), signs in best-effort mode and says in the record what was
// missing; `sandbox check` fails for enforce.
func TestSandboxE2EWithoutLandlock(t *testing.T) {
	gpgv := testenv.NeedTool(t, "gpgv", "gpgv")
	dir := t.TempDir()
	bin := buildSignstar(t, dir, "-X main.sandboxSimulate=landlock")
	artifact := []byte("signstar without landlock\n")
	data := filepath.Join(dir, "artifact")
	os.WriteFile(data, artifact, 0o644)

	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Stdin = bytes.NewReader(artifact)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), code
	}

	cfg, _, logPath := sandboxSetup(t, dir, "enforce")
	stdout, stderr, code := run("--config", cfg, "sign")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "landlock") {
		t.Errorf("enforce without landlock: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	rec := lastAuditRecord(t, logPath)
	if rec.Outcome != audit.Failed || !strings.Contains(rec.Reason, "landlock") || rec.Sandbox != "landlock=none,seccomp=none,nnp=none,fds=none" {
		t.Errorf("enforce refusal record: %+v", rec)
	}
	stdout, stderr, code = run("--config", cfg, "sandbox", "check")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "landlock: none") {
		t.Errorf("sandbox check, enforce: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	cfg, keyring, _ := sandboxSetup(t, dir, "best-effort")
	stdout, stderr, code = run("--config", cfg, "sign")
	if code != 0 {
		t.Fatalf("best-effort without landlock: exit %d: %s", code, stderr)
	}
	sig := filepath.Join(dir, "artifact.sig")
	os.WriteFile(sig, []byte(stdout), 0o644)
	if out, err := exec.Command(gpgv, "--keyring", keyring, sig, data).CombinedOutput(); err != nil {
		t.Fatalf("gpgv: %v\n%s", err, out)
	}
	rec = lastAuditRecord(t, logPath)
	if rec.Outcome != audit.Signed || rec.Sandbox != "landlock=none,seccomp,nnp" {
		t.Errorf("best-effort record: outcome %q sandbox %q", rec.Outcome, rec.Sandbox)
	}
	stdout, _, code = run("--config", cfg, "sandbox", "check")
	if code != 0 || !strings.Contains(stdout, "mode: best-effort") {
		t.Errorf("sandbox check, best-effort: exit %d, stdout %q", code, stdout)
	}

	// doctor names the mode that cannot be met, and only that mode.
	if os.Geteuid() == 0 {
		ecfg, _, _ := sandboxSetup(t, t.TempDir(), "enforce")
		_, stderr, code = run("--config", ecfg, "doctor")
		if code != 1 || !strings.Contains(stderr, `[sandbox] mode "enforce" cannot be met on this kernel (landlock`) {
			t.Errorf("doctor, enforce without landlock: exit %d, stderr %q", code, stderr)
		}
		bcfg, _, _ := sandboxSetup(t, t.TempDir(), "best-effort")
		if _, stderr, _ = run("--config", bcfg, "doctor"); strings.Contains(stderr, "[sandbox] mode") {
			t.Errorf("doctor, best-effort without landlock: %q", stderr)
		}
	}
}
