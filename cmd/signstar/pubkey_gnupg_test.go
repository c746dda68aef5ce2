package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/testsupport/gnupgtest"
)

// TestPubkeyIsGnuPGExport serves each GnuPG-made certificate with `pubkey`,
// from the secret key file of a keyfile profile and from the certificate
// file of a gpg-agent profile, and compares it with gpg --export of the
// same certificate packet by packet: the same packets (tag and body), in
// the same order, designated revoker, photo ID and every user ID included;
// and the same bytes on 20 calls in a row.
func TestPubkeyIsGnuPGExport(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range gnupgtest.Cases(t) {
		t.Run(c.Name, func(t *testing.T) {
			dir := t.TempDir()
			keyPath := filepath.Join(dir, "key.gpg")
			certPath := filepath.Join(dir, "cert.gpg")
			cfgPath := filepath.Join(dir, "config.toml")
			cfg := fmt.Sprintf(`[audit]
path = %q
[sandbox]
mode = "best-effort"

[[profile]]
name = "file"
backend = "keyfile"
key = %q
users = [%q]

[[profile]]
name = "agent"
backend = "gpg-agent"
key = %q
users = [%q]
[profile.gpg_agent]
socket = "/nonexistent/S.gpg-agent"
`, filepath.Join(dir, "audit.jsonl"), keyPath, me.Username, certPath, me.Username)
			for path, data := range map[string][]byte{keyPath: c.Secret, certPath: c.Public, cfgPath: []byte(cfg)} {
				if err := os.WriteFile(path, data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			want := packets(t, c.Public)
			for _, profile := range []string{"file", "agent"} {
				var first []byte
				for i := range 20 {
					out := runPubkey(t, cfgPath, profile)
					if i == 0 {
						first = out
						got := packets(t, dearmor(t, out))
						if len(got) != len(want) {
							t.Fatalf("%s: %d packets, gpg --export has %d", profile, len(got), len(want))
						}
						for j := range got {
							if got[j].Tag != want[j].Tag || !bytes.Equal(got[j].Contents, want[j].Contents) {
								t.Fatalf("%s: packet %d is tag %d (%d bytes), gpg --export has tag %d (%d bytes)",
									profile, j, got[j].Tag, len(got[j].Contents), want[j].Tag, len(want[j].Contents))
							}
						}
						// The headers too: GnuPG writes them the same way.
						if b := dearmor(t, out); !bytes.Equal(b, c.Public) {
							t.Fatalf("%s: same packets, other bytes than gpg --export", profile)
						}
					} else if !bytes.Equal(out, first) {
						t.Fatalf("%s: call %d gave other bytes than the first", profile, i+1)
					}
				}
			}
		})
	}
}

// runPubkey runs `signstar --config CFG pubkey --profile P` in this process.
func runPubkey(t *testing.T, cfg, profile string) []byte {
	t.Helper()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	var stdout, stderr bytes.Buffer
	r := &run{
		args:   []string{"signstar", "--config", cfg, "pubkey", "--profile", profile},
		getenv: func(string) string { return "" },
		stdin:  null,
		stdout: &stdout,
		stderr: &stderr,
	}
	if code := r.main(); code != 0 {
		t.Fatalf("pubkey --profile %s: exit %d: %s", profile, code, stderr.String())
	}
	return stdout.Bytes()
}

func dearmor(t *testing.T, b []byte) []byte {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(block.Body)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// packets splits a binary packet stream with go-crypto's opaque reader.
func packets(t *testing.T, b []byte) []*packet.OpaquePacket {
	t.Helper()
	r := packet.NewOpaqueReader(bytes.NewReader(b))
	var out []*packet.OpaquePacket
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
}
