package piv

import (
	"bytes"
	"crypto"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pivgo "github.com/go-piv/piv-go/v2/piv"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/signer"
	"github.com/signstar/signstar/internal/testsupport/pivemu"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

type rig struct {
	t      *testing.T
	root   *testing.T // owns the emulator
	dir    string
	card   *pivemu.Card
	emu    *pivemu.Emulator
	reader string
	pin    string // pin file with the right PIN
}

func newRig(t *testing.T) *rig {
	t.Helper()
	return newRigWith(t, pivemu.Options{})
}

func newRigWith(t *testing.T, opt pivemu.Options) *rig {
	t.Helper()
	card := pivemu.NewCard(opt)
	emu, reader := pivemu.Start(t, card)
	r := &rig{t: t, root: t, dir: t.TempDir(), card: card, emu: emu, reader: reader}
	r.pin = r.file("pin", pivemu.DefaultPIN+"\n", 0o600)
	return r
}

func (r *rig) file(name, content string, mode os.FileMode) string {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// setup provisions slot with a generated key and writes its certificate.
func (r *rig) setup(slot, alg string) string {
	r.t.Helper()
	cert, err := Setup(SetupOptions{Reader: "Virtual PCD", Slot: slot, UID: "Card Signer <card@example.org>", Generate: alg, PINFile: r.pin, Now: testNow})
	if err != nil {
		r.t.Fatalf("setup %s %s: %v", slot, alg, err)
	}
	return r.file("cert-"+slot+".asc", string(cert), 0o644)
}

func (r *rig) open(cert, slot, pinFile string) (*backend.Key, error) {
	return Open(Options{Cert: cert, Reader: "Virtual PCD", Slot: slot, PINFile: pinFile}, testNow.Add(time.Hour))
}

func (r *rig) sign(k *backend.Key, data []byte) ([]byte, error) {
	return r.signHash(k, data, crypto.SHA256)
}

func (r *rig) signHash(k *backend.Key, data []byte, h crypto.Hash) ([]byte, error) {
	in, err := signer.Read(bytes.NewReader(data), h, 0, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return signer.Sign(in, k, testNow.Add(time.Hour))
}

func TestSetupOpenSign(t *testing.T) {
	gpg := testenv.NeedTool(t, "gpg", "gnupg")
	gpgv := testenv.NeedTool(t, "gpgv", "gpgv")
	sqv := testenv.NeedTool(t, "sqv", "sqv")
	r := newRig(t)
	for _, tc := range []struct {
		alg, slot string
		hash      crypto.Hash
	}{
		{"ecc-p256", "9c", crypto.SHA256}, {"ecc-p384", "9a", crypto.SHA512}, {"rsa2048", "9d", crypto.SHA256},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			r.t = t
			cert := r.setup(tc.slot, tc.alg)
			keyring := gpgImport(t, gpg, cert)
			k, err := r.open(cert, tc.slot, r.pin)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			before := r.card.Signatures()
			data := []byte("an artifact signed by " + tc.alg + "\n")
			sig, err := r.signHash(k, data, tc.hash)
			if err != nil {
				t.Fatal(err)
			}
			if n := r.card.Signatures() - before; n != 1 {
				t.Errorf("card made %d signatures, want 1", n)
			}
			verifyWith(t, r.dir, keyring, sig, data, gpgv, sqv)
			if r.card.PINRetries() != 3 {
				t.Errorf("PIN retries %d after a good PIN, want 3", r.card.PINRetries())
			}
			if tc.hash == crypto.SHA512 {
				// SHA-256 with P-384 would not verify in GnuPG: refused.
				if _, err := r.sign(k, data); err == nil || !strings.Contains(err.Error(), "sha512") {
					t.Errorf("P-384 with SHA-256: %v, want a refusal", err)
				}
			}
		})
	}
}

// gpgImport imports the armored certificate into a fresh GnuPG home,
// insists that gpg finds its self-signature good, and returns a binary
// keyring of it (gpg --dearmor) for gpgv and sqv.
func gpgImport(t *testing.T, gpg, cert string) string {
	t.Helper()
	home := t.TempDir()
	out, err := exec.Command(gpg, "--batch", "--homedir", home, "--import", cert).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("bad signature")) || !bytes.Contains(out, []byte("imported: 1")) {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	out, err = exec.Command(gpg, "--batch", "--homedir", home, "--with-colons", "--check-signatures").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("\nsig:!:")) {
		t.Fatalf("gpg --check-signatures finds no good self-signature: %v\n%s", err, out)
	}
	keyring := strings.TrimSuffix(cert, ".asc") + ".gpg"
	if out, err := exec.Command(gpg, "--batch", "--yes", "--homedir", home, "--output", keyring, "--dearmor", cert).CombinedOutput(); err != nil {
		t.Fatalf("gpg --dearmor: %v\n%s", err, out)
	}
	return keyring
}

