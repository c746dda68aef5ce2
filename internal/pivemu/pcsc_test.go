package pivemu

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/go-piv/piv-go/v2/piv"
)

// TestPIVGo drives the emulator with piv-go through pcscd and vpcd, as
// signstar does: generate in each algorithm, sign, verify with the standard
// library.
func TestPIVGo(t *testing.T) {
	card := NewCard(Options{})
	_, reader := Start(t, card)
	yk, err := piv.Open(reader)
	if err != nil {
		t.Fatal(err)
	}
	defer yk.Close()
	if v := yk.Version(); v.Major != 5 {
		t.Errorf("version %+v", v)
	}
	if s, err := yk.Serial(); err != nil || s != 0x00c0ffee {
		t.Errorf("serial %x, %v", s, err)
	}
	digest := sha256.Sum256([]byte("hello"))
	for _, tc := range []struct {
		name string
		alg  piv.Algorithm
		slot piv.Slot
	}{
		{"p256", piv.AlgorithmEC256, piv.SlotSignature},
		{"p384", piv.AlgorithmEC384, piv.SlotAuthentication},
		{"rsa2048", piv.AlgorithmRSA2048, piv.SlotKeyManagement},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, err := yk.GenerateKey(piv.DefaultManagementKey, tc.slot, piv.Key{Algorithm: tc.alg, PINPolicy: piv.PINPolicyAlways, TouchPolicy: piv.TouchPolicyNever})
			if err != nil {
				t.Fatal(err)
			}
			info, err := yk.KeyInfo(tc.slot)
			if err != nil {
				t.Fatal(err)
			}
			if info.Algorithm != tc.alg || info.PINPolicy != piv.PINPolicyAlways {
				t.Errorf("key info %+v", info)
			}
			priv, err := yk.PrivateKey(tc.slot, pub, piv.KeyAuth{PIN: piv.DefaultPIN})
			if err != nil {
				t.Fatal(err)
			}
			sig, err := priv.(crypto.Signer).Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			switch pub := pub.(type) {
			case *ecdsa.PublicKey:
				if !ecdsa.VerifyASN1(pub, digest[:], sig) {
					t.Error("ECDSA signature does not verify")
				}
			case *rsa.PublicKey:
				if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
					t.Error(err)
				}
			}
		})
	}
	// A wrong PIN costs one attempt and says how many are left.
	err = yk.VerifyPIN("654321")
	var ae piv.AuthErr
	if !errors.As(err, &ae) || ae.Retries != 2 {
		t.Fatalf("wrong PIN: %v, want 2 retries left", err)
	}
	if n, err := yk.Retries(); err != nil || n != 2 || card.PINRetries() != 2 {
		t.Fatalf("retries %d, %v; card says %d", n, err, card.PINRetries())
	}
}
