// Package gnupgtest makes test certificates with GnuPG itself, the way
// operators make theirs, and records which key gpg signs with. Tests of the
// key-file and gpg-agent backends and of `pubkey` compare signstar with it.
//
// The certificates are made once per test binary (Cases), in throw-away
// GnuPG homes under /tmp whose agents are stopped and whose files are
// removed before Cases returns; only the exported bytes are kept.
package gnupgtest

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/eddsa"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// Case is one certificate as GnuPG made and exported it.
type Case struct {
	Name string
	// Secret is what the operator gives signstar's key-file backend:
	// gpg --export-secret-keys, or --export-secret-subkeys, binary.
	Secret []byte
	// Public is gpg --export of the same certificate, binary: exported
	// from a home that holds only Secret (so --export-secret-subkeys
	// SUBFPR! gives a certificate with only that subkey).
	Public []byte
	// Signer is the fingerprint (uppercase hex) of the key that
	// gpg --detach-sign --local-user PRIMARY signs with in a home that
	// holds only Secret: the issuer fingerprint of its signature. It is
	// empty when gpg cannot sign with Secret.
	Signer string
	// Primary is the fingerprint of the primary key.
	Primary string
	// Keys are the fingerprints of the primary key and its subkeys, in
	// the order they were made.
	Keys []string
}

// P521 is the name of the case of an ECDSA P-521 key (no subkeys).
const P521 = "nistp521"

// noSigningSecret is the case where no signing key has its secret: only the
// encryption subkey's secret was exported. gpg cannot sign with it.
const noSigningSecret = "only-encryption-secret"

var (
	once  sync.Once
	cases []Case
	err   error
)

// Cases returns the certificates, made on the first call. It skips (fails
// in CI) without gpg.
func Cases(t testing.TB) []Case {
	t.Helper()
	testenv.NeedTool(t, "gpg", "gpg")
	testenv.NeedTool(t, "gpg-agent", "gpg-agent")
	testenv.NeedTool(t, "gpgconf", "gpgconf")
	once.Do(func() { cases, err = makeCases() })
	if err != nil {
		t.Fatalf("making GnuPG fixtures: %v", err)
	}
	return cases
}

// Home is a GnuPG home directory; its agent starts on first use.
type Home struct {
	Dir string
}

// NewHome makes an empty home under /tmp (the agent's socket path must stay
// under 108 bytes).
func NewHome() (*Home, error) {
	dir, err := os.MkdirTemp("/tmp", "sgg")
	if err != nil {
		return nil, err
	}
	return &Home{Dir: dir}, os.Chmod(dir, 0o700)
}

// Close stops the home's agent and removes it.
func (h *Home) Close() {
	exec.Command("gpgconf", "--homedir", h.Dir, "--kill", "all").Run()
	os.RemoveAll(h.Dir)
}

// GPG runs gpg in batch mode on the home, unprotected keys, loopback
// pinentry, and returns its stdout. at, if not zero, is the time gpg
// believes it is (--faked-system-time), so creation times are chosen.
func (h *Home) GPG(stdin []byte, at time.Time, args ...string) ([]byte, error) {
	base := []string{"--homedir", h.Dir, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}
	if !at.IsZero() {
		base = append(base, "--faked-system-time", fmt.Sprintf("%d!", at.Unix()))
	}
	cmd := exec.Command("gpg", append(base, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+h.Dir)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// Fingerprints lists the fingerprints of the key matching who, primary
// first, then subkeys in gpg's listing order.
func (h *Home) Fingerprints(who string) ([]string, error) {
	out, err := h.GPG(nil, time.Time{}, "--with-colons", "--list-keys", who)
	if err != nil {
		return nil, err
	}
	var fprs []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" && len(f) > 9 {
			fprs = append(fprs, f[9])
		}
	}
	if len(fprs) == 0 {
		return nil, fmt.Errorf("no key %q", who)
	}
	return fprs, nil
}