func verifyWith(t *testing.T, dir, keyring string, sig, data []byte, gpgv, sqv string) {
	t.Helper()
	sigPath := filepath.Join(dir, "artifact.sig")
	dataPath := filepath.Join(dir, "artifact")
	os.WriteFile(sigPath, sig, 0o644)
	os.WriteFile(dataPath, data, 0o644)
	if out, err := exec.Command(gpgv, "--keyring", keyring, sigPath, dataPath).CombinedOutput(); err != nil {
		t.Errorf("gpgv: %v\n%s", err, out)
	}
	if out, err := exec.Command(sqv, "--keyring", keyring, sigPath, dataPath).CombinedOutput(); err != nil {
		t.Errorf("sqv: %v\n%s", err, out)
	}
	// The same signature over other bytes must fail: the tools really check.
	os.WriteFile(dataPath, append(data, 'x'), 0o644)
	if err := exec.Command(gpgv, "--keyring", keyring, sigPath, dataPath).Run(); err == nil {
		t.Error("gpgv accepts the signature over changed data")
	}
}

func TestPINGuard(t *testing.T) {
	r := newRig(t)
	cert := r.setup("9c", "ecc-p256")
	wrong := r.file("wrong-pin", "999999\n", 0o600)

	// A wrong PIN costs one attempt and says how many are left.
	for want := 2; want >= 1; want-- {
		k, err := r.open(cert, "9c", wrong)
		if err != nil {
			t.Fatalf("open with %d retries: %v", want+1, err)
		}
		sig, err := r.sign(k, []byte("data"))
		k.Close()
		var pe *PINError
		if !errors.As(err, &pe) || pe.Retries != want || sig != nil {
			t.Fatalf("wrong PIN: %v (sig %x), want a PINError with %d retries", err, sig, want)
		}
		if r.card.PINRetries() != want {
			t.Fatalf("card has %d retries, want %d", r.card.PINRetries(), want)
		}
		if strings.Contains(err.Error(), "999999") {
			t.Fatalf("error shows the PIN: %v", err)
		}
	}

	// At one attempt left nothing is presented, not even the right PIN.
	for _, pin := range []string{wrong, r.pin} {
		k, err := r.open(cert, "9c", pin)
		var re *RetriesError
		if !errors.As(err, &re) || re.Retries != 1 || k != nil {
			t.Fatalf("open at 1 retry: %v, want RetriesError{1}", err)
		}
		if r.card.PINRetries() != 1 {
			t.Fatalf("the guard spent an attempt: %d left", r.card.PINRetries())
		}
	}

	// The guard also runs right before the PIN is presented: the counter
	// may drop between Open and Sign.
	r.card.SetPINRetries(2)
	k, err := r.open(cert, "9c", r.pin)
	if err != nil {
		t.Fatal(err)
	}
	r.card.SetPINRetries(1)
	_, err = r.sign(k, []byte("data"))
	k.Close()
	var re *RetriesError
	if !errors.As(err, &re) || re.Retries != 1 || r.card.PINRetries() != 1 {
		t.Fatalf("sign at 1 retry: %v (card %d), want RetriesError{1} and nothing spent", err, r.card.PINRetries())
	}

	// A blocked card.
	r.card.SetPINRetries(0)
	_, err = r.open(cert, "9c", r.pin)
	if !errors.As(err, &re) || re.Retries != 0 || !strings.Contains(err.Error(), "blocked") {
		t.Fatalf("blocked card: %v, want RetriesError{0}", err)
	}

	// The right PIN resets the counter.
	r.card.SetPINRetries(2)
	k, err = r.open(cert, "9c", r.pin)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if _, err := r.sign(k, []byte("data")); err != nil {
		t.Fatal(err)
	}
	if r.card.PINRetries() != 3 {
		t.Fatalf("%d retries after the right PIN, want 3", r.card.PINRetries())
	}
}

