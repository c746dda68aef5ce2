// Package swtpmtest starts swtpm (TPM 2.0 mode) for tests, on a command
// socket in a temporary directory, the way the TPM backend's tests and the
// command's end-to-end tests use it in place of /dev/tpmrm0.
package swtpmtest

import (
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// TPM is a running swtpm.
type TPM struct {
	// Socket is the command socket: what [profile.tpm] device names.
	Socket string
	// Ctrl is swtpm's control socket.
	Ctrl  string
	State string
	cmd   *exec.Cmd
	t     testing.TB
}

// Start starts swtpm with a fresh state (a new TPM, with its own seeds) and
// stops it when the test ends. It skips the test (fails it in CI) without
// swtpm.
func Start(t testing.TB) *TPM {
	t.Helper()
	testenv.NeedTool(t, "swtpm", "swtpm")
	// Not t.TempDir: a unix socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "swtpm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &TPM{Socket: filepath.Join(dir, "tpm.sock"), Ctrl: filepath.Join(dir, "ctrl.sock"), State: filepath.Join(dir, "state"), t: t}
	if err := os.Mkdir(s.State, 0o700); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *TPM) start() {
	s.t.Helper()
	os.Remove(s.Socket)
	os.Remove(s.Ctrl)
	s.cmd = exec.Command("swtpm", "socket", "--tpm2",
		"--server", "type=unixio,path="+s.Socket,
		"--ctrl", "type=unixio,path="+s.Ctrl,
		"--tpmstate", "dir="+s.State,
		"--flags", "not-need-init,startup-clear")
	out, err := os.Create(filepath.Join(filepath.Dir(s.State), "swtpm.log"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer out.Close()
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting swtpm: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The socket file exists from bind(2); swtpm listens a little
		// later.
		if c, err := net.Dial("unix", s.Socket); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(out.Name())
			s.t.Fatalf("swtpm did not create %s within 10 s: %s", s.Socket, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop stops swtpm; the state stays for Restart.
func (s *TPM) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
	s.cmd = nil
}

// Restart starts swtpm again on the same state: the same TPM, rebooted
// (TPM2_Startup(CLEAR) resets PCRs 0 to 16 and 23).
func (s *TPM) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Do runs f on a connection of its own; swtpm serves one connection at a
// time, so nothing else may hold one.
func (s *TPM) Do(f func(transport.TPM) error) error {
	c, err := net.Dial("unix", s.Socket)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return f(transport.FromReadWriter(c))
}

// Extend extends SHA-256 PCR index with data's SHA-256, as a boot loader
// measuring something would.
func (s *TPM) Extend(index int, data []byte) error {
	return s.Do(func(t transport.TPM) error {
		d := tpm2.TPMTHA{HashAlg: tpm2.TPMAlgSHA256, Digest: sum256(data)}
		_, err := tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(index), Auth: tpm2.PasswordAuth(nil)},
			Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{d}},
		}.Execute(t)
		if err != nil {
			return fmt.Errorf("extending PCR %d: %v", index, err)
		}
		return nil
	})
}

// ResetLockout clears the dictionary-attack counter (the lockout
// hierarchy's auth is empty in a fresh swtpm).
func (s *TPM) ResetLockout() error {
	return s.Do(func(t transport.TPM) error {
		// go-tpm has no TPM2_DictionaryAttackLockReset: TPM_ST_SESSIONS,
		// size 27, the command code, TPM_RH_LOCKOUT, and an empty
		// password session.
		cmd := []byte{0x80, 0x02, 0, 0, 0, 27, 0, 0, 0x01, 0x39, 0x40, 0, 0, 0x0a,
			0, 0, 0, 9, 0x40, 0, 0, 0x09, 0, 0, 0, 0, 0}
		rsp, err := t.Send(cmd)
		if err != nil {
			return err
		}
		if len(rsp) < 10 || rsp[6]|rsp[7]|rsp[8]|rsp[9] != 0 {
			return fmt.Errorf("TPM2_DictionaryAttackLockReset: response %x", rsp)
		}
		return nil
	})
}

// LockoutCounter reads TPM_PT_LOCKOUT_COUNTER and TPM_PT_MAX_AUTH_FAIL.
func (s *TPM) LockoutCounter() (counter, max uint32, err error) {
	err = s.Do(func(t transport.TPM) error {
		rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTLockoutCounter), PropertyCount: 2}.Execute(t)
		if err != nil {
			return err
		}
		props, err := rsp.CapabilityData.Data.TPMProperties()
		if err != nil {
			return err
		}
		for _, p := range props.TPMProperty {
			switch p.Property {
			case tpm2.TPMPTLockoutCounter:
				counter = p.Value
			case tpm2.TPMPTMaxAuthFail:
				max = p.Value
			}
		}
		return nil
	})
	return
}

func sum256(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}
