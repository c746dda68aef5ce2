package openpgpemu

import (
	"strings"
	"testing"
)

// TestCardStatus: scdaemon, through pcscd and vpcd, finds the card and
// reads it as gpg --card-status and the agent's LEARN show it.
func TestCardStatus(t *testing.T) {
	card := NewCard(Options{})
	recordCorpus(t, card)
	Start(t, card)
	g := StartGnuPG(t)
	g.WaitCard()
	out := g.GPG(nil, "--card-status")
	t.Logf("%s", out)
	if !strings.Contains(out, card.Serial()) {
		t.Fatalf("gpg --card-status does not show the card %s:\n%s", card.Serial(), out)
	}
	learn := g.Agent("LEARN --sendinfo")
	t.Logf("%s", learn)
	if !strings.Contains(learn, "S SERIALNO "+card.Serial()) {
		t.Fatalf("LEARN --sendinfo: no SERIALNO %s:\n%s", card.Serial(), learn)
	}
}

// TestGenerate: gpg --card-edit generate makes three keys on the card, and
// gpg signs with the card's key.
func TestGenerate(t *testing.T) {
	card := NewCard(Options{PIN: "12345678"})
	recordCorpus(t, card)
	Start(t, card)
	g := StartGnuPG(t)
	g.WaitCard()
	fpr := g.GenerateOnCard("12345678", "Card Signer", "card@example.org")
	for k := 0; k < 3; k++ {
		if !card.HasKey(k) {
			t.Errorf("slot %d has no key", k)
		}
	}
	out := g.GPG(nil, "--card-status")
	if !strings.Contains(out, "Signature key ....: "+spaced(fpr)) {
		t.Errorf("card-status does not show %s as signature key:\n%s", fpr, out)
	}
	t.Logf("%s", out)
}

// spaced groups a fingerprint as gpg --card-status prints it.
func spaced(fpr string) string {
	var b strings.Builder
	for i := 0; i < len(fpr); i += 4 {
		if i == 20 {
			b.WriteByte(' ')
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(fpr[i:min(i+4, len(fpr))])
	}
	return b.String()
}

// TestPasswd: gpg --card-edit's passwd changes the PIN (CHANGE REFERENCE
// DATA) and, with the admin PIN, unblocks a blocked one (RESET RETRY
// COUNTER), through scdaemon.
func TestPasswd(t *testing.T) {
	card := NewCard(Options{})
	Start(t, card)
	g := StartGnuPG(t)
	g.WaitCard()
	commands := []string{"admin", "passwd", "quit"}
	menu := []string{"1", "2", "q"}
	// A new PIN is asked twice, as pinentry would ask to repeat it.
	pins := []string{DefaultPIN, "654321", "654321", DefaultAdminPIN, "111111", "111111"}
	blocked := false
	g.Interact(func(kw string) (string, bool) {
		var q *[]string
		switch kw {
		case "cardedit.prompt":
			q = &commands
		case "cardutil.change_pin.menu":
			q = &menu
			if len(menu) == 2 && !blocked {
				// After the change: block PW1, to be unblocked.
				if !card.PINIs("654321") {
					t.Errorf("the PIN was not changed")
				}
				card.SetPINRetries(0)
				blocked = true
			}
		case "passphrase.enter":
			q = &pins
		default:
			return "", false
		}
		if len(*q) == 0 {
			return "", false
		}
		a := (*q)[0]
		*q = (*q)[1:]
		return a, true
	}, "--card-edit")
	if len(pins) != 0 || len(menu) != 0 {
		t.Fatalf("gpg asked fewer PINs or menu choices than expected: left %q %q", pins, menu)
	}
	if !card.PINIs("111111") || card.PINRetries() != 3 {
		t.Fatalf("after unblocking: PIN changed %v, %d tries", card.PINIs("111111"), card.PINRetries())
	}
}
