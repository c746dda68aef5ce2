package pivemu

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-piv/piv-go/v2/piv"
)

// TestPIVGo drives the emulator with piv-go through pcscd and vpcd, as
// signstar does: generate in each algorithm, sign, verify with the standard
// library.
func TestPIVGo(t *testing.T) {
	card := NewCard(Options{})
	var trace [][]byte
	card.Trace(func(b []byte) { trace = append(trace, b) })
	if os.Getenv("PIVEMU_WRITE_CORPUS") != "" {
		defer func() { writeCorpus(t, trace) }()
	}
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
	// IMPORT an RSA key (chained APDUs), store and read back an X.509
	// certificate for it (PUT DATA chained, GET DATA answered in pieces).
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if err := yk.SetPrivateKeyInsecure(piv.DefaultManagementKey, piv.SlotCardAuthentication, rk, piv.Key{PINPolicy: piv.PINPolicyNever, TouchPolicy: piv.TouchPolicyNever}); err != nil {
		t.Fatal(err)
	}
	if pub, ok := card.PublicKey(0x9e).(*rsa.PublicKey); !ok || !pub.Equal(&rk.PublicKey) {
		t.Fatal("imported key differs")
	}
	priv, err := yk.PrivateKey(piv.SlotCardAuthentication, &rk.PublicKey, piv.KeyAuth{})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pivemu"}, NotBefore: time.Unix(1e9, 0), NotAfter: time.Unix(2e9, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &rk.PublicKey, priv)
	if err != nil {
		t.Fatalf("self-signing on the card: %v", err)
	}
	cert, _ := x509.ParseCertificate(der)
	if err := yk.SetCertificate(piv.DefaultManagementKey, piv.SlotCardAuthentication, cert); err != nil {
		t.Fatal(err)
	}
	got, err := yk.Certificate(piv.SlotCardAuthentication)
	if err != nil || !bytes.Equal(got.Raw, der) {
		t.Fatalf("certificate read back: %v", err)
	}
	if err := got.CheckSignature(got.SignatureAlgorithm, got.RawTBSCertificate, got.Signature); err != nil {
		t.Fatal(err)
	}
	// A wrong management key is refused.
	bad := bytes.Repeat([]byte{9}, 24)
	if _, err := yk.GenerateKey(bad, piv.SlotSignature, piv.Key{Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyOnce, TouchPolicy: piv.TouchPolicyNever}); err == nil {
		t.Fatal("generated with a wrong management key")
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

// writeCorpus stores the APDUs piv-go sent, and the TLV data inside them, as
// seeds for FuzzAPDU and FuzzTLV.
func writeCorpus(t *testing.T, trace [][]byte) {
	seen := map[string]bool{}
	write := func(fuzz string, b []byte) {
		if seen[fuzz+string(b)] {
			return
		}
		seen[fuzz+string(b)] = true
		dir := filepath.Join("testdata", "fuzz", fuzz)
		os.MkdirAll(dir, 0o755)
		name := fmt.Sprintf("piv-go-%03d", len(seen))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)), 0o644); err != nil {
			t.Error(err)
		}
	}
	for _, b := range trace {
		write("FuzzAPDU", b)
		if c, err := ParseCommand(b); err == nil && len(c.Data) > 0 {
			if _, err := ParseTLVs(c.Data); err == nil && !bytes.Equal(c.Data[:1], []byte{0xa0}) {
				write("FuzzTLV", c.Data)
			}
		}
	}
	t.Logf("wrote %d seeds", len(seen))
}

// TestAESManagementKey: on firmware 5.3+ piv-go reads the management key's
// algorithm from the metadata and authenticates with AES.
func TestAESManagementKey(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, 24)
	card := NewCard(Options{ManagementAlg: AlgAES192, ManagementKey: key, Version: [3]byte{5, 7, 1}})
	_, reader := Start(t, card)
	yk, err := piv.Open(reader)
	if err != nil {
		t.Fatal(err)
	}
	defer yk.Close()
	opts := piv.Key{Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyOnce, TouchPolicy: piv.TouchPolicyNever}
	if _, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotSignature, opts); err == nil {
		t.Fatal("the default key authenticated against an AES card key")
	}
	if _, err := yk.GenerateKey(key, piv.SlotSignature, opts); err != nil {
		t.Fatal(err)
	}
	if card.PublicKey(0x9c) == nil {
		t.Fatal("no key generated")
	}
}
