//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/backend/piv"
	"github.com/signstar/signstar/internal/testsupport/pivemu"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// TestLockdown: after Lockdown in enforce mode, a thread other than the one
// that locked down cannot open, create, exec, connect, bind, ptrace or
// signal; the signing path (stdin, hash, key file signer, audit log) still
// works; inherited descriptors are gone; both threads show no_new_privs and a
// seccomp filter.
func TestLockdown(t *testing.T) {
	if !inChild(t) {
		fx := newFixture(t)
		out := runChild(t, fx)
		checkSigned(t, fx, out, marker(t, out, "REPORT"))
		if r := marker(t, out, "REPORT"); !strings.HasPrefix(r, "landlock=") || !strings.HasSuffix(r, ",seccomp,nnp") || strings.Contains(r, "none") {
			t.Errorf("report %q: want landlock=N,seccomp,nnp", r)
		}
		if _, err := os.Stat(fx.dir + "/created-0"); err == nil {
			t.Error("the child created a file")
		}
		return
	}
	fx := childFixture()
	p := prepare(t, fx)
	checkStatus(t, p.status, "0", "0")
	tryAll(t, p, fx, false, nil)
	tryHeld(t, p, logAttempts, false)
	tryHeld(t, p, capAttempts, false)

	r, err := p.lockdown(t, Options{Mode: Enforce, KeepOwnSockets: true, BoundingSet: true})
	if err != nil {
		t.Fatalf("Lockdown: %v", err)
	}
	p.checkConn(t)
	if len(r.Missing) != 0 || !r.FDsClosed {
		t.Errorf("enforce report: %+v", r)
	}
	fmt.Printf("REPORT=%s\n", r)

	tryAll(t, p, fx, true, map[string]unix.Errno{
		// seccomp answers first, with EPERM, not a kill.
		"open file for reading": unix.EPERM, "create file": unix.EPERM,
		"connect TCP to 127.0.0.1": unix.EPERM, "ptrace parent": unix.EPERM,
	})
	tryHeld(t, p, logAttempts, true)
	tryHeld(t, p, capAttempts, true)
	checkNoCaps(t, p.status, p)
	checkNoCaps(t, p.wStatus, p)
	p.checkInheritedClosed(t)
	checkStatus(t, p.status, "2", "1")
	checkStatus(t, p.wStatus, "2", "1")
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur != DefaultMaxFDs || rl.Max != DefaultMaxFDs {
		t.Errorf("RLIMIT_NOFILE %+v, %v; want %d", rl, err, DefaultMaxFDs)
	}
	signAndAudit(t, p, r.String())
}

// TestLockdownAgent: the same lock-down with the key in a real gpg-agent,
// reached over the socket connected before lock-down; the signature made
// under the sandbox verifies against the certificate.
func TestLockdownAgent(t *testing.T) {
	if !inChild(t) {
		fx := newFixture(t)
		fx.agent = startAgent(t, filepath.Join(keysDir, "ed25519.key"))
		fx.certPath = filepath.Join(keysDir, "ed25519.pub")
		out := runChild(t, fx)
		checkSigned(t, fx, out, "landlock="+strconv.Itoa(Check().LandlockABI)+",seccomp,nnp")
		return
	}
	fx := childFixture()
	p := prepare(t, fx)
	r, err := p.lockdown(t, Options{Mode: Enforce, KeepOwnSockets: true, BoundingSet: true})
	if err != nil {
		t.Fatalf("Lockdown: %v", err)
	}
	tryAll(t, p, fx, true, nil)
	tryHeld(t, p, logAttempts, true)
	tryHeld(t, p, capAttempts, true)
	signAndAudit(t, p, r.String())
}

