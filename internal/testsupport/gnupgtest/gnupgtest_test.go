package gnupgtest

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// TestCases checks that the fixtures are what their names say, with
// gpg --list-packets, so a change in GnuPG cannot quietly turn a case into
// another.
func TestCases(t *testing.T) {
	cs := Cases(t)
	want := map[string][]string{
		"offline-primary":        {"gnu-dummy S2K", ":secret sub key packet:"},
		"offline-primary-subfpr": {"gnu-dummy S2K"},
		"set-expire-all":         {"key expires after 2y"},
		"set-expire-older":       {"key expires after 2y"},
		"stub-newest":            {"gnu-dummy S2K"},
		"revoker-photo-uids":     {"revocation key:", ":attribute packet:", "Revocable Third"},
		noSigningSecret:          {"gnu-dummy S2K", ":secret sub key packet:"},
		P521:                     {"algo 19"},
		"card-newest":            {"gnu-divert-to-card S2K", "serial-number:  d2 76 00 01"},
		"same-second":            {":secret sub key packet:"},
	}
	// The key gpg signs with: 0 the primary, N the Nth subkey made.
	wantKey := map[string]int{
		"offline-primary":        1, // the signing subkey, not the stub primary
		"offline-primary-subfpr": 1,
		"set-expire-all":         2, // the newest subkey
		"set-expire-older":       2, // still the newest, though its binding is older
		"stub-newest":            1, // the older subkey, whose secret is there
		"revoker-photo-uids":     1,
		P521:                     0,
		"card-newest":            1, // the older subkey: the newest is on a card not here
		"same-second":            1, // the first of two made in the same second
	}
	for _, c := range cs {
		cmd := exec.Command("gpg", "--list-packets")
		cmd.Stdin = bytes.NewReader(c.Secret)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: gpg --list-packets: %v", c.Name, err)
		}
		for _, w := range want[c.Name] {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: no %q in\n%s", c.Name, w, out)
			}
		}
		// What GnuPG is believed to do, and signstar matches.
		if c.Name == noSigningSecret {
			if c.Signer != "" {
				t.Errorf("%s: gpg signed with %s", c.Name, c.Signer)
			}
		} else if w := c.Keys[wantKey[c.Name]]; c.Signer != w {
			t.Errorf("%s: gpg signs with %s, not key %d (%s) of %v", c.Name, c.Signer, wantKey[c.Name], w, c.Keys)
		}
		if c.Name == "same-second" {
			var times []int64
			r := packet.NewReader(bytes.NewReader(c.Public))
			for {
				p, err := r.Next()
				if err != nil {
					break
				}
				if k, ok := p.(*packet.PublicKey); ok && k.IsSubkey {
					times = append(times, k.CreationTime.Unix())
				}
			}
			if len(times) != 2 || times[0] != times[1] {
				t.Errorf("%s: subkey creation times %v, want two equal", c.Name, times)
			}
		}
		delete(want, c.Name)
	}
	if len(want) != 0 {
		t.Errorf("cases missing: %v", want)
	}
}
