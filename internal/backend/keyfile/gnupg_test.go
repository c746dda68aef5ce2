package keyfile

import (
	"bytes"
	"crypto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/signer"
	"github.com/signstar/signstar/internal/testsupport/gnupgtest"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// TestGnuPGChoice opens each GnuPG-made key file and checks that it signs
// with the key gpg --detach-sign signs with (offline primary, stub
// subkeys, renewed bindings, P-521), and that gpgv, sqv and sq accept the
// signature (SHA-512, which P-521 needs) against gpg --export of the
// certificate.
func TestGnuPGChoice(t *testing.T) {
	gpgv := testenv.NeedTool(t, "gpgv", "gpgv")
	sqv := testenv.NeedTool(t, "sqv", "sqv")
	sq := testenv.NeedTool(t, "sq", "sq")
	for _, c := range gnupgtest.Cases(t) {
		t.Run(c.Name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "key.gpg")
			if err := os.WriteFile(path, c.Secret, 0o600); err != nil {
				t.Fatal(err)
			}
			key, err := Open(Options{Key: path}, time.Now())
			if c.Signer == "" {
				// gpg cannot sign either: no signing key's secret.
				if err == nil || !strings.Contains(err.Error(), "holds no secret of the signing keys") {
					t.Fatalf("Open: got %v (key %v), want the refusal naming the stubs", err, key)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got := backend.Fingerprint(key.Public); got != c.Signer {
				t.Fatalf("signs with %s; gpg signs with %s", got, c.Signer)
			}
			data := []byte("artifact\n")
			in, err := signer.Read(bytes.NewReader(data), crypto.SHA512, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := signer.Sign(in, key, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if got, err := gnupgtest.IssuerFingerprint(sig); err != nil || got != c.Signer {
				t.Fatalf("signature issuer %s (%v), want %s", got, err, c.Signer)
			}
			files := map[string][]byte{"ring.gpg": c.Public, "data": data, "data.sig": sig}
			for n, b := range files {
				if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ring, sigf, dataf := filepath.Join(dir, "ring.gpg"), filepath.Join(dir, "data.sig"), filepath.Join(dir, "data")
			for _, cmd := range []*exec.Cmd{
				exec.Command(gpgv, "--homedir", dir, "--keyring", ring, sigf, dataf),
				exec.Command(sqv, "--keyring", ring, sigf, dataf),
				exec.Command(sq, "verify", "--signer-cert", ring, "--detached", sigf, dataf),
			} {
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s: %v\n%s", filepath.Base(cmd.Path), err, out)
				}
			}
		})
	}
}
