//go:build linux

package sandbox

// The harness for tests that lock a process down. The test process itself is
// never sandboxed: each such test re-executes the test binary with
// -test.run naming itself and childEnv set, and the child does the work (the
// model is go-landlock's lltest.RunInSubprocess).

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"golang.org/x/sys/unix"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/backend/agent"
	"github.com/signstar/signstar/internal/backend/keyfile"
	"github.com/signstar/signstar/internal/backend/piv"
	"github.com/signstar/signstar/internal/signer"
)

const childEnv = "SIGNSTAR_SANDBOX_CHILD"

// inChild reports whether this process is the re-executed child of t.
func inChild(t testing.TB) bool { return os.Getenv(childEnv) == t.Name() }

// fixture is what the parent prepares for a child: files, peers to reach,
// a secret key. The child finds it through SB_* environment variables.
type fixture struct {
	dir      string
	secret   string // a readable file
	keyPath  string
	certPath string
	logPath  string
	tcpAddr  string // a listener the parent runs
	unixPath string
	abstract string
	data     []byte // the artifact piped to the child's stdin
	extra    *os.File
	agent    string // the gpg-agent socket, when the key is in an agent
	pivPIN   string // the PIN file, when the key is on a (virtual) PIV card
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	fx := &fixture{
		dir:      dir,
		secret:   filepath.Join(dir, "secret"),
		keyPath:  filepath.Join(dir, "key.asc"),
		certPath: filepath.Join(dir, "cert.asc"),
		logPath:  filepath.Join(dir, "audit.jsonl"),
		unixPath: filepath.Join(dir, "s.sock"),
		abstract: fmt.Sprintf("@signstar-sandbox-test-%d-%d", os.Getpid(), time.Now().UnixNano()),
		data:     bytes.Repeat([]byte("signstar artifact\n"), 50000),
	}
	if err := os.WriteFile(fx.secret, []byte("not for the sandbox\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := openpgp.NewEntity("Sandbox Test", "", "sandbox@example.org", &packet.Config{
		Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519,
	})
	if err != nil {
		t.Fatal(err)
	}
	var sec, pub bytes.Buffer
	w, _ := armor.Encode(&sec, openpgp.PrivateKeyType, nil)
	if err := e.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w, _ = armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := os.WriteFile(fx.keyPath, sec.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.certPath, pub.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, l := range []struct{ network, addr string }{
		{"tcp", "127.0.0.1:0"}, {"unix", fx.unixPath}, {"unix", fx.abstract},
	} {
		ln, err := net.Listen(l.network, l.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		if l.network == "tcp" {
			fx.tcpAddr = ln.Addr().String()
		}
		// Each connection is echoed back: a stand-in for a backend
		// socket connected before lock-down.
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(c, c); c.Close() }()
			}
		}()
	}
	// An inherited descriptor (fd 3 in the child) that Harden must close.
	fx.extra, err = os.Open(fx.secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fx.extra.Close() })
	return fx
}

func (fx *fixture) env() []string {
	return []string{
		"SB_DIR=" + fx.dir, "SB_SECRET=" + fx.secret, "SB_KEY=" + fx.keyPath,
		"SB_LOG=" + fx.logPath, "SB_TCP=" + fx.tcpAddr, "SB_UNIX=" + fx.unixPath,
		"SB_ABSTRACT=" + fx.abstract, "SB_CERT=" + fx.certPath, "SB_AGENT=" + fx.agent, "SB_PIV_PIN=" + fx.pivPIN,
	}
}

func childFixture() *fixture {
	return &fixture{
		dir: os.Getenv("SB_DIR"), secret: os.Getenv("SB_SECRET"), keyPath: os.Getenv("SB_KEY"),
		logPath: os.Getenv("SB_LOG"), tcpAddr: os.Getenv("SB_TCP"), unixPath: os.Getenv("SB_UNIX"),
		abstract: os.Getenv("SB_ABSTRACT"), certPath: os.Getenv("SB_CERT"), agent: os.Getenv("SB_AGENT"), pivPIN: os.Getenv("SB_PIV_PIN"),
	}
}