// toCard makes the Ed25519 (sub)key fpr look moved to an OpenPGP card, as
// keytocard leaves it: its secret is deleted, and the agent's key file
// becomes a shadowed key naming a card's serial number and key slot, so
// that gpg --export-secret-keys writes a divert-to-card stub for it.
func (h *Home) toCard(fpr string) error {
	out, err := h.GPG(nil, time.Time{}, "--with-colons", "--with-keygrip", "--list-keys", fpr)
	if err != nil {
		return err
	}
	var grip, last string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 9 && f[0] == "fpr" {
			last = f[9]
		}
		if len(f) > 9 && f[0] == "grp" && last == fpr {
			grip = f[9]
		}
	}
	pub, err := h.GPG(nil, time.Time{}, "--export", fpr)
	if err != nil {
		return err
	}
	var q []byte
	r := packet.NewReader(bytes.NewReader(pub))
	for {
		p, err := r.Next()
		if err != nil {
			break
		}
		if k, ok := p.(*packet.PublicKey); ok && fmt.Sprintf("%X", k.Fingerprint) == fpr {
			if ed, ok := k.PublicKey.(*eddsa.PublicKey); ok {
				q = append([]byte{0x40}, ed.X...)
			}
		}
	}
	if grip == "" || len(q) != 33 {
		return fmt.Errorf("no keygrip or Ed25519 point for %s", fpr)
	}
	if _, err := h.GPG(nil, time.Time{}, "--yes", "--delete-secret-keys", fpr+"!"); err != nil {
		return err
	}
	serial := []byte("\xd2\x76\x00\x01\x24\x01\x03\x04\x00\x06\x12\x34\x56\x78\x00\x00")
	var sexp bytes.Buffer
	sexp.WriteString("(20:shadowed-private-key(3:ecc(5:curve7:Ed25519)(5:flags5:eddsa)(1:q33:")
	sexp.Write(q)
	sexp.WriteString(")(8:shadowed5:t1-v1(16:")
	sexp.Write(serial)
	sexp.WriteString("9:OPENPGP.1))))")
	return os.WriteFile(filepath.Join(h.Dir, "private-keys-v1.d", grip+".key"), sexp.Bytes(), 0o600)
}

// SignerOf signs with gpg --detach-sign --local-user primary and returns the
// issuer fingerprint of the signature.
func (h *Home) SignerOf(primary string) (string, error) {
	data := filepath.Join(h.Dir, "data")
	if err := os.WriteFile(data, []byte("which key signs?\n"), 0o600); err != nil {
		return "", err
	}
	sig, err := h.GPG(nil, time.Time{}, "--local-user", primary, "--detach-sign", "--output", "-", data)
	if err != nil {
		return "", err
	}
	return IssuerFingerprint(sig)
}

// IssuerFingerprint reads the issuer fingerprint subpacket of a binary
// signature packet.
func IssuerFingerprint(sig []byte) (string, error) {
	p, err := packet.Read(bytes.NewReader(sig))
	if err != nil {
		return "", err
	}
	s, ok := p.(*packet.Signature)
	if !ok || len(s.IssuerFingerprint) == 0 {
		return "", errors.New("no signature with an issuer fingerprint")
	}
	return fmt.Sprintf("%X", s.IssuerFingerprint), nil
}

