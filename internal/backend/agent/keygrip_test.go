package agent

import (
	"bytes"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/signstar/signstar/internal/backend"
)

// TestKeygripMatchesGnuPG generates keys of every supported algorithm with
// gpg itself and checks our keygrips against `gpg --with-keygrip`.
func TestKeygripMatchesGnuPG(t *testing.T) {
	g := startAgent(t)
	for _, algo := range []string{"rsa2048", "rsa3072", "ed25519", "nistp256", "nistp384"} {
		uid := algo + " <" + algo + "@grip.test>"
		g.gpg(nil, "--passphrase", "", "--quick-gen-key", uid, algo, "sign", "never")
	}
	want := g.keygrips()
	if len(want) != 5 {
		t.Fatalf("gpg listed %d keygrips, want 5", len(want))
	}
	el, err := openpgp.ReadKeyRing(bytes.NewReader([]byte(g.gpg(nil, "--export"))))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range el {
		pk := e.PrimaryKey
		fp := backend.Fingerprint(pk)
		got, err := KeygripOf(pk)
		if err != nil {
			t.Errorf("%s (algo %d): %v", fp, pk.PubKeyAlgo, err)
			continue
		}
		if got.String() != want[fp] {
			t.Errorf("%s (algo %d): keygrip %s, gpg says %s", fp, pk.PubKeyAlgo, got, want[fp])
		}
	}
}
