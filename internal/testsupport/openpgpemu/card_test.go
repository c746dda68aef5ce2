package openpgpemu

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"testing"
)

func apdu(t *testing.T, c *Card, hexAPDU string, data []byte, want uint16) []byte {
	t.Helper()
	b, err := hex.DecodeString(hexAPDU)
	if err != nil {
		t.Fatal(err)
	}
	if data != nil {
		b = append(append(b, byte(len(data))), data...)
	}
	r := c.Transmit(b)
	if got := uint16(r[len(r)-2])<<8 | uint16(r[len(r)-1]); got != want {
		t.Fatalf("%s %x: status %04X, want %04X", hexAPDU, data, got, want)
	}
	return r[:len(r)-2]
}

// TestCounters: wrong PINs count down and block at zero, a right one
// resets, the admin PIN and the resetting code unblock, VERIFY P1=FF and a
// reset clear the security status.
func TestCounters(t *testing.T) {
	c := NewCard(Options{})
	apdu(t, c, "00a40400", aidPrefix, 0x9000)
	apdu(t, c, "00200081", []byte("000000"), 0x63c2)
	apdu(t, c, "00200081", []byte("000000"), 0x63c1)
	apdu(t, c, "00200081", nil, 0x63c1) // asks only
	apdu(t, c, "00200081", []byte(DefaultPIN), 0x9000)
	if c.PINRetries() != 3 {
		t.Fatalf("%d tries after the right PIN", c.PINRetries())
	}
	apdu(t, c, "00200081", nil, 0x9000)
	apdu(t, c, "00ff0081", nil, 0x6d00) // not VERIFY
	apdu(t, c, "0020ff81", nil, 0x9000) // reset the status
	apdu(t, c, "00200081", nil, 0x63c3) // no longer verified
	apdu(t, c, "002a9e9a", []byte{1}, 0x6982)
	for i := 2; i >= 0; i-- {
		apdu(t, c, "00200082", []byte("999999"), 0x63c0|uint16(i))
	}
	apdu(t, c, "00200081", []byte(DefaultPIN), 0x6983) // blocked, even the right one
	if c.PINRetries() != 0 {
		t.Fatal("not blocked")
	}
	// Unblock with PW3: RESET RETRY COUNTER P1=02.
	apdu(t, c, "002c0281", []byte("654321"), 0x6982)
	apdu(t, c, "00200083", []byte(DefaultAdminPIN), 0x9000)
	apdu(t, c, "002c0281", []byte("654321"), 0x9000)
	apdu(t, c, "00200081", []byte("654321"), 0x9000)
	// Change PW1, then set a resetting code and unblock with it.
	apdu(t, c, "00240081", []byte("654321"+"abcdefg"), 0x9000)
	apdu(t, c, "00200081", []byte("abcdefg"), 0x9000)
	apdu(t, c, "00da00d3", []byte("resetcode"), 0x9000)
	apdu(t, c, "002c0081", []byte("resetcodX"+"1234567"), 0x63c2)
	apdu(t, c, "002c0081", []byte("resetcode"+"1234567"), 0x9000)
	apdu(t, c, "00200081", []byte("1234567"), 0x9000)
	c.Reset()
	apdu(t, c, "00200081", nil, 0x63c3)
	apdu(t, c, "00200083", nil, 0x63c3)
	// PW3 counts and blocks too.
	for i := 2; i >= 0; i-- {
		apdu(t, c, "00200083", []byte("00000000"), 0x63c0|uint16(i))
	}
	apdu(t, c, "00200083", []byte(DefaultAdminPIN), 0x6983)
}

// TestSignOnce: generate on the card, then PW1 (81) is good for one
// signature ("forced"), unless PW status byte 1 says several.
func TestSignOnce(t *testing.T) {
	c := NewCard(Options{})
	apdu(t, c, "00a40400", aidPrefix, 0x9000)
	apdu(t, c, "00200083", []byte(DefaultAdminPIN), 0x9000)
	apdu(t, c, "00da00c1", Attr("ed25519"), 0x9000)
	apdu(t, c, "00da00c3", Attr("ecdsa-p256"), 0x9000)
	apdu(t, c, "00da00c2", Attr("ed25519"), 0x6a80) // not for decryption
	pub := apdu(t, c, "00478000", []byte{0xb6, 0x00}, 0x9000)
	if !bytes.Equal(apdu(t, c, "00478100", []byte{0xb6, 0x00}, 0x9000), pub) {
		t.Fatal("READ PUBLIC KEY differs from what GENERATE returned")
	}
	msg := []byte("the digest gpg sends")
	apdu(t, c, "002a9e9a", msg, 0x6982)
	apdu(t, c, "00200081", []byte(DefaultPIN), 0x9000)
	sig := apdu(t, c, "002a9e9a", msg, 0x9000)
	if !ed25519.Verify(c.Public(KeySign).(ed25519.PublicKey), msg, sig) {
		t.Fatal("bad Ed25519 signature")
	}
	apdu(t, c, "002a9e9a", msg, 0x6982) // forced: once
	apdu(t, c, "00da00c4", []byte{1}, 0x9000)
	apdu(t, c, "00200081", []byte(DefaultPIN), 0x9000)
	apdu(t, c, "002a9e9a", msg, 0x9000)
	apdu(t, c, "002a9e9a", msg, 0x9000)
	if n := apdu(t, c, "00ca0093", nil, 0x9000); !bytes.Equal(n, []byte{0, 0, 3}) {
		t.Fatalf("signature counter %x, want 3", n)
	}
	// Authentication with ECDSA P-256: PW1 in mode 82.
	apdu(t, c, "00478000", []byte{0xa4, 0x00}, 0x9000)
	d := sha256.Sum256(msg)
	apdu(t, c, "00880000", d[:], 0x6982)
	apdu(t, c, "00200082", []byte(DefaultPIN), 0x9000)
	rs := apdu(t, c, "00880000", d[:], 0x9000)
	if len(rs) != 64 || !ecdsa.Verify(c.Public(KeyAuth).(*ecdsa.PublicKey), d[:], new(big.Int).SetBytes(rs[:32]), new(big.Int).SetBytes(rs[32:])) {
		t.Fatalf("bad ECDSA signature %x", rs)
	}
}