// runChild re-executes the test binary for t alone and returns its output.
// The child's verdict is its exit status and its "--- PASS" line.
func runChild(t *testing.T, fx *fixture) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(append(os.Environ(), childEnv+"="+t.Name()), fx.env()...)
	cmd.Stdin = bytes.NewReader(fx.data)
	cmd.ExtraFiles = []*os.File{fx.extra}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child failed: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("child did not pass:\n%s", out)
	}
	t.Logf("child:\n%s", out)
	return string(out)
}

// marker finds "KEY=value" printed by the child.
func marker(t *testing.T, out, key string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	t.Fatalf("child printed no %s:\n%s", key, out)
	return ""
}

// prepared is what a child opens before lock-down, as signstar does.
type prepared struct {
	log      *audit.Log
	key      *backend.Key
	status   *os.File // /proc/self/status
	inherit  uint64   // inode of the inherited fd 3
	forgot   int      // a descriptor the program opened and did not keep
	forgotI  uint64   // its inode
	w        *worker
	wStatus  *os.File // /proc/thread-self/status of the worker thread
	lockTID  int
	keepFDs  []int
	conn     net.Conn     // connected before lock-down, like a backend socket
	caps     capState     // before lock-down
	threads  map[int]bool // the threads there were when Lockdown was called
	bounding bool         // Lockdown was asked to empty the bounding set
}

// lockdown calls Lockdown with the prepared descriptors (the audit log's
// write one as append-only) and notes the threads there were, so that
// freshThread can find one created afterwards.
func (p *prepared) lockdown(t *testing.T, opts Options) (Report, error) {
	t.Helper()
	p.threads = threadIDs(t)
	opts.KeepFDs = p.keepFDs
	opts.AppendFDs = p.log.AppendFDs()
	p.bounding = opts.BoundingSet
	return Lockdown(opts)
}

