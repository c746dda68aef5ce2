package piv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/backend"
)

func writeSecret(t *testing.T, dir string, cfg *packet.Config) (*openpgp.Entity, string) {
	t.Helper()
	cfg.Time = func() time.Time { return testNow }
	e, err := openpgp.NewEntity("Imported", "", "imp@example.org", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, _ := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err := e.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	p := filepath.Join(dir, fmt.Sprintf("secret-%d-%d.asc", cfg.Algorithm, len(cfg.Curve)))
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return e, p
}

func TestSetupImport(t *testing.T) {
	r := newRig(t)
	for _, tc := range []struct {
		name string
		cfg  *packet.Config
		slot string
	}{
		{"rsa2048", &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 2048}, "9d"},
		{"ecc-p256", &packet.Config{Algorithm: packet.PubKeyAlgoECDSA, Curve: packet.CurveNistP256}, "9c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.t = t
			orig, secret := writeSecret(t, r.dir, tc.cfg)
			armored, err := Setup(SetupOptions{Reader: "Virtual PCD", Slot: tc.slot, UID: "Imported <imp@example.org>", ImportFile: secret, PINFile: r.pin, Now: testNow})
			if err != nil {
				t.Fatal(err)
			}
			e, err := backend.ParseEntity(armored)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(e.PrimaryKey.Fingerprint, orig.PrimaryKey.Fingerprint) {
				t.Fatalf("imported key has fingerprint %X, the original %X", e.PrimaryKey.Fingerprint, orig.PrimaryKey.Fingerprint)
			}
			cert := r.file("imported-"+tc.slot+".asc", string(armored), 0o644)
			k, err := r.open(cert, tc.slot, r.pin)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			if _, err := r.sign(k, []byte("imported")); err != nil {
				t.Fatal(err)
			}
		})
	}
	// Ed25519 does not go into a PIV slot.
	_, secret := writeSecret(t, r.dir, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	_, err := Setup(SetupOptions{Reader: "Virtual PCD", Slot: "9e", UID: "x <x@example.org>", ImportFile: secret, PINFile: r.pin, Now: testNow})
	var ue *UsageError
	if !errors.As(err, &ue) {
		t.Fatalf("Ed25519 import: %v, want a UsageError", err)
	}
	// A key already in the slot is kept unless Force.
	_, err = Setup(SetupOptions{Reader: "Virtual PCD", Slot: "9c", UID: "x <x@example.org>", Generate: "ecc-p256", PINFile: r.pin, Now: testNow})
	if !errors.As(err, &ue) {
		t.Fatalf("setup over a used slot: %v, want a UsageError", err)
	}
}
