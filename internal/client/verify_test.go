package client

import (
	"bytes"
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/backend/keyfile"
	"github.com/signstar/signstar/internal/signer"
)

// TestVerifyTransition: during a key transition the enclave's .sig holds
// two packets, the old key's and the next key's; the client accepts it when
// the pinned key's packet verifies, whichever of the two is pinned, and
// refuses three packets or none by the pinned key.
func TestVerifyTransition(t *testing.T) {
	keys := filepath.Join("..", "..", "testdata", "keys")
	data := []byte("core.db.tar.gz, in spirit\n")
	in, err := signer.Read(bytes.NewReader(data), crypto.SHA256, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	sigOf := func(name string) []byte {
		// keyfile wants the secret key 0600: a copy.
		secret, err := os.ReadFile(filepath.Join(keys, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), name+".key")
		if err := os.WriteFile(path, secret, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := keyfile.Open(keyfile.Options{Key: path}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		sig, err := signer.Sign(in, k, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	pin := func(name string) *Pinned {
		e, err := backend.ReadEntity(filepath.Join(keys, name+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		return &Pinned{Path: name + ".pub", Entity: e}
	}
	old, next := sigOf("ed25519"), sigOf("rsa3072")
	both := append(bytes.Clone(old), next...)
	for _, c := range []struct {
		pin  string
		sig  []byte
		want string // issuer fingerprint, or the refusal
	}{
		{"ed25519", old, "E155B5A1C0ACB420B59579B5AA0DD657A131FD30"},
		{"ed25519", both, "E155B5A1C0ACB420B59579B5AA0DD657A131FD30"},
		{"rsa3072", both, "F2BDA20E273E7207A1CE8CA5EF2E40F4016C8C35"},
		{"ed25519", next, "which is not in the pinned certificate"},
		{"p256", both, "which is not in the pinned certificate"},
		{"ed25519", append(bytes.Clone(both), old...), "more than two packets"},
	} {
		s, err := Verify(pin(c.pin), bytes.NewReader(data), "core.db", c.sig)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = fmt.Sprintf("%X", s.IssuerFingerprint)
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("pinned %s, %d bytes: got %q, want %q", c.pin, len(c.sig), got, c.want)
		}
	}
	// The pinned key's packet must verify: a changed file fails it.
	if _, err := Verify(pin("rsa3072"), bytes.NewReader([]byte("other")), "core.db", both); err == nil {
		t.Error("a changed file verified")
	}
}
