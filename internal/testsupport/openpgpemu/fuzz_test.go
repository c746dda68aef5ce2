package openpgpemu

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// recordCorpus makes card write every command APDU it receives into
// testdata/fuzz/FuzzTransmit when OPENPGPEMU_WRITE_CORPUS=1: the seeds were
// captured from GnuPG 2.2.40's scdaemon (TestGenerate, TestCardStatus).
func recordCorpus(t *testing.T, card *Card) {
	if os.Getenv("OPENPGPEMU_WRITE_CORPUS") != "1" {
		return
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzTransmit")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	card.Trace(func(capdu []byte) {
		mu.Lock()
		defer mu.Unlock()
		// One seed per command shape: INS, P1, P2 and length.
		k := fmt.Sprintf("%x-%d", capdu[:min(4, len(capdu))], len(capdu))
		if seen[k] {
			return
		}
		seen[k] = true
		name := filepath.Join(dir, fmt.Sprintf("%s-%s", t.Name(), k))
		os.WriteFile(name, []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", capdu)), 0o644)
	})
}

// FuzzTransmit sends one command APDU to a card whose PW1 and PW3 are
// verified and whose slots hold keys. Whatever arrives, the card answers
// with at least a status word and its counters stay in range.
func FuzzTransmit(f *testing.F) {
	f.Add([]byte{0x00, 0xca, 0x00, 0x6e, 0x00})
	seed := NewCard(Options{Rand: bytes.NewReader(bytes.Repeat([]byte{7}, 1<<16))})
	for i, a := range []string{"ed25519", "x25519", "ecdsa-p256"} {
		seed.attrs[i] = Attr(a)
		k, err := seed.generateKey(seed.attrs[i])
		if err != nil {
			f.Fatal(err)
		}
		seed.keys[i] = k
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := NewCard(Options{Rand: bytes.NewReader(bytes.Repeat([]byte{9}, 1<<12))})
		c.keys, c.attrs = seed.keys, seed.attrs
		c.Reset()
		for _, v := range [][]byte{append([]byte{0, 0x20, 0, 0x81, 6}, DefaultPIN...), append([]byte{0, 0x20, 0, 0x82, 6}, DefaultPIN...), append([]byte{0, 0x20, 0, 0x83, 8}, DefaultAdminPIN...)} {
			if r := c.Transmit(v); !bytes.Equal(r, []byte{0x90, 0}) {
				t.Fatalf("VERIFY: %x", r)
			}
		}
		if r := c.Transmit(b); len(r) < 2 {
			t.Fatalf("response %x", r)
		}
		// Chaining and GET RESPONSE: the same again, then a GET RESPONSE.
		c.Transmit(b)
		c.Transmit([]byte{0, 0xc0, 0, 0, 0})
		if c.pw1Tries < 0 || c.pw1Tries > c.maxTries || c.pw3Tries < 0 || c.pw3Tries > c.maxTries || c.rcTries < 0 || c.rcTries > c.maxTries {
			t.Fatalf("counters out of range: %v", c)
		}
	})
}
