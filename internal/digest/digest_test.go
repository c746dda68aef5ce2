package digest

import (
	"crypto"
	"testing"
)

func TestTable(t *testing.T) {
	for _, name := range Names() {
		h, ok := Parse(name)
		if !ok || Name(h) != name || !h.Available() {
			t.Errorf("%s: %v %v", name, h, ok)
		}
		if id, ok := OpenPGPID(h); !ok || id == 0 {
			t.Errorf("%s: no OpenPGP id", name)
		}
	}
	if _, ok := Parse("sha1"); ok {
		t.Error("sha1 accepted")
	}
	if Name(crypto.SHA1) != "" {
		t.Error("sha1 named")
	}
	if id, _ := OpenPGPID(crypto.SHA512); id != 10 {
		t.Errorf("SHA-512 is %d, RFC 4880 says 10", id)
	}
}