// TestLockdownPIV: the same with the key on a PIV card (the repository's
// emulator in the vpcd reader of a real pcscd), reached through libpcsclite's
// socket connected before lock-down.
func TestLockdownPIV(t *testing.T) {
	if !inChild(t) {
		fx := newFixture(t)
		pivemu.Start(t, pivemu.NewCard(pivemu.Options{}))
		fx.pivPIN = filepath.Join(fx.dir, "pin")
		if err := os.WriteFile(fx.pivPIN, []byte(pivemu.DefaultPIN+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cert, err := piv.Setup(piv.SetupOptions{Reader: "Virtual PCD", Slot: "9c", UID: "Sandbox Card <card@example.org>",
			Generate: "ecc-p256", PINFile: fx.pivPIN, Now: time.Now().Add(-time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fx.certPath, cert, 0o644); err != nil {
			t.Fatal(err)
		}
		out := runChild(t, fx)
		checkSigned(t, fx, out, "landlock="+strconv.Itoa(Check().LandlockABI)+",seccomp,nnp")
		return
	}
	fx := childFixture()
	p := prepare(t, fx)
	r, err := p.lockdown(t, Options{Mode: Enforce, KeepOwnSockets: true, BoundingSet: true})
	if err != nil {
		t.Fatalf("Lockdown: %v", err)
	}
	tryAll(t, p, fx, true, nil)
	signAndAudit(t, p, r.String())
}

// keysDir holds the repository's test keys.
var keysDir, _ = filepath.Abs("../../testdata/keys")

// startAgent starts a real gpg-agent in a throw-away home under /tmp (socket
// paths are short), imports the secret key, and returns the agent socket.
// The agent is killed when the test ends.
func startAgent(t *testing.T, secretKey string) string {
	t.Helper()
	for _, tool := range []string{"gpg", "gpg-agent", "gpgconf"} {
		testenv.NeedTool(t, tool, map[string]string{"gpg": "gnupg", "gpg-agent": "gpg-agent", "gpgconf": "gpgconf"}[tool])
	}
	home, err := os.MkdirTemp("/tmp", "sbx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	os.Chmod(home, 0o700)
	// Output to files, not pipes: the daemon would hold a pipe open and
	// the wait for its end would never return.
	run := func(name string, args ...string) string {
		out, err := os.CreateTemp(home, "out")
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		cmd.Stdout, cmd.Stderr = out, out
		err = cmd.Run()
		data, _ := os.ReadFile(out.Name())
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, data)
		}
		return string(data)
	}
	run("gpg-agent", "--homedir", home, "--daemon")
	run("gpg", "--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--import", secretKey)
	return strings.TrimSpace(run("gpgconf", "--homedir", home, "--list-dirs", "agent-socket"))
}

// TestLandlockAlone proves Landlock on its own (seccomp simulated absent,
// best-effort): the denials come from Landlock (EACCES for files, exec and
// TCP, EPERM for scoped abstract sockets, signals and ptrace).
func TestLandlockAlone(t *testing.T) {
	if !inChild(t) {
		if Check().LandlockABI < MinLandlockABI {
			testenv.Missing(t, fmt.Sprintf("this kernel has Landlock ABI %d", Check().LandlockABI))
		}
		fx := newFixture(t)
		out := runChild(t, fx)
		checkSigned(t, fx, out, marker(t, out, "REPORT"))
		if r := marker(t, out, "REPORT"); !strings.HasPrefix(r, "landlock=") || !strings.HasSuffix(r, ",seccomp=none,nnp") {
			t.Errorf("report %q", r)
		}
		return
	}
	fx := childFixture()
	p := prepare(t, fx)
	r, err := p.lockdown(t, Options{Mode: BestEffort, Simulate: Seccomp, BoundingSet: true})
	if err != nil {
		t.Fatalf("Lockdown: %v", err)
	}
	if len(r.Missing) != 1 || r.Missing[0].Part != "seccomp" {
		t.Errorf("missing %v; want seccomp only", r.Missing)
	}
	fmt.Printf("REPORT=%s\n", r)
	eacces, eperm := unix.EACCES, unix.EPERM
	var pathUnix []attempt
	for _, a := range attempts {
		// Landlock restricts connecting to pathname UNIX sockets only from
		// ABI 9; seccomp (no socket(2)) covers it in the full sandbox.
		if a.name == "connect UNIX socket" && Check().LandlockABI < 9 {
			continue
		}
		pathUnix = append(pathUnix, a)
	}
	saved := attempts
	attempts = pathUnix
	defer func() { attempts = saved }()
	tryAll(t, p, fx, true, map[string]unix.Errno{
		"open file for reading": eacces, "create file": eacces, "fork and exec /bin/sh": eacces,
		"connect TCP to 127.0.0.1": eacces, "bind TCP": eacces,
		"connect abstract UNIX socket": eperm, "ptrace parent": eperm, "signal parent": eperm,
	})
	checkStatus(t, p.status, "0", "1")
	checkStatus(t, p.wStatus, "0", "1")
	// Without seccomp, what stops a rewrite of the log is the access mode
	// of its two descriptors (and chattr +a); capabilities are dropped in
	// every mode.
	var byMode []heldAttempt
	for _, a := range logAttempts {
		if strings.HasPrefix(a.name, "map a descriptor of the audit log or its index shared and writable") || strings.HasPrefix(a.name, "write through") {
			byMode = append(byMode, a)
		}
	}
	tryHeld(t, p, byMode, true)
	tryHeld(t, p, capAttempts, true)
	checkNoCaps(t, p.status, p)
	checkNoCaps(t, p.wStatus, p)
	signAndAudit(t, p, r.String())
}

// TestCapsWithoutBoundingSet: a lock-down that leaves the bounding set
// (cmd/signstar's for local requests) still empties every other set on every
// thread and locks the securebits, so that nothing can be raised again:
// capset and unshare fail from a thread created afterwards. Seccomp is
// simulated absent so that the calls reach the capability checks.
func TestCapsWithoutBoundingSet(t *testing.T) {
	if !inChild(t) {
		runChild(t, newFixture(t))
		return
	}
	fx := childFixture()
	p := prepare(t, fx)
	if _, err := p.lockdown(t, Options{Mode: BestEffort, Simulate: Seccomp}); err != nil {
		t.Fatalf("Lockdown: %v", err)
	}
	tryHeld(t, p, capAttempts, true)
	checkNoCaps(t, p.status, p)
	checkNoCaps(t, p.wStatus, p)
	if p.caps.effective&(1<<unix.CAP_SETPCAP) != 0 {
		if v, err := unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0); err != nil || v != lockedSecurebits {
			t.Errorf("securebits %#x, %v; want %#x", v, err, lockedSecurebits)
		}
		if st := procStatus(t, p.status); st["CapBnd"] == "0000000000000000" {
			t.Errorf("the bounding set was emptied without BoundingSet")
		}
	} else {
		t.Logf("not run as root: no capabilities to drop")
	}
}

// TestEnforceWithoutLandlock: enforce on a kernel without Landlock refuses
// with a typed error naming it and applies nothing; signstar then writes a
// failed record (the log is still writable).
func TestEnforceWithoutLandlock(t *testing.T) {
	if !inChild(t) {
		fx := newFixture(t)
		runChild(t, fx)
		rec := lastRecord(t, fx)
		if rec.Outcome != audit.Failed || !strings.Contains(rec.Reason, "landlock") || rec.Sandbox != "landlock=none,seccomp=none,nnp=none,fds=none" {
			t.Errorf("record: %+v", rec)
		}
		return
	}
	fx := childFixture()
	p := prepare(t, fx)
	r, err := p.lockdown(t, Options{Mode: Enforce, Simulate: Landlock})
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("Lockdown: %v, want *Error", err)
	}
	if got := se.Parts(); len(got) != 1 || got[0] != "landlock" {
		t.Errorf("missing parts %v, want [landlock]", got)
	}
	checkStatus(t, p.status, "0", "0")
	p.w.run(func() {
		if f, err := os.Open(fx.secret); err != nil {
			t.Errorf("refused Lockdown still restricted the process: %v", err)
		} else {
			f.Close()
		}
	})
	rec := &audit.Record{
		Time: time.Now().UTC().Format(audit.TimeFormat), User: "test", Command: "sign",
		Outcome: audit.Failed, Reason: err.Error(), Sandbox: r.String(),
	}
	if err := p.log.Append(rec); err != nil {
		t.Fatal(err)
	}
}

// TestBestEffortWithoutLandlock: best-effort on a kernel without Landlock
// signs under seccomp alone, and the record says what was missing.
func TestBestEffortWithoutLandlock(t *testing.T) {
	const want = "landlock=none,seccomp,nnp"
	if !inChild(t) {
		fx := newFixture(t)
		out := runChild(t, fx)
		checkSigned(t, fx, out, want)
		return
	}
	fx := childFixture()
	p := prepare(t, fx)
	r, err := p.lockdown(t, Options{Mode: BestEffort, Simulate: Landlock})
	if err != nil {
		t.Fatalf("Lockdown: %v", err)
	}
	// Without KeepOwnSockets the connection is closed like any other
	// descriptor not kept.
	p.w.run(func() {
		if _, err := p.conn.Write([]byte("x")); err == nil {
			t.Error("a socket not kept survived Lockdown")
		}
	})
	if r.String() != want || len(r.Missing) != 1 || r.Missing[0].Part != "landlock" {
		t.Errorf("report %q, missing %v", r, r.Missing)
	}
	tryAll(t, p, fx, true, nil)
	tryHeld(t, p, logAttempts, true)
	tryHeld(t, p, capAttempts, true)
	checkNoCaps(t, p.wStatus, p)
	p.checkInheritedClosed(t)
	checkStatus(t, p.wStatus, "2", "1")
	signAndAudit(t, p, r.String())
}

// TestHarden: no core file, not dumpable.
func TestHarden(t *testing.T) {
	if !inChild(t) {
		runChild(t, newFixture(t))
		return
	}
	if err := Harden(); err != nil {
		t.Fatal(err)
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &rl); err != nil || rl.Cur != 0 || rl.Max != 0 {
		t.Errorf("RLIMIT_CORE %+v, %v", rl, err)
	}
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
		t.Errorf("dumpable %d, %v", d, err)
	}
	// Harden leaves admin work possible: files open, programs run.
	if err := exec.Command("/bin/sh", "-c", "exit 0").Run(); err != nil {
		t.Errorf("after Harden, running a program: %v", err)
	}
}

