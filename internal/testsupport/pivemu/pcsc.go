package pivemu

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-piv/piv-go/v2/piv"

	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// ReaderName is the name pcscd gives the vpcd reader the card sits in.
const ReaderName = "Virtual PCD"

const (
	pcscdSocket  = "/run/pcscd/pcscd.comm"
	vpcdConfig   = "/etc/reader.conf.d/vpcd"
	lockFileName = "signstar-pivemu.lock"
)

// StartPCSC makes sure pcscd runs with the vpcd reader, for the rest of the
// test. It uses a running pcscd, or starts `pcscd --foreground` and stops it
// in Cleanup. Only one virtual card fits the reader, so it also holds an
// exclusive lock, across test processes, until Cleanup: tests that use the
// card run one at a time.
func StartPCSC(t testing.TB) {
	t.Helper()
	pcscd := testenv.NeedTool(t, "pcscd", "pcscd")
	if _, err := os.Stat(vpcdConfig); err != nil {
		testenv.Missing(t, "no vpcd reader in "+vpcdConfig+": apt-get install vsmartcard-vpcd")
	}
	lock(t)
	if socketAlive() {
		return
	}
	if os.Geteuid() != 0 {
		testenv.Missing(t, "pcscd is not running and only root can start it: systemctl start pcscd.socket")
	}
	cmd := exec.Command(pcscd, "--foreground")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pcscd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !socketAlive() {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("pcscd exited at start: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pcscd did not open %s within 10s", pcscdSocket)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func socketAlive() bool {
	c, err := net.DialTimeout("unix", pcscdSocket, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// lock takes the cross-process lock on the virtual reader until Cleanup.
func lock(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), lockFileName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("opening the reader lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("locking the reader: %v", err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the flock
}

// Start runs pcscd (StartPCSC), inserts card into the vpcd reader and waits
// until PC/SC clients can open it. It returns the emulator and the full
// reader name; Cleanup removes the card.
func Start(t testing.TB, card *Card) (*Emulator, string) {
	t.Helper()
	StartPCSC(t)
	return Plug(t, card)
}

// Plug inserts card (again) into the vpcd reader of a test that already
// called Start, after the previous card was removed.
func Plug(t testing.TB, card *Card) (*Emulator, string) {
	t.Helper()
	e := PlugApplet(t, card)
	reader, err := WaitReady(10 * time.Second)
	if err != nil {
		t.Fatalf("%v (%v)", err, card)
	}
	return e, reader
}

// PlugApplet inserts any applet into the vpcd reader of a test that holds
// it (StartPCSC) and waits until pcscd has powered it; Cleanup removes it.
func PlugApplet(t testing.TB, card Applet) *Emulator {
	t.Helper()
	e, err := Insert(VPCDAddr, card, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Remove)
	// vpcd asks a newly connected card for its ATR only once pcscd has
	// seen the previous card go: before that, PC/SC clients would still
	// talk to the old one.
	select {
	case <-e.Powered():
	case <-e.Removed():
		t.Fatalf("the card was removed before pcscd saw it: %v", e.Err())
	case <-time.After(10 * time.Second):
		t.Fatal("pcscd did not notice the card in the vpcd reader within 10s")
	}
	return e
}

// WaitReady waits until the virtual reader is listed and a card in it can be
// opened through piv-go, and returns the reader's name.
func WaitReady(timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		cards, err := piv.Cards()
		last = err
		for _, name := range cards {
			if !strings.Contains(name, ReaderName) {
				continue
			}
			yk, err := piv.Open(name)
			if err == nil {
				yk.Close()
				return name, nil
			}
			if !strings.HasPrefix(err.Error(), "connecting to smart card") {
				// piv-go leaks its exclusive handle when the card fails
				// after connecting: waiting longer cannot help.
				return "", err
			}
			last = err
			break
		}
		if time.Now().After(deadline) {
			if last == nil {
				last = errNoReader
			}
			return "", last
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var errNoReader = &readyError{"pcscd lists no " + ReaderName + " reader"}

type readyError struct{ msg string }

func (e *readyError) Error() string { return e.msg }