func threadIDs(t *testing.T) map[int]bool {
	t.Helper()
	d, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[int]bool{}
	for _, e := range d {
		id, err := strconv.Atoi(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	return ids
}

// freshThread is a worker on an OS thread that did not exist when Lockdown
// was called: what the sandbox does to it, it did to threads the runtime
// creates later. Workers that land on an older thread are parked until a
// new one comes, then let go (their threads exit).
func (p *prepared) freshThread(t *testing.T) *worker {
	t.Helper()
	var parked []*worker
	defer func() {
		for _, w := range parked {
			close(w.jobs)
		}
	}()
	for i := 0; i < 64; i++ {
		w := startWorker()
		if !p.threads[w.tid] && w.tid != p.w.tid && w.tid != p.lockTID {
			return w
		}
		parked = append(parked, w)
	}
	t.Fatal("no OS thread created after lock-down")
	return nil
}

func prepare(t *testing.T, fx *fixture) *prepared {
	t.Helper()
	p := &prepared{}
	var st unix.Stat_t
	if err := unix.Fstat(3, &st); err != nil {
		t.Fatalf("inherited fd 3: %v", err)
	}
	p.inherit = st.Ino
	if err := Harden(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(3, &st); err == nil && st.Ino == p.inherit {
		t.Fatal("Harden left the inherited descriptor 3 open")
	}
	// One the program opened itself and forgot: Lockdown closes it. A raw
	// descriptor, so that no finalizer closes it first.
	var err error
	if p.forgot, err = unix.Open(fx.secret, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(p.forgot, &st); err != nil {
		t.Fatal(err)
	}
	p.forgotI = st.Ino
	if p.log, err = audit.Open(fx.logPath); err != nil {
		t.Fatal(err)
	}
	switch {
	case fx.agent != "":
		p.key, err = agent.Open(agent.Options{Cert: fx.certPath, Socket: fx.agent}, time.Now())
	case fx.pivPIN != "":
		p.key, err = piv.Open(piv.Options{Cert: fx.certPath, Reader: "Virtual PCD", Slot: "9c", PINFile: fx.pivPIN}, time.Now())
	default:
		p.key, err = keyfile.Open(keyfile.Options{Key: fx.keyPath}, time.Now())
	}
	if err != nil {
		t.Fatal(err)
	}
	if p.status, err = os.Open("/proc/self/status"); err != nil {
		t.Fatal(err)
	}
	// The worker thread exists before lock-down: what it cannot do
	// afterwards proves the sandbox reached threads other than the
	// locking one.
	p.w = startWorker()
	p.w.run(func() { p.wStatus, err = os.Open("/proc/thread-self/status") })
	if err != nil {
		t.Fatal(err)
	}
	p.keepFDs = append(p.log.FDs(), int(p.status.Fd()), int(p.wStatus.Fd()))
	if p.caps, err = readCaps(); err != nil {
		t.Fatal(err)
	}
	if p.conn, err = net.Dial("unix", fx.unixPath); err != nil {
		t.Fatal(err)
	}
	// Lock down from this goroutine's own thread, pinned so its tid
	// means something.
	runtime.LockOSThread()
	p.lockTID = unix.Gettid()
	if p.lockTID == p.w.tid {
		t.Fatal("worker and locking goroutine share a thread")
	}
	return p
}

// checkInheritedClosed: fd 3 and the forgotten descriptor are closed, or
// now name something else.
func (p *prepared) checkInheritedClosed(t *testing.T) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(3, &st); err == nil && st.Ino == p.inherit {
		t.Errorf("inherited descriptor 3 is still open after lock-down")
	}
	if err := unix.Fstat(p.forgot, &st); err == nil && st.Ino == p.forgotI {
		t.Errorf("descriptor %d, opened and not kept, is still open after lock-down", p.forgot)
	}
}

// checkConn: the socket connected before lock-down still carries data
// both ways (Options.KeepOwnSockets kept it).
func (p *prepared) checkConn(t *testing.T) {
	t.Helper()
	p.w.run(func() {
		msg := []byte("assuan: SIGKEY\n")
		buf := make([]byte, len(msg))
		p.conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := p.conn.Write(msg); err != nil {
			t.Errorf("backend socket after lock-down: write: %v", err)
			return
		}
		if _, err := io.ReadFull(p.conn, buf); err != nil || !bytes.Equal(buf, msg) {
			t.Errorf("backend socket after lock-down: read %q, %v", buf, err)
		}
	})
}

// worker is a goroutine pinned to its own OS thread.
type worker struct {
	tid  int
	jobs chan func()
	done chan struct{}
}

func startWorker() *worker {
	w := &worker{jobs: make(chan func()), done: make(chan struct{})}
	ready := make(chan int)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ready <- unix.Gettid()
		for f := range w.jobs {
			f()
			w.done <- struct{}{}
		}
	}()
	w.tid = <-ready
	return w
}

func (w *worker) run(f func()) { w.jobs <- f; <-w.done }

// attempt is one thing the sandbox must stop.
type attempt struct {
	name string
	do   func(fx *fixture) error
}

var attempts = []attempt{
	{"open file for reading", func(fx *fixture) error {
		f, err := os.Open(fx.secret)
		if err == nil {
			f.Close()
		}
		return err
	}},
	{"create file", func(fx *fixture) error {
		f, err := os.Create(filepath.Join(fx.dir, fmt.Sprintf("created-%d", os.Getpid())))
		if err == nil {
			f.Close()
		}
		return err
	}},
	{"fork and exec /bin/sh", func(fx *fixture) error {
		// Standard streams given as open files, so that os/exec does not
		// need to open /dev/null and the attempt reaches fork and exec.
		cmd := exec.Command("/bin/sh", "-c", "exit 0")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr, os.Stderr
		return cmd.Run()
	}},
	{"connect TCP to 127.0.0.1", func(fx *fixture) error {
		ap, err := net.ResolveTCPAddr("tcp", fx.tcpAddr)
		if err != nil {
			return fmt.Errorf("test bug: %v", err)
		}
		return rawSocket(unix.AF_INET, func(fd int) error {
			return unix.Connect(fd, &unix.SockaddrInet4{Port: ap.Port, Addr: [4]byte{127, 0, 0, 1}})
		})
	}},
	{"bind TCP", func(fx *fixture) error {
		return rawSocket(unix.AF_INET, func(fd int) error {
			return unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
		})
	}},
	{"connect UNIX socket", func(fx *fixture) error {
		return rawSocket(unix.AF_UNIX, func(fd int) error {
			return unix.Connect(fd, &unix.SockaddrUnix{Name: fx.unixPath})
		})
	}},
	{"connect abstract UNIX socket", func(fx *fixture) error {
		return rawSocket(unix.AF_UNIX, func(fd int) error {
			return unix.Connect(fd, &unix.SockaddrUnix{Name: fx.abstract})
		})
	}},
	{"ptrace parent", func(fx *fixture) error {
		ppid := os.Getppid()
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(ppid), 0, 0, 0, 0)
		if e != 0 {
			return e
		}
		unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(ppid), 0, 0, 0, 0)
		return nil
	}},
	{"signal parent", func(fx *fixture) error { return unix.Kill(os.Getppid(), 0) }},
	// The log is empty until signAndAudit, so the control truncates
	// nothing.
	{"open the audit log with O_TRUNC", func(fx *fixture) error {
		fd, err := unix.Open(fx.logPath, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}},
	// The index holds its header only: the control truncates that, so it
	// writes it back (the bytes audit.Open wrote).
	{"open the audit index with O_TRUNC", func(fx *fixture) error {
		idx := audit.IndexPath(fx.logPath)
		head, rerr := os.ReadFile(idx)
		fd, err := unix.Open(idx, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
		if err == nil {
			if rerr == nil {
				unix.Write(fd, head)
			}
			unix.Close(fd)
		}
		return err
	}},
}

func rawSocket(domain int, f func(fd int) error) error {
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return f(fd)
}

// execShell replaces the process with sh; it only returns on failure (if it
// succeeded, the child would exit 42 and the parent would see it).
func execShell() error {
	return syscall.Exec("/bin/sh", []string{"sh", "-c", "exit 42"}, nil)
}

// tryAll runs every attempt on the worker thread. Before lock-down
// (mustFail false) each must succeed, which shows the later failures are the
// sandbox's doing; after it each must fail, with the errno in wantErrno when
// one is given, and exec of /bin/sh is tried too.
func tryAll(t *testing.T, p *prepared, fx *fixture, mustFail bool, wantErrno map[string]unix.Errno) {
	t.Helper()
	tryAllOn(t, p.w, p, fx, mustFail, wantErrno)
	if mustFail {
		w := p.freshThread(t)
		t.Logf("again from thread %d, created after lock-down", w.tid)
		tryAllOn(t, w, p, fx, mustFail, wantErrno)
	}
}

func tryAllOn(t *testing.T, w *worker, p *prepared, fx *fixture, mustFail bool, wantErrno map[string]unix.Errno) {
	t.Helper()
	w.run(func() {
		if tid := unix.Gettid(); tid == p.lockTID {
			t.Errorf("attempts run on the locking thread %d", tid)
		}
		for _, a := range attempts {
			err := a.do(fx)
			switch {
			case !mustFail && err != nil:
				if a.name == "ptrace parent" && errors.Is(err, unix.EPERM) {
					t.Logf("control: ptrace of the parent is refused here even without the sandbox")
					continue
				}
				t.Errorf("control, before lock-down: %s: %v", a.name, err)
			case mustFail && err == nil:
				t.Errorf("after lock-down, on thread %d: %s succeeded", unix.Gettid(), a.name)
			case mustFail:
				if want, ok := wantErrno[a.name]; ok && !errors.Is(err, want) {
					t.Errorf("after lock-down: %s: got %v, want %v", a.name, err, want)
				}
				t.Logf("denied: %s: %v", a.name, err)
			}
		}
		if mustFail {
			err := execShell()
			if err == nil {
				t.Errorf("exec /bin/sh returned no error")
			} else {
				t.Logf("denied: exec /bin/sh: %v", err)
			}
		}
	})
}

// procStatus reads a status file through a descriptor opened before
// lock-down and returns its fields.
func procStatus(t *testing.T, f *os.File) map[string]string {
	t.Helper()
	buf := make([]byte, 8192)
	n, err := f.ReadAt(buf, 0)
	if err != nil && n == 0 {
		t.Fatalf("read %s: %v", f.Name(), err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(buf[:n]), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

func checkStatus(t *testing.T, f *os.File, seccompMode, nnp string) {
	t.Helper()
	st := procStatus(t, f)
	if st["Seccomp"] != seccompMode || st["NoNewPrivs"] != nnp {
		t.Errorf("%s: Seccomp %q NoNewPrivs %q, want %q and %q", f.Name(), st["Seccomp"], st["NoNewPrivs"], seccompMode, nnp)
	}
	if seccompMode == "2" {
		if n, _ := strconv.Atoi(st["Seccomp_filters"]); n < 1 {
			t.Errorf("%s: Seccomp_filters %q", f.Name(), st["Seccomp_filters"])
		}
	}
}

// signAndAudit is the signing path after lock-down: read stdin through one
// hash pass, sign, append the audit record, print the signature.
func signAndAudit(t *testing.T, p *prepared, sandbox string) {
	t.Helper()
	in, err := signer.Read(os.Stdin, crypto.SHA256, 0, nil)
	if err != nil {
		t.Fatalf("read stdin under the sandbox: %v", err)
	}
	// One time for both: audit verify wants the signature made in the
	// record's second.
	now := time.Now()
	sig, err := signer.Sign(in, p.key, now)
	if err != nil {
		t.Fatalf("sign under the sandbox: %v", err)
	}
	rec := &audit.Record{
		Time: now.UTC().Format(audit.TimeFormat), User: "test", Command: "sign",
		Profile: "test", Outcome: audit.Signed, Size: in.Size, Digest: in.DigestString(),
		Key: backend.Fingerprint(p.key.Public), Signature: base64.StdEncoding.EncodeToString(sig),
		Sandbox: sandbox,
	}
	if err := p.log.Append(rec); err != nil {
		t.Fatalf("audit under the sandbox: %v", err)
	}
	fmt.Printf("SIG=%x\n", sig)
}

// checkSigned verifies, in the parent, the signature the child printed and
// the audit record it wrote.
func checkSigned(t *testing.T, fx *fixture, out, wantSandbox string) {
	t.Helper()
	sig := marker(t, out, "SIG")
	raw, err := hex.DecodeString(sig)
	if err != nil {
		t.Fatal(err)
	}
	certData, err := os.ReadFile(fx.certPath)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(certData))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openpgp.CheckDetachedSignature(kr, bytes.NewReader(fx.data), bytes.NewReader(raw), nil); err != nil {
		t.Errorf("signature made under the sandbox does not verify: %v", err)
	}
	rec := lastRecord(t, fx)
	if rec.Outcome != audit.Signed || rec.Sandbox != wantSandbox || rec.Size != int64(len(fx.data)) {
		t.Errorf("audit record: outcome %q sandbox %q size %d; want signed, %q, %d", rec.Outcome, rec.Sandbox, rec.Size, wantSandbox, len(fx.data))
	}
}

func lastRecord(t *testing.T, fx *fixture) *audit.Record {
	t.Helper()
	f, err := os.Open(fx.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := audit.Verify(f); err != nil || n != 1 {
		t.Fatalf("audit log: %d records, %v; want 1 good record", n, err)
	}
	l, err := audit.Open(fx.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tx, err := l.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Unlock()
	var last *audit.Record
	tx.Scan(func(r *audit.Record) bool { last = r; return false })
	if last == nil {
		t.Fatal("audit log is empty")
	}
	return last
}

// heldAttempt is one thing the sandbox must stop that works on what the
// process holds (the audit log's descriptors, its capabilities) rather than
// on something it would open. control attempts change nothing when they
// succeed and are tried before lock-down too, where they must succeed; the
// others would damage the log and are tried only after.
type heldAttempt struct {
	name    string
	control bool
	do      func(p *prepared) error
}

// logFDs are the read and write descriptors of the audit log and of its
// index (audit.Log.FDs: log read, log write, index read, index write).
func (p *prepared) logFDs() [][2]int {
	fds := p.log.FDs()
	return [][2]int{{fds[0], fds[1]}, {fds[2], fds[3]}}
}

// onEach runs do on the read and write descriptors of the log and of its
// index; it returns nil as soon as one succeeds (an escape), else the
// errors.
func (p *prepared) onEach(do func(r, w int) error) error {
	var errs []error
	for _, f := range p.logFDs() {
		err := do(f[0], f[1])
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("fds %d/%d: %w", f[0], f[1], err))
	}
	return errors.Join(errs...)
}

func logSize(fd int) int64 {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return -1
	}
	return st.Size
}

// logAttempts would rewrite the audit log through the descriptors held. The
// seccomp filter stops them (Options.AppendFDs); Landlock cannot, since it
// checks files when they are opened.
var logAttempts = []heldAttempt{
	{"ftruncate the audit log or its index", true, func(p *prepared) error {
		return p.onEach(func(r, w int) error { return unix.Ftruncate(w, logSize(w)) })
	}},
	{"fallocate past the end of the audit log or its index", true, func(p *prepared) error {
		return p.onEach(func(r, w int) error { return unix.Fallocate(w, unix.FALLOC_FL_KEEP_SIZE, logSize(w), 4096) })
	}},
	{"punch a hole in the audit log or its index", false, func(p *prepared) error {
		return p.onEach(func(r, w int) error {
			return unix.Fallocate(w, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 1)
		})
	}},
	{"clear O_APPEND on the audit log or its index with fcntl F_SETFL", true, func(p *prepared) error {
		return p.onEach(func(r, w int) error {
			fl, err := unix.FcntlInt(uintptr(w), unix.F_GETFL, 0)
			if err != nil {
				return fmt.Errorf("test bug: F_GETFL: %v", err)
			}
			if _, err := unix.FcntlInt(uintptr(w), unix.F_SETFL, fl&^unix.O_APPEND); err != nil {
				return err
			}
			now, _ := unix.FcntlInt(uintptr(w), unix.F_GETFL, 0)
			unix.FcntlInt(uintptr(w), unix.F_SETFL, fl)
			if now&unix.O_APPEND != 0 {
				return errors.New("F_SETFL returned success and left O_APPEND set")
			}
			return nil
		})
	}},
	{"map a descriptor of the audit log or its index shared and writable", false, func(p *prepared) error {
		return p.onEach(func(r, w int) error {
			var errs []error
			for _, fd := range []int{r, w} {
				m, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
				if err == nil {
					unix.Munmap(m)
					return nil
				}
				errs = append(errs, err)
			}
			return errors.Join(errs...)
		})
	}},
	{"map the audit log or its index shared, read-only", false, func(p *prepared) error {
		return p.onEach(func(r, w int) error {
			m, err := unix.Mmap(r, 0, 4096, unix.PROT_READ, unix.MAP_SHARED)
			if err == nil {
				unix.Munmap(m)
			}
			return err
		})
	}},
	{"pwrite over the first byte of the audit log or its index", false, func(p *prepared) error {
		return p.onEach(func(r, w int) error {
			_, err := unix.Pwrite(w, []byte("X"), 0)
			return err
		})
	}},
	{"write through the read descriptor of the audit log or its index", false, func(p *prepared) error {
		return p.onEach(func(r, w int) error {
			_, err := unix.Write(r, []byte("{}\n"))
			return err
		})
	}},
}

// capAttempts would use a capability. Started as root (as the tests here
// are), the process holds them all until Lockdown drops them.
var capAttempts = []heldAttempt{
	{"capset: raise every capability held before lock-down", true, func(p *prepared) error {
		want := p.caps.permitted
		if want == 0 {
			want = 1 << unix.CAP_SYS_ADMIN // not held: the call must fail anyway
		}
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		data := [2]unix.CapUserData{
			{Effective: uint32(want), Permitted: uint32(want)},
			{Effective: uint32(want >> 32), Permitted: uint32(want >> 32)},
		}
		return unix.Capset(&hdr, &data[0])
	}},
	// A thread may have namespaces of its own: with CAP_SYS_ADMIN, a
	// thread of signstar could unshare a network namespace.
	{"unshare(CLONE_NEWNET|CLONE_NEWUTS)", true, func(p *prepared) error {
		return unix.Unshare(unix.CLONE_NEWNET | unix.CLONE_NEWUTS)
	}},
	{"unshare(CLONE_NEWUSER|CLONE_NEWNS)", false, func(p *prepared) error {
		return unix.Unshare(unix.CLONE_NEWUSER | unix.CLONE_NEWNS)
	}},
}

// tryHeld runs attempts, each on a thread of its own that exits afterwards
// (an unshare that worked must not leave a worker in another namespace):
// before lock-down only the control ones, which must succeed when the
// process holds what they need; after lock-down all, on threads created
// after it, and each must fail.
func tryHeld(t *testing.T, p *prepared, attempts []heldAttempt, mustFail bool) {
	t.Helper()
	for _, a := range attempts {
		if !mustFail && !a.control {
			continue
		}
		var w *worker
		if mustFail {
			w = p.freshThread(t)
		} else {
			w = startWorker()
		}
		var err error
		w.run(func() { err = a.do(p) })
		close(w.jobs)
		switch {
		case !mustFail && err != nil:
			if p.caps.permitted == 0 && strings.HasPrefix(a.name, "capset") || strings.HasPrefix(a.name, "unshare") && errors.Is(err, unix.EPERM) && p.caps.effective&(1<<unix.CAP_SYS_ADMIN) == 0 {
				t.Logf("control: %s fails without the sandbox too (no capabilities held): %v", a.name, err)
				continue
			}
			t.Errorf("control, before lock-down: %s: %v", a.name, err)
		case mustFail && err == nil:
			t.Errorf("after lock-down, on thread %d (created after it): %s succeeded", w.tid, a.name)
		case mustFail:
			t.Logf("denied on thread %d: %s: %v", w.tid, a.name, err)
		}
	}
}

// checkNoCaps: the thread whose status f is holds no capability, and when
// the process was asked to and could drop its bounding set (CAP_SETPCAP),
// that is empty too.
func checkNoCaps(t *testing.T, f *os.File, p *prepared) {
	t.Helper()
	st := procStatus(t, f)
	names := []string{"CapInh", "CapPrm", "CapEff", "CapAmb"}
	if p.bounding && p.caps.effective&(1<<unix.CAP_SETPCAP) != 0 {
		names = append(names, "CapBnd")
	}
	for _, n := range names {
		if v, err := strconv.ParseUint(st[n], 16, 64); err != nil || v != 0 {
			t.Errorf("%s: %s %q after lock-down, want 0", f.Name(), n, st[n])
		}
	}
}
