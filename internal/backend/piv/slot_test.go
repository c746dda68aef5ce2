package piv

import "testing"

// The slot names are SlotNames' and no others: a retired slot is two hex
// digits (the configuration once refused "082" while Open took it).
func TestParseSlot(t *testing.T) {
	for _, ok := range []string{"9a", "9c", "9d", "9e", "82", "95", "9C"} {
		if _, err := ParseSlot(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "9b", "9f", "81", "96", "082", "0x82", "9c "} {
		if _, err := ParseSlot(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
