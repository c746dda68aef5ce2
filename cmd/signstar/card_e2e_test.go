package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/testsupport/openpgpemu"
	"github.com/signstar/signstar/internal/testsupport/pivemu"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// cardPIN is PW1 and PW3 of the emulated card (gpg --card-edit's prompts
// are all answered with it).
const cardPIN = "12345678"

// cardRig is the real signstar binary with a gpg-agent profile whose key
// was generated on an emulated OpenPGP card behind the agent.
type cardRig struct {
	t                          testing.TB
	dir, bin, cfg, cert, audit string
	card                       *openpgpemu.Card
	emu                        *pivemu.Emulator
	g                          *openpgpemu.GnuPG
}

func newCardRig(t testing.TB) *cardRig {
	t.Helper()
	dir := t.TempDir()
	r := &cardRig{t: t, dir: dir, bin: filepath.Join(dir, "signstar"), card: openpgpemu.NewCard(openpgpemu.Options{PIN: cardPIN}),
		cert: filepath.Join(dir, "card.asc"), audit: filepath.Join(dir, "audit.jsonl"), cfg: filepath.Join(dir, "config.toml")}
	build := exec.Command("go", "build", "-trimpath", "-o", r.bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as make build does
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	r.emu = openpgpemu.Start(t, r.card)
	r.g = openpgpemu.StartGnuPG(t)
	r.g.WaitCard()
	fpr := r.g.GenerateOnCard(cardPIN, "Card Repo", "card@example.org")
	if err := os.WriteFile(r.cert, []byte(r.g.GPG(nil, "--export", "--armor", fpr)), 0o644); err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(dir, "card.pin")
	if err := os.WriteFile(pin, []byte(cardPIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.config(r.cfg, "card", r.cert, fmt.Sprintf("pin_file = %q\n", pin))
	return r
}

// config writes a configuration with one gpg-agent profile on the rig's
// agent.
func (r *cardRig) config(path, name, cert, extra string) {
	r.t.Helper()
	text := fmt.Sprintf(`[audit]
path = %q

[sandbox]
mode = %q

[[profile]]
name = %q
backend = "gpg-agent"
key = %q
users = [%q]

[profile.gpg_agent]
socket = %q
%s`, r.audit, strictestMode(), name, cert, testUser(), r.g.Socket, extra)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *cardRig) run(stdin []byte, args ...string) ([]byte, string, int) {
	r.t.Helper()
	cmd := exec.Command(r.bin, append([]string{"--config", r.cfg}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatal(err)
	}
	return out.Bytes(), errb.String(), code
}

// TestCardE2E: the real binary, in the strictest sandbox mode, signs with
// the key on the card (gpgv accepts, the record names the key); with one
// PIN attempt left it refuses before any PIN is sent (exit 1, nothing on
// stdout, one line with seed 000's advice, a failed record), the counter
// still 1; a card pulled out fails the same way with its own message.
func TestCardE2E(t *testing.T) {
	gpgv := testenv.NeedTool(t, "gpgv", "gpgv")
	r := newCardRig(t)
	data := []byte("signed on the card through gpg-agent\n")
	sig, stderr, code := r.run(data, "sign")
	if code != 0 {
		t.Fatalf("sign: exit %d: %s", code, stderr)
	}
	keyring := filepath.Join(r.dir, "card.gpg")
	r.g.GPG(nil, "--yes", "--output", keyring, "--dearmor", r.cert)
	os.WriteFile(filepath.Join(r.dir, "data"), data, 0o644)
	os.WriteFile(filepath.Join(r.dir, "data.sig"), sig, 0o644)
	if out, err := exec.Command(gpgv, "--keyring", keyring, filepath.Join(r.dir, "data.sig"), filepath.Join(r.dir, "data")).CombinedOutput(); err != nil {
		t.Fatalf("gpgv rejects the card's signature: %v\n%s", err, out)
	}
	rec := lastAuditRecord(t, r.audit)
	if rec.Outcome != audit.Signed || rec.Key == "" {
		t.Fatalf("audit: %q key %q", rec.Outcome, rec.Key)
	}

	r.card.SetPINRetries(1)
	shown := r.card.Verifies()
	out, stderr, code := r.run(data, "sign")
	if code != 1 || len(out) != 0 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "signstar: ") ||
		!strings.Contains(stderr, "only 1 attempt left") || !strings.Contains(stderr, "admin PIN") {
		t.Fatalf("sign at 1 attempt: exit %d, stdout %d bytes, stderr %q", code, len(out), stderr)
	}
	if r.card.PINRetries() != 1 || r.card.Verifies() != shown {
		t.Fatalf("the refused card was touched: %d attempts, %d PINs shown", r.card.PINRetries(), r.card.Verifies()-shown)
	}
	rec = lastAuditRecord(t, r.audit)
	if rec.Outcome != audit.Failed || !strings.Contains(rec.Reason, "only 1 attempt left") {
		t.Errorf("audit of the refusal: %q %q", rec.Outcome, rec.Reason)
	}
	r.card.SetPINRetries(3)

	r.emu.Remove()
	out, stderr, code = r.run(data, "sign")
	if code != 1 || len(out) != 0 || !strings.Contains(stderr, "is not in the reader") || strings.Contains(stderr, cardPIN) {
		t.Fatalf("sign without the card: exit %d, stderr %q", code, stderr)
	}
	if rec := lastAuditRecord(t, r.audit); rec.Outcome != audit.Failed || !strings.Contains(rec.Reason, "is not in the reader") {
		t.Errorf("audit without the card: %q %q", rec.Outcome, rec.Reason)
	}
	if _, stderr, code := r.run(nil, "audit", "verify"); code != 0 {
		t.Errorf("audit verify: %s", stderr)
	}
}

// BenchmarkCardSign1KiB: one whole signstar process signing 1 KiB with
// the key on the emulated card (agent, scdaemon, pcscd, vpcd; the PIN
// guard's reads and the PIN sent once) against the same agent holding a
// soft RSA-2048 key, in the strictest sandbox mode this kernel allows.
//
//	go test ./cmd/signstar -run '^$' -bench CardSign1KiB
func BenchmarkCardSign1KiB(b *testing.B) {
	r := newCardRig(b)
	input := filepath.Join(r.dir, "in")
	if err := os.WriteFile(input, bytes.Repeat([]byte{0x5a}, 1024), 0o644); err != nil {
		b.Fatal(err)
	}
	r.g.GPG(nil, "--passphrase", "", "--quick-gen-key", "Soft Repo <soft@example.org>", "rsa2048", "sign", "never")
	soft := filepath.Join(r.dir, "soft.asc")
	if err := os.WriteFile(soft, []byte(r.g.GPG(nil, "--export", "--armor", "soft@example.org")), 0o644); err != nil {
		b.Fatal(err)
	}
	softCfg := filepath.Join(r.dir, "soft.toml")
	r.config(softCfg, "soft", soft, "")
	b.Run("card-rsa2048", func(b *testing.B) {
		runProcess(b, input, r.bin, "--config", r.cfg, "sign")
	})
	b.Run("agent-rsa2048", func(b *testing.B) {
		runProcess(b, input, r.bin, "--config", softCfg, "sign")
	})
}
