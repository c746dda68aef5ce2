package agent

import (
	"bytes"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/signer"
	"github.com/signstar/signstar/internal/testsupport/openpgpemu"
	"github.com/signstar/signstar/internal/testsupport/pacmantest"
	"github.com/signstar/signstar/internal/testsupport/pivemu"
)

// cardPIN is both PW1 and PW3 of the test cards, so that gpg --card-edit's
// prompts can all be answered with it.
const cardPIN = "12345678"

// cardRig is a gpg-agent whose signing key was generated on an emulated
// OpenPGP card (gpg --card-edit generate), reached through scdaemon,
// pcscd and vpcd.
type cardRig struct {
	t    testing.TB
	card *openpgpemu.Card
	emu  *pivemu.Emulator
	g    *openpgpemu.GnuPG
	cert string // the exported certificate
	fpr  string
	pin  string // pin_file with the right PIN
}

func newCardRig(t testing.TB) *cardRig {
	t.Helper()
	r := &cardRig{t: t, card: openpgpemu.NewCard(openpgpemu.Options{PIN: cardPIN})}
	r.emu = openpgpemu.Start(t, r.card)
	r.g = openpgpemu.StartGnuPG(t)
	r.g.WaitCard()
	r.fpr = r.g.GenerateOnCard(cardPIN, "Card Signer", "card@agent.test")
	r.cert = filepath.Join(t.TempDir(), "cert.asc")
	if err := os.WriteFile(r.cert, []byte(r.g.GPG(nil, "--export", "--armor", r.fpr)), 0o644); err != nil {
		t.Fatal(err)
	}
	r.pin = writePass(t, []byte(cardPIN))
	return r
}

func (r *cardRig) open(pinFile string) (*backend.Key, error) {
	return Open(Options{Cert: r.cert, Socket: r.g.Socket, PINFile: pinFile}, time.Now())
}