// makeCases makes every certificate. Creation times are set with
// --faked-system-time, a month ago plus some seconds, so that subkeys are
// created in a known order without waiting.
func makeCases() (out []Case, err error) {
	t0 := time.Now().Add(-30 * 24 * time.Hour).Truncate(time.Second)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	h, err := NewHome()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	runIn := func(stdin []byte, when time.Time, args ...string) {
		if err == nil {
			_, err = h.GPG(stdin, when, args...)
		}
	}
	run := func(when time.Time, args ...string) { runIn(nil, when, args...) }
	// newKey makes a primary key, with usage primaryUse, and signing
	// subkeys created 10 s apart; it returns their fingerprints.
	newKey := func(uid, algo, primaryUse string, subkeys int) []string {
		run(at(0), "--quick-gen-key", uid, algo, primaryUse, "never")
		if err != nil {
			return nil
		}
		var fprs []string
		fprs, err = h.Fingerprints("=" + uid)
		if err != nil {
			return nil
		}
		for i := 1; i <= subkeys; i++ {
			run(at(10*i), "--quick-add-key", fprs[0], algo, "sign", "never")
		}
		if err != nil {
			return nil
		}
		fprs, err = h.Fingerprints(fprs[0])
		return fprs
	}
	// add exports the case and finds the key gpg signs with in a home that
	// holds only the export.
	add := func(name string, keys []string, export ...string) {
		if err != nil {
			return
		}
		primary := keys[0]
		c := Case{Name: name, Primary: primary, Keys: keys}
		if c.Secret, err = h.GPG(nil, time.Time{}, export...); err != nil {
			return
		}
		var s *Home
		if s, err = NewHome(); err != nil {
			return
		}
		defer s.Close()
		if _, err = s.GPG(c.Secret, time.Time{}, "--import"); err != nil {
			return
		}
		if c.Public, err = s.GPG(nil, time.Time{}, "--export", primary); err != nil {
			return
		}
		if c.Signer, err = s.SignerOf(primary); err != nil && name == noSigningSecret {
			err = nil // as it should: gpg has no secret to sign with
		} else if err == nil && name == noSigningSecret {
			err = fmt.Errorf("%s: gpg signed with %s", name, c.Signer)
		}
		if err != nil {
			return
		}
		out = append(out, c)
	}

	// An [SC] primary (GnuPG's default) with a signing and an encryption
	// subkey, the primary kept offline: --export-secret-subkeys, for all
	// subkeys and for the signing subkey alone.
	k := newKey("Offline Primary <offline@test.signstar>", "ed25519", "sign,cert", 1)
	if err == nil {
		run(at(20), "--quick-add-key", k[0], "cv25519", "encr", "never")
		add("offline-primary", k, "--export-secret-subkeys", k[0])
		add("offline-primary-subfpr", k, "--export-secret-subkeys", k[1]+"!")
		var all []string
		if all, err = h.Fingerprints(k[0]); err == nil {
			add(noSigningSecret, k, "--export-secret-subkeys", all[len(all)-1]+"!")
		}
	}

	// Two signing subkeys, all of them extended at once: the binding
	// signatures are then all of the same second.
	k = newKey("Extended All <extall@test.signstar>", "ed25519", "sign,cert", 2)
	if err == nil {
		run(at(30), "--quick-set-expire", k[0], "2y", "*")
		add("set-expire-all", k, "--export-secret-keys", k[0])
	}

	// Only the older subkey extended, so its binding signature is the
	// newest; the primary only certifies, so a subkey must sign.
	k = newKey("Extended Older <extold@test.signstar>", "ed25519", "cert", 2)
	if err == nil {
		run(at(30), "--quick-set-expire", k[0], "2y", k[1])
		add("set-expire-older", k, "--export-secret-keys", k[0])
	}

	// Two signing subkeys created in the same second: gpg takes the first
	// in the certificate, as it takes a later one only if strictly newer.
	k = newKey("Same Second <same@test.signstar>", "ed25519", "cert", 0)
	if err == nil {
		run(at(10), "--quick-add-key", k[0], "ed25519", "sign", "never")
		run(at(10), "--quick-add-key", k[0], "ed25519", "sign", "never")
		if k, err = h.Fingerprints(k[0]); err == nil {
			add("same-second", k, "--export-secret-keys", k[0])
		}
	}

	// The newest signing subkey is a stub (its secret deleted, as after
	// keytocard): gpg signs with the older one.
	k = newKey("Stub Newest <stub@test.signstar>", "ed25519", "sign,cert", 2)
	if err == nil {
		run(time.Time{}, "--yes", "--delete-secret-keys", k[2]+"!")
		add("stub-newest", k, "--export-secret-keys", k[0])
	}

	// The newest signing subkey on a smartcard (keytocard): gpg exports
	// it as a divert-to-card stub that holds the card's serial number.
	k = newKey("Card Newest <card@test.signstar>", "ed25519", "sign,cert", 2)
	if err == nil {
		err = h.toCard(k[2])
		add("card-newest", k, "--export-secret-keys", k[0])
	}

	// A designated revoker, three user IDs and a photo ID, and a signing
	// subkey.
	k = newKey("Revocable <rev@test.signstar>", "ed25519", "sign,cert", 1)
	r := newKey("The Revoker <revoker@test.signstar>", "ed25519", "cert", 0)
	if err == nil {
		run(at(40), "--quick-add-uid", k[0], "Revocable Second <rev2@test.signstar>")
		run(at(50), "--quick-add-uid", k[0], "Revocable Third <rev3@test.signstar>")
		runIn([]byte("addrevoker\n"+r[0]+"\ny\nsave\n"), at(60), "--command-fd", "0", "--edit-key", k[0])
		var photo []byte
		if photo, err = tinyJPEG(); err == nil {
			jpg := filepath.Join(h.Dir, "photo.jpg")
			if err = os.WriteFile(jpg, photo, 0o600); err == nil {
				runIn([]byte("addphoto\n"+jpg+"\nsave\n"), at(70), "--command-fd", "0", "--edit-key", k[0])
			}
		}
		add("revoker-photo-uids", k, "--export-secret-keys", k[0])
	}

	// ECDSA on P-521, which gpg signs with SHA-512.
	k = newKey("NIST P-521 <p521@test.signstar>", "nistp521", "sign,cert", 0)
	if err == nil {
		add(P521, k, "--export-secret-keys", k[0])
	}
	return out, err
}

// tinyJPEG is an 8x8 grey JPEG for a photo ID.
func tinyJPEG() ([]byte, error) {
	im := image.NewGray(image.Rect(0, 0, 8, 8))
	for i := range im.Pix {
		im.Pix[i] = uint8(i * 4)
	}
	var buf bytes.Buffer
	err := jpeg.Encode(&buf, im, &jpeg.Options{Quality: 50})
	return buf.Bytes(), err
}
