package pivemu

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func apdu(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func status(r []byte) uint16 { return uint16(r[len(r)-2])<<8 | uint16(r[len(r)-1]) }

func selected(t *testing.T, opt Options) *Card {
	c := NewCard(opt)
	if r := c.Transmit(apdu(t, "00a4040005a000000308")); status(r) != 0x9000 {
		t.Fatalf("select: %x", r)
	}
	return c
}

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		in      string
		ok      bool
		data, n int // data length, Le
	}{
		{"00a40400", true, 0, 0},
		{"00fd000000", true, 0, 256},             // case 2: piv-go's "no data"
		{"00a4040005a000000308", true, 5, 0},     // case 3
		{"00a4040005a00000030800", true, 5, 256}, // case 4
		{"00cb3fff000003", true, 0, 3},           // case 2 extended
		{"00cb3fff0000035c017e", true, 3, 0},     // case 3 extended
		{"00cb3fff0000035c017e0000", true, 3, 65536},
		{"00a4", false, 0, 0},
		{"00a4040005a0000003", false, 0, 0},   // Lc too long
		{"00a4040002a0000003", false, 0, 0},   // trailing bytes
		{"00cb3fff000000", true, 0, 65536},    // case 2 extended, Le 65536
		{"00cb3fff0000005c", false, 0, 0},     // extended Lc 0
		{"00cb3fff00000a5c017e", false, 0, 0}, // extended Lc too long
	} {
		c, err := ParseCommand(apdu(t, tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.in, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrAPDU) {
				t.Errorf("%s: %v is not ErrAPDU", tc.in, err)
			}
			continue
		}
		if len(c.Data) != tc.data || c.Le != tc.n {
			t.Errorf("%s: %d data bytes, Le %d", tc.in, len(c.Data), c.Le)
		}
		if !bytes.Equal(c.Encode(), apdu(t, tc.in)) {
			t.Errorf("%s: encodes as %x", tc.in, c.Encode())
		}
	}
}

func TestParseTLV(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"7c028000", true},
		{"5c035fc10a", true},
		{"7f490386010a", true},
		{"53820100" + hex.EncodeToString(make([]byte, 256)), true},
		{"53817f" + hex.EncodeToString(make([]byte, 127)), false}, // not minimal
		{"5380", false},       // indefinite
		{"7c0380", false},     // short
		{"5fc1", false},       // truncated tag
		{"5fc1c1c101", false}, // tag too long
		{"00", false},         // padding
		{"5384000000", false}, // length too long
		{"7c02800000", false}, // trailing padding byte
		{"", true},            // nothing at all
		{"8000810100", true},  // two objects
		{"82820001" + "00", false},
	} {
		_, err := ParseTLVs(apdu(t, tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.in, err)
		}
	}
}

func TestPINCounter(t *testing.T) {
	c := selected(t, Options{PINRetries: 3})
	want := func(cmd string, sw uint16) {
		t.Helper()
		if r := c.Transmit(apdu(t, cmd)); status(r) != sw {
			t.Fatalf("%s: %x, want %04x", cmd, r, sw)
		}
	}
	const (
		empty = "0020008000"
		right = "002000800831323334353600ff"
		wrong = "0020008008313131313131ffff"
	)
	want(empty, 0x63c3)
	want(wrong, 0x63c2)
	want(wrong, 0x63c1)
	want(empty, 0x63c1)
	if c.PINRetries() != 1 {
		t.Fatal(c)
	}
	want(right[:len(right)-4]+"ffff", 0x9000) // 123456 + FF padding
	want(empty, 0x9000)                       // verified
	want("0020ff8000", 0x9000)                // reset security status
	want(empty, 0x63c3)
	for i := 2; i >= 0; i-- {
		want(wrong, 0x63c0|uint16(i))
	}
	want(empty, 0x6983)
	want("0020008008313233343536ffff", 0x6983) // blocked even for the right PIN
	// RESET RETRY with the PUK sets a new PIN and a full counter.
	want("002c008010"+"3132333435363738"+"363534333231ffff", 0x9000)
	want("0020008008363534333231ffff", 0x9000)
	if c.PINRetries() != 3 {
		t.Fatal(c)
	}
	want("0020008007313233343536ff", 0x6700) // not 8 bytes
	want("0020008100", 0x6a88)               // not the PIN
}

func TestChainingAndGetResponse(t *testing.T) {
	c := selected(t, Options{})
	// Chained command: a changed INS in the middle aborts the chain.
	if r := c.Transmit(apdu(t, "10db3fff025c03")); status(r) != 0x9000 {
		t.Fatalf("chain start: %x", r)
	}
	if r := c.Transmit(apdu(t, "00cb3fff055c035fc10a")); status(r) != 0x6883 {
		t.Fatalf("chain broken: %x", r)
	}
	// Large objects come back in 256-byte pieces with 61xx.
	big := bytes.Repeat([]byte{0xab}, 600)
	c.objects[0x5fc10a] = big
	r := c.Transmit(apdu(t, "00cb3fff055c035fc10a"))
	var got []byte
	for status(r)&0xff00 == 0x6100 {
		got = append(got, r[:len(r)-2]...)
		r = c.Transmit(apdu(t, "00c0000000"))
	}
	got = append(got, r[:len(r)-2]...)
	if status(r) != 0x9000 || !bytes.Equal(got, AppendTLV(nil, 0x53, big)) {
		t.Fatalf("GET DATA in pieces: %x (%d bytes)", status(r), len(got))
	}
	// PUT DATA needs the management key.
	if r := c.Transmit(apdu(t, "00db3fff085c035fc10a530100")); status(r) != 0x6982 {
		t.Fatalf("unauthenticated PUT DATA: %x", r)
	}
	// Nothing works before SELECT, and unknown classes are refused.
	if r := NewCard(Options{}).Transmit(apdu(t, "00fd000000")); status(r) != 0x6985 {
		t.Fatalf("GET VERSION before SELECT: %x", r)
	}
	if r := c.Transmit(apdu(t, "80fd000000")); status(r) != 0x6e00 {
		t.Fatalf("CLA 80: %x", r)
	}
}