func (r *cardRig) sign(k *backend.Key) ([]byte, error) {
	in, err := signer.Read(bytes.NewReader(artifact), crypto.SHA256, 0, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return signer.Sign(in, k, time.Now())
}

// TestCardPINGuard: the key generated on the card signs through signstar;
// the retry counter is read before any PIN is sent, one attempt left is
// refused with the card untouched, a wrong PIN costs exactly one attempt.
func TestCardPINGuard(t *testing.T) {
	r := newCardRig(t)

	k, err := r.open(r.pin)
	if err != nil {
		t.Fatal(err)
	}
	if s := k.Signer.(*Signer); s.card == nil || s.card.serial != r.card.Serial() || s.card.idstr != "OPENPGP.1" {
		t.Fatalf("the key is not seen on card %s: %+v", r.card.Serial(), s.card)
	}
	if !strings.EqualFold(backend.Fingerprint(k.Public), r.fpr) {
		t.Fatalf("signing key %s, want the card's %s", backend.Fingerprint(k.Public), r.fpr)
	}
	signAndVerify(t, k, crypto.SHA256, artifact)
	k.Close()

	t.Run("two-left", func(t *testing.T) {
		r.card.SetPINRetries(2)
		k, err := r.open(r.pin)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		before := r.card.Signatures()
		if _, err := r.sign(k); err != nil {
			t.Fatal(err)
		}
		if n := r.card.PINRetries(); n != 3 || r.card.Signatures() != before+1 {
			t.Fatalf("after the right PIN: %d attempts, %d signatures; want 3 and one more", n, r.card.Signatures()-before)
		}
	})

	t.Run("wrong-pin", func(t *testing.T) {
		wrong := writePass(t, []byte("87654321"))
		k, err := r.open(wrong)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		shown := r.card.Verifies()
		sig, err := r.sign(k)
		var pe *CardPINError
		if !errors.As(err, &pe) || pe.Retries != 2 || sig != nil {
			t.Fatalf("wrong PIN: %v, want a CardPINError with 2 attempts left", err)
		}
		if n := r.card.PINRetries(); n != 2 || r.card.Verifies() != shown+1 {
			t.Fatalf("a wrong PIN cost %d attempts in %d tries, want 1 in 1", 3-n, r.card.Verifies()-shown)
		}
		if !strings.Contains(err.Error(), "2 attempts left") || strings.Contains(err.Error(), "87654321") {
			t.Fatalf("message: %v", err)
		}
		// The right PIN resets the counter again.
		k2, err := r.open(r.pin)
		if err != nil {
			t.Fatal(err)
		}
		defer k2.Close()
		if _, err := r.sign(k2); err != nil || r.card.PINRetries() != 3 {
			t.Fatalf("right PIN after a wrong one: %v, %d attempts", err, r.card.PINRetries())
		}
	})

	t.Run("one-left", func(t *testing.T) {
		r.card.SetPINRetries(1)
		shown, sigs := r.card.Verifies(), r.card.Signatures()
		for _, pin := range []string{r.pin, writePass(t, []byte("87654321"))} {
			k, err := r.open(pin)
			var re *CardRetriesError
			if !errors.As(err, &re) || re.Retries != 1 || k != nil {
				t.Fatalf("open at 1 attempt: %v, want CardRetriesError{1}", err)
			}
			for _, advice := range []string{"only 1 attempt left", "admin PIN", "successful PIN use elsewhere"} {
				if !strings.Contains(err.Error(), advice) {
					t.Errorf("message lacks %q: %v", advice, err)
				}
			}
		}
		// The counter drops between Open and Sign: Sign reads it again
		// before the PIN would be sent.
		r.card.SetPINRetries(2)
		k, err := r.open(r.pin)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		r.card.SetPINRetries(1)
		_, err = r.sign(k)
		var re *CardRetriesError
		if !errors.As(err, &re) || re.Retries != 1 {
			t.Fatalf("sign at 1 attempt: %v, want CardRetriesError{1}", err)
		}
		if r.card.PINRetries() != 1 || r.card.Verifies() != shown || r.card.Signatures() != sigs {
			t.Fatalf("the refused card was touched: %d attempts (want 1), %d PINs shown, %d signatures", r.card.PINRetries(), r.card.Verifies()-shown, r.card.Signatures()-sigs)
		}
		r.card.SetPINRetries(0)
		if _, err := r.open(r.pin); !errors.As(err, &re) || re.Retries != 0 || !strings.Contains(err.Error(), "blocked") {
			t.Fatalf("blocked card: %v", err)
		}
		r.card.SetPINRetries(3)
	})

	t.Run("extra-socket", func(t *testing.T) {
		extra, err := r.g.Run(nil, "gpgconf", "--homedir", r.g.Home, "--list-dirs", "agent-extra-socket")
		if err != nil {
			t.Fatal(err)
		}
		k, err := Open(Options{Cert: r.cert, Socket: strings.TrimSpace(extra), PINFile: r.pin}, time.Now())
		if err == nil {
			k.Close()
			t.Fatal("opened a card key through the restricted socket")
		}
		t.Logf("extra socket: %v", err)
		if !strings.Contains(err.Error(), "standard socket") {
			t.Fatalf("restricted socket: %v, want advice to use the standard socket", err)
		}
	})

	t.Run("no-pin-file", func(t *testing.T) {
		if _, err := r.open(""); !errors.Is(err, ErrNeedPIN) {
			t.Fatalf("card key without pin_file: %v, want ErrNeedPIN", err)
		}
	})

	t.Run("no-loopback", func(t *testing.T) {
		conf := filepath.Join(r.g.Home, "gpg-agent.conf")
		old, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		reload := func(c []byte) {
			if err := os.WriteFile(conf, c, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := r.g.Run(nil, "gpgconf", "--homedir", r.g.Home, "--reload", "gpg-agent"); err != nil {
				t.Fatal(err)
			}
		}
		// Loopback is allowed by default since GnuPG 2.1.12.
		reload(bytes.ReplaceAll(old, []byte("allow-loopback-pinentry\n"), []byte("no-allow-loopback-pinentry\n")))
		defer reload(old)
		shown := r.card.Verifies()
		_, err = r.open(r.pin)
		if err == nil || !strings.Contains(err.Error(), "allow-loopback-pinentry") || r.card.Verifies() != shown {
			t.Fatalf("agent without loopback: %v (%d PINs shown), want a refusal naming allow-loopback-pinentry", err, r.card.Verifies()-shown)
		}
	})

	t.Run("removed-while-signing", func(t *testing.T) {
		k, err := r.open(r.pin)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		r.emu.RemoveOn(func(c *pivemu.Command) bool { return c.INS == 0x2a })
		sigs := r.card.Signatures()
		sig, err := r.sign(k)
		var me *CardMissingError
		if !errors.As(err, &me) || !me.During || sig != nil {
			t.Fatalf("card removed while signing: %v, want CardMissingError during the request", err)
		}
		if r.card.Signatures() != sigs {
			t.Fatal("the card signed")
		}
		<-r.emu.Removed()
		r.emu = pivemu.PlugApplet(r.t, r.card)
		r.g.WaitCard()
	})

	t.Run("removed-during-upload", func(t *testing.T) {
		k, err := r.open(r.pin)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		r.emu.Remove()
		_, err = r.sign(k)
		var me *CardMissingError
		if !errors.As(err, &me) || !me.During || me.Got != "" {
			t.Fatalf("card removed before signing: %v, want CardMissingError during the request", err)
		}
		// With no card in the reader, Open refuses.
		if _, err := r.open(r.pin); !errors.As(err, &me) || me.During || !strings.Contains(err.Error(), "is not in the reader or does not answer") {
			t.Fatalf("no card: %v, want CardMissingError", err)
		}
	})

	t.Run("wrong-card", func(t *testing.T) {
		other := openpgpemu.NewCard(openpgpemu.Options{Serial: 0x0badcafe, PIN: cardPIN})
		pivemu.PlugApplet(t, other)
		r.g.WaitCard()
		_, err := r.open(r.pin)
		var me *CardMissingError
		if !errors.As(err, &me) || me.Got != other.Serial() || me.Want != r.card.Serial() {
			t.Fatalf("another card: %v, want CardMissingError naming both", err)
		}
		if other.Verifies() != 0 {
			t.Fatal("the PIN was shown to the wrong card")
		}
	})
}

// TestCardPacman: pacman syncs and installs a package and database signed
// with the key on the card.
func TestCardPacman(t *testing.T) {
	pacmantest.NeedTools(t)
	r := newCardRig(t)
	k, err := r.open(r.pin)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	o := pacmantest.Prepare(t, pacmantest.Hello, func(data []byte) ([]byte, error) {
		in, err := signer.Read(bytes.NewReader(data), crypto.SHA256, 0, nil)
		if err != nil {
			return nil, err
		}
		return signer.Sign(in, k, time.Now())
	})
	cert, err := os.ReadFile(r.cert)
	if err != nil {
		t.Fatal(err)
	}
	o.Certs = [][]byte{cert}
	env := pacmantest.Install(t, o)
	env.RefuseTampered(t)
	if r.card.Signatures() < 2 {
		t.Fatalf("the card made %d signatures, want the package's and the database's", r.card.Signatures())
	}
}

// TestCardKeyToCard: keys made in GnuPG and moved to the card with
// keytocard (the card's algorithm attributes changed by scdaemon on the
// way) sign through signstar: RSA-2048, Ed25519 and ECDSA P-256.
func TestCardKeyToCard(t *testing.T) {
	card := openpgpemu.NewCard(openpgpemu.Options{PIN: cardPIN})
	openpgpemu.Start(t, card)
	g := openpgpemu.StartGnuPG(t)
	g.WaitCard()
	pin := writePass(t, []byte(cardPIN))
	// RSA first: scdaemon 2.2 writes an RSA key only into a slot whose
	// attributes are RSA already (rsa_writekey), ECC keys anywhere.
	for _, algo := range []string{"rsa2048", "ed25519", "nistp256"} {
		t.Run(algo, func(t *testing.T) {
			fpr := g.SoftKey(cardPIN, algo+" <"+algo+"@agent.test>", algo)
			g.KeyToCard(cardPIN, fpr)
			cert := filepath.Join(t.TempDir(), "cert.asc")
			if err := os.WriteFile(cert, []byte(g.GPG(nil, "--export", "--armor", fpr)), 0o644); err != nil {
				t.Fatal(err)
			}
			k, err := Open(Options{Cert: cert, Socket: g.Socket, PINFile: pin}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			if s := k.Signer.(*Signer); s.card == nil || s.card.serial != card.Serial() {
				t.Fatalf("%s: the key is not seen on the card", algo)
			}
			sigs := card.Signatures()
			signAndVerify(t, k, crypto.SHA256, artifact)
			if card.Signatures() != sigs+1 {
				t.Fatalf("the card made %d signatures, want 1", card.Signatures()-sigs)
			}
		})
	}
}

// TestExtraSocketSoftKey: the restricted socket answers no KEYINFO; a key
// the agent holds still signs through it, as before cards were looked for.
func TestExtraSocketSoftKey(t *testing.T) {
	g := startAgent(t)
	e := newKey(t, "extra", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519})
	g.importSecret(e)
	extra := strings.TrimSpace(g.run(nil, "gpgconf", "--homedir", g.home, "--list-dirs", "agent-extra-socket"))
	k := open(t, writeCert(t, e), extra, "")
	if k.Signer.(*Signer).card != nil {
		t.Fatal("a soft key taken for a card key")
	}
	signAndVerify(t, k, crypto.SHA256, artifact)
}
