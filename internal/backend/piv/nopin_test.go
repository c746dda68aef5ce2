package piv

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	pivgo "github.com/go-piv/piv-go/v2/piv"

	"github.com/signstar/signstar/internal/testsupport/pivemu"
)

// childReaderEnv makes the test binary a second process that opens the
// card without a PIN and tries to sign with slot 9a (noPINSign).
const childReaderEnv = "SIGNSTAR_PIV_TEST_NOPIN_READER"

func TestMain(m *testing.M) {
	if reader := os.Getenv(childReaderEnv); reader != "" {
		if err := noPINSign(reader); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if strings.Contains(err.Error(), "security status not satisfied") {
				os.Exit(10)
			}
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// noPINSign is what any process on the host could do: open the card,
// present no PIN, and ask slot 9a for a signature.
func noPINSign(reader string) error {
	yk, err := pivgo.Open(reader)
	if err != nil {
		return err
	}
	defer yk.Close()
	info, err := yk.KeyInfo(pivgo.SlotAuthentication)
	if err != nil {
		return err
	}
	priv, err := yk.PrivateKey(pivgo.SlotAuthentication, info.PublicKey, pivgo.KeyAuth{PINPolicy: pivgo.PINPolicyNever})
	if err != nil {
		return err
	}
	d := sha256.Sum256([]byte("signed without a PIN"))
	_, err = priv.(crypto.Signer).Sign(rand.Reader, d[:], crypto.SHA256)
	return err
}

// secondProcessSigns runs noPINSign in a child process and reports whether
// the card signed.
func secondProcessSigns(t *testing.T, reader string) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childReaderEnv+"="+reader)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true
	case errors.As(err, &ee) && ee.ExitCode() == 10:
		return false
	}
	t.Fatalf("second process: %v\n%s", err, out)
	return false
}

// TestNoPINLeftVerified: after a signing session with a PIN policy "once"
// slot, a second process that opens the card with no PIN cannot sign; on a
// card that implements VERIFY P1=FF and on one that does not (only a reset
// clears it there), after a signature and after a failed one.
func TestNoPINLeftVerified(t *testing.T) {
	old := setupPINPolicy
	setupPINPolicy = pivgo.PINPolicyOnce
	t.Cleanup(func() { setupPINPolicy = old })
	for _, tc := range []struct {
		name string
		opt  pivemu.Options
	}{
		{"verify-ff", pivemu.Options{}},
		{"reset-only", pivemu.Options{NoPINReset: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRigWith(t, tc.opt)
			cert := r.setup("9a", "ecc-p256")
			if r.card.PINVerified() {
				t.Fatal("Setup left the PIN verified")
			}
			// The rig is sound: with the PIN verified, the second
			// process signs without one.
			yk, err := pivgo.Open(r.reader)
			if err != nil {
				t.Fatal(err)
			}
			if err := yk.VerifyPIN(pivemu.DefaultPIN); err != nil {
				t.Fatal(err)
			}
			yk.Close()
			if !secondProcessSigns(t, r.reader) {
				t.Fatal("a verified PIN did not let a second process sign: the test cannot fail")
			}
			r.card.Reset()

			resets := r.card.Resets()
			k, err := r.open(cert, "9a", r.pin)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.sign(k, []byte("data")); err != nil {
				t.Fatal(err)
			}
			k.Close()
			if r.card.PINVerified() {
				t.Fatal("the PIN is still verified after the signature")
			}
			if secondProcessSigns(t, r.reader) {
				t.Fatal("a second process signed without a PIN after signstar's signature")
			}
			if tc.opt.NoPINReset && r.card.Resets() == resets {
				t.Error("the card refused VERIFY P1=FF but was not reset")
			}

			// An error after the PIN was verified: the card fails the
			// signature itself.
			k, err = r.open(cert, "9a", r.pin)
			if err != nil {
				t.Fatal(err)
			}
			r.card.Refuse(func(cmd *pivemu.Command) uint16 {
				if cmd.INS == 0x87 {
					return 0x6f00
				}
				return 0x9000
			})
			_, err = r.sign(k, []byte("data"))
			r.card.Refuse(nil)
			k.Close()
			if err == nil {
				t.Fatal("a failing card signed")
			}
			if r.card.PINVerified() {
				t.Fatalf("the PIN is still verified after a failed signature (%v)", err)
			}
			if secondProcessSigns(t, r.reader) {
				t.Fatal("a second process signed without a PIN after a failed signature")
			}
		})
	}
}