func TestCheck(t *testing.T) {
	c := Check()
	abi, _ := strconv.Atoi(strings.Fields(c.String())[2])
	if c.LandlockABI > 0 && abi != c.LandlockABI {
		t.Errorf("String does not show ABI %d:\n%s", c.LandlockABI, c)
	}
	if c.Enforceable() != (c.LandlockABI >= MinLandlockABI && c.Seccomp && c.TSync && c.SeccompActions && c.SeccompArch != "" && c.NoNewPrivs && c.ProcFD) {
		t.Errorf("Enforceable %v for %+v", c.Enforceable(), c)
	}
	if !c.CanMeet(BestEffort) || c.CanMeet("off") {
		t.Error("CanMeet")
	}
	t.Logf("\n%s", c)

	for _, sim := range []struct {
		parts Parts
		names []string
	}{{Landlock, []string{"landlock"}}, {Seccomp, []string{"seccomp"}}, {Landlock | Seccomp, []string{"landlock", "seccomp"}}} {
		c := probe(sim.parts)
		var got []string
		for _, m := range c.Missing {
			got = append(got, m.Part)
		}
		if strings.Join(got, ",") != strings.Join(sim.names, ",") || c.CanMeet(Enforce) {
			t.Errorf("simulated %v: missing %v", sim.parts, got)
		}
		if !strings.Contains(c.String(), "enforce: cannot be met: "+sim.names[0]) {
			t.Errorf("simulated %v:\n%s", sim.parts, c)
		}
	}
}

func TestReportString(t *testing.T) {
	for _, tc := range []struct {
		r    Report
		want string
	}{
		{Report{LandlockABI: 7, Seccomp: true, NoNewPrivs: true, FDsClosed: true}, "landlock=7,seccomp,nnp"},
		{Report{Seccomp: true, NoNewPrivs: true, FDsClosed: true}, "landlock=none,seccomp,nnp"},
		{Report{LandlockABI: 6, NoNewPrivs: true, FDsClosed: true}, "landlock=6,seccomp=none,nnp"},
		{Report{LandlockABI: 7, Seccomp: true, NoNewPrivs: true}, "landlock=7,seccomp,nnp,fds=none"},
		{Report{}, "landlock=none,seccomp=none,nnp=none,fds=none"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestBadMode(t *testing.T) {
	// Refused before anything is applied, so safe in the test process.
	_, err := Lockdown(Options{Mode: "off"})
	var se *Error
	if !errors.As(err, &se) || se.Parts()[0] != "mode" {
		t.Fatalf("Lockdown(off): %v", err)
	}
}