func TestMismatch(t *testing.T) {
	r := newRig(t)
	cert9a := r.setup("9a", "ecc-p256")
	r.setup("9c", "ecc-p256")
	k, err := r.open(cert9a, "9c", r.pin)
	var me *MismatchError
	if !errors.As(err, &me) || k != nil {
		t.Fatalf("open with the other slot's certificate: %v, want MismatchError", err)
	}
	e, _ := backend.ParseEntity(mustRead(t, cert9a))
	if me.Cert != backend.Fingerprint(e.PrimaryKey) || me.Card == "" || me.Card == me.Cert || !strings.Contains(err.Error(), me.Card) {
		t.Fatalf("mismatch error names %q and %q: %v", me.Card, me.Cert, err)
	}
	// An empty slot says so.
	if _, err := r.open(cert9a, "9e", r.pin); err == nil || !strings.Contains(err.Error(), "holds no key") {
		t.Fatalf("open of an empty slot: %v", err)
	}
	if r.card.PINRetries() != 3 {
		t.Fatal("a refused open touched the PIN")
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCardRemoved(t *testing.T) {
	r := newRig(t)
	// RSA input is chained over two APDUs; ECDSA fits one.
	for _, tc := range []struct{ alg, slot string }{{"rsa2048", "9d"}, {"ecc-p256", "9c"}} {
		t.Run(tc.alg, func(t *testing.T) {
			r.t = t
			cert := r.setup(tc.slot, tc.alg)
			k, err := r.open(cert, tc.slot, r.pin)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			// Pull the card out when the signing command arrives.
			slot, _ := ParseSlot(tc.slot)
			r.emu.RemoveOn(func(c *pivemu.Command) bool { return c.INS == 0x87 && c.P2 == byte(slot.Key) })
			before := r.card.Signatures()
			sig, err := r.sign(k, []byte("data"))
			if err == nil || sig != nil {
				t.Fatalf("signed with the card pulled out: %x", sig)
			}
			if !errors.Is(err, ErrCardGone) {
				t.Fatalf("card removed: %v, want ErrCardGone", err)
			}
			if r.card.Signatures() != before {
				t.Fatal("the card signed")
			}
			t.Logf("card removed: %v", err)
			select {
			case <-r.emu.Removed():
			case <-time.After(5 * time.Second):
				t.Fatal("emulator still connected")
			}

			// Put it back: a new session works.
			k.Close()
			r.emu, _ = pivemu.Plug(r.root, r.card)
			k2, err := r.open(cert, tc.slot, r.pin)
			if err != nil {
				t.Fatal(err)
			}
			defer k2.Close()
			if _, err := r.sign(k2, []byte("data")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestBusy: a card another session holds is waited for, up to
// OpenTimeout, at Open and at Sign.
func TestBusy(t *testing.T) {
	r := newRig(t)
	cert := r.setup("9c", "ecc-p256")
	k, err := r.open(cert, "9c", r.pin)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	holder, err := pivgo.Open(r.reader)
	if err != nil {
		t.Fatal(err)
	}
	old := OpenTimeout
	OpenTimeout = time.Second
	defer func() { OpenTimeout = old }()
	for _, what := range []string{"open", "sign"} {
		start := time.Now()
		if what == "open" {
			_, err = r.open(cert, "9c", r.pin)
		} else {
			_, err = r.sign(k, []byte("data"))
		}
		var be *BusyError
		if !errors.As(err, &be) {
			t.Fatalf("%s of a held card: %v, want BusyError", what, err)
		}
		if d := time.Since(start); d < time.Second || d > 5*time.Second {
			t.Errorf("%s waited %v for a busy card, want about 1s", what, d)
		}
	}
	// The waiting session gets the card once the holder closes it.
	done := make(chan error, 1)
	OpenTimeout = 10 * time.Second
	go func() {
		k2, err := r.open(cert, "9c", r.pin)
		if err == nil {
			_, err = r.sign(k2, []byte("data"))
			k2.Close()
		}
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	holder.Close()
	if err := <-done; err != nil {
		t.Fatalf("open and sign after the holder closed: %v", err)
	}
	if _, err := r.sign(k, []byte("data")); err != nil {
		t.Fatal(err)
	}
}

// TestNotHeld: between Open and Sign (while the artifact is read) the card
// is free for other sessions; Sign claims it again and refuses it when the
// slot's key changed meanwhile.
func TestNotHeld(t *testing.T) {
	r := newRig(t)
	cert := r.setup("9c", "ecc-p256")
	k, err := r.open(cert, "9c", r.pin)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	old := OpenTimeout
	OpenTimeout = 10 * time.Second
	defer func() { OpenTimeout = old }()

	// piv-go opens exclusively and does not wait: it gets the card only
	// if nobody holds it.
	start := time.Now()
	other, err := pivgo.Open(r.reader)
	if err != nil {
		t.Fatalf("the card is held between Open and Sign: %v", err)
	}
	other.Close()
	// So does a second signstar session, which signs too.
	k2, err := r.open(cert, "9c", r.pin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.sign(k2, []byte("data")); err != nil {
		t.Fatal(err)
	}
	k2.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the other sessions took %v: they waited for the card", d)
	}
	// And again after a signature: Sign releases the card.
	if _, err := r.sign(k, []byte("data")); err != nil {
		t.Fatal(err)
	}
	other, err = pivgo.Open(r.reader)
	if err != nil {
		t.Fatalf("the card is held after Sign: %v", err)
	}
	other.Close()

	// The slot gets another key while the artifact is read.
	if _, err := Setup(SetupOptions{Reader: "Virtual PCD", Slot: "9c", UID: "Other <other@example.org>", Generate: "ecc-p256", PINFile: r.pin, Now: testNow, Force: true}); err != nil {
		t.Fatal(err)
	}
	before := r.card.Signatures()
	sig, err := r.sign(k, []byte("data"))
	var me *MismatchError
	if !errors.As(err, &me) || sig != nil || me.Card == "" || me.Card == me.Cert {
		t.Fatalf("sign after the slot's key changed: %v (sig %x), want MismatchError", err, sig)
	}
	if r.card.Signatures() != before {
		t.Fatal("the card signed with the other key")
	}

	// Another card (with an empty slot) in the reader.
	r.emu.Remove()
	<-r.emu.Removed()
	r.emu, _ = pivemu.Plug(r.root, pivemu.NewCard(pivemu.Options{}))
	if sig, err := r.sign(k, []byte("data")); err == nil || sig != nil || !strings.Contains(err.Error(), "holds no key") {
		t.Fatalf("sign with another card in the reader: %v (sig %x)", err, sig)
	}
	// The right card back: Sign works again.
	r.emu.Remove()
	<-r.emu.Removed()
	r.emu, _ = pivemu.Plug(r.root, r.card)
	if _, err := r.sign(k, []byte("data")); !errors.As(err, &me) {
		t.Fatalf("sign with the rewritten slot: %v, want MismatchError", err)
	}
}

// TestNoNewSockets: after Open, signing opens no file or socket, so the
// sandbox may forbid them: Sign claims the card again on the pcscd
// connection Open kept, whose descriptor stays the same. (A dial and close
// within Sign would not show here; TestLockdownPIV in internal/sandbox signs
// under the seccomp filter, which refuses socket and connect, and piv-go's
// TestPreparePCSC counts dials.)
func TestNoNewSockets(t *testing.T) {
	r := newRig(t)
	cert := r.setup("9c", "ecc-p256")
	k, err := r.open(cert, "9c", r.pin)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	before := fds(t)
	for range 3 {
		if _, err := r.sign(k, []byte("data")); err != nil {
			t.Fatal(err)
		}
	}
	after := fds(t)
	if before != after {
		t.Fatalf("signing changed the open files:\nbefore %s\nafter  %s", before, after)
	}
}

func fds(t *testing.T) string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		testenv.Missing(t, "no /proc/self/fd")
	}
	var out []string
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && !strings.Contains(l, "/proc/") {
			out = append(out, e.Name()+"="+l)
		}
	}
	return strings.Join(out, " ")
}
