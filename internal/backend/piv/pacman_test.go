package piv

import (
	"testing"

	"github.com/signstar/signstar/internal/testsupport/pacmantest"
)

// TestPacmanAcceptsCardSignatures signs a package and its repository
// database with keys generated on the emulated card (through the real
// pcscd) and has pacman sync and install them with SigLevel = Required
// TrustedOnly; a changed database or package is refused.
func TestPacmanAcceptsCardSignatures(t *testing.T) {
	pacmantest.NeedTools(t)
	r := newRig(t)
	for _, tc := range []struct{ alg, slot string }{
		{"ecc-p256", "9c"}, {"rsa2048", "9d"},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			r.t = t
			certPath := r.setup(tc.slot, tc.alg)
			k, err := r.open(certPath, tc.slot, r.pin)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			before := r.card.Signatures()
			o := pacmantest.Prepare(t, pacmantest.Hello, func(data []byte) ([]byte, error) {
				return r.sign(k, data)
			})
			if n := r.card.Signatures() - before; n != 2 {
				t.Fatalf("the card made %d signatures for the package and the database, want 2", n)
			}
			o.Certs = [][]byte{mustRead(t, certPath)}
			env := pacmantest.Install(t, o)
			env.RefuseTampered(t)
		})
	}
}
