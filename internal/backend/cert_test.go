package backend

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func dearmorFile(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block, err := armor.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(block.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPublicPacketsTestKeys: the public part of each GnuPG-exported secret
// key in testdata/keys is, byte for byte, gpg --export of it (the .pub).
func TestPublicPacketsTestKeys(t *testing.T) {
	keys, _ := filepath.Glob("../../testdata/keys/*.key")
	if len(keys) == 0 {
		t.Fatal("no test keys")
	}
	for _, k := range keys {
		name := strings.TrimSuffix(filepath.Base(k), ".key")
		t.Run(name, func(t *testing.T) {
			got, err := PublicPackets(dearmorFile(t, k))
			if err != nil {
				t.Fatal(err)
			}
			want := dearmorFile(t, strings.TrimSuffix(k, ".key")+".pub")
			if !bytes.Equal(got, want) {
				t.Fatalf("public part differs from the .pub (%d bytes, want %d)", len(got), len(want))
			}
			// A certificate passes unchanged.
			if again, err := PublicPackets(want); err != nil || !bytes.Equal(again, want) {
				t.Fatalf("the .pub is not kept as it is: %v", err)
			}
		})
	}
}

// TestPublicPacketsNewFormat: go-crypto writes new-format headers; a
// rewritten packet keeps that format, as go-crypto's own public export.
func TestPublicPacketsNewFormat(t *testing.T) {
	for _, cfg := range []*packet.Config{
		{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519},
		{Algorithm: packet.PubKeyAlgoECDSA, Curve: packet.CurveNistP384},
		{Algorithm: packet.PubKeyAlgoRSA, RSABits: 2048},
	} {
		e, err := openpgp.NewEntity("n", "", "n@test", cfg)
		if err != nil {
			t.Fatal(err)
		}
		var sec, pub bytes.Buffer
		if err := e.SerializePrivateWithoutSigning(&sec, nil); err != nil {
			t.Fatal(err)
		}
		if err := e.Serialize(&pub); err != nil {
			t.Fatal(err)
		}
		got, err := PublicPackets(sec.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pub.Bytes()) {
			t.Fatalf("algorithm %d: public part differs from go-crypto's Serialize", cfg.Algorithm)
		}
	}
}

func TestPublicPacketsRefusals(t *testing.T) {
	key := dearmorFile(t, "../../testdata/keys/subkey.key")
	trust := []byte{0xb0, 0x02, 0x00, 0x00} // old-format trust packet
	want, err := PublicPackets(key)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := PublicPackets(append(bytes.Clone(key), trust...)); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("a trust packet is not left out: %v", err)
	}
	for name, data := range map[string][]byte{
		"empty":          nil,
		"two keys":       append(bytes.Clone(key), key...),
		"truncated":      key[:len(key)-1],
		"trailing byte":  append(bytes.Clone(key), 0x00),
		"partial length": append(bytes.Clone(key), 0xcd, 0xe0, 0x00),
		"indeterminate":  append(bytes.Clone(key), 0xb7, 0x00),
		"no key":         {0xb4, 0x01, 'x'},
		"v3 secret":      {0x95, 0x00, 0x01, 0x03},
		"unknown algo":   {0x94, 0x07, 0x04, 0, 0, 0, 0, 99, 0},
		"short mpi":      {0x94, 0x08, 0x04, 0, 0, 0, 0, 1, 0x08, 0x00},
	} {
		if _, err := PublicPackets(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzPublicPackets: no panic; what comes out holds no secret or trust
// packet, is a fixed point, and is no longer than what went in.
func FuzzPublicPackets(f *testing.F) {
	keys, _ := filepath.Glob("../../testdata/keys/*.key")
	for _, k := range keys {
		f.Add(dearmorFile(f, k))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if b, ok := withoutCardStubs(data); ok {
			for len(b) > 0 {
				p, err := nextPacket(b)
				if err != nil {
					t.Fatalf("card stubs rewritten into no packets: %v", err)
				}
				if n, err := publicLength(p.body); err == nil && (p.tag == tagSecretKey || p.tag == tagSecretSubkey) && isCardStub(p.body[n:]) {
					t.Fatal("a card stub is left")
				}
				b = b[p.size:]
			}
		}
		ParseEntity(data) // must not panic
		out, err := PublicPackets(data)
		if err != nil {
			return
		}
		if len(out) > len(data) {
			t.Fatalf("%d bytes out of %d", len(out), len(data))
		}
		for b := out; len(b) > 0; {
			p, err := nextPacket(b)
			if err != nil {
				t.Fatalf("output does not split into packets: %v", err)
			}
			switch p.tag {
			case tagSecretKey, tagSecretSubkey, tagTrust:
				t.Fatalf("packet tag %d in the output", p.tag)
			}
			b = b[p.size:]
		}
		again, err := PublicPackets(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not a fixed point: %v", err)
		}
	})
}
