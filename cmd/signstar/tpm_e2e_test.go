package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/testsupport/pacmantest"
	"github.com/signstar/signstar/internal/testsupport/swtpmtest"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// tpmRig is the real signstar binary with a tpm profile on swtpm.
type tpmRig struct {
	t                     testing.TB
	bin, cfg, cert, audit string
	tpm                   *swtpmtest.TPM
}

func newTPMRig(t testing.TB, pcrs string) *tpmRig {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "signstar")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as make build does
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	r := &tpmRig{t: t, bin: bin, tpm: swtpmtest.Start(t),
		cert: filepath.Join(dir, "repo.asc"), audit: filepath.Join(dir, "audit.jsonl"), cfg: filepath.Join(dir, "config.toml")}
	auth := filepath.Join(dir, "tpm.auth")
	if err := os.WriteFile(auth, []byte("tpm auth value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(`[audit]
path = %q

[sandbox]
mode = %q

[[profile]]
name = "repo"
backend = "tpm"
key = %q
users = [%q]

[profile.tpm]
device = %q
pcrs = [%s]
auth_file = %q
key_blob = %q
`, r.audit, strictestMode(), r.cert, testUser(), r.tpm.Socket, pcrs, auth, filepath.Join(dir, "repo.tpmkey"))
	if err := os.WriteFile(r.cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// run runs signstar with args and stdin; it returns stdout, stderr and the
// exit code.
func (r *tpmRig) run(stdin []byte, args ...string) ([]byte, string, int) {
	r.t.Helper()
	cmd := exec.Command(r.bin, append([]string{"--config", r.cfg}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatal(err)
	}
	return out.Bytes(), errb.String(), code
}

func (r *tpmRig) setup(extra ...string) {
	r.t.Helper()
	out, stderr, code := r.run(nil, append([]string{"tpm", "setup", "--uid", "Repo TPM <repo@example.org>"}, extra...)...)
	if code != 0 {
		r.t.Fatalf("tpm setup: exit %d: %s", code, stderr)
	}
	if cert, _ := os.ReadFile(r.cert); !bytes.Equal(cert, out) || !bytes.HasPrefix(out, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
		r.t.Fatalf("tpm setup printed %q; the certificate file differs or is missing", out)
	}
}

func (r *tpmRig) sign(data []byte) []byte {
	r.t.Helper()
	sig, stderr, code := r.run(data, "sign")
	if code != 0 {
		r.t.Fatalf("sign: exit %d: %s", code, stderr)
	}
	return sig
}

// verify checks sig with gpgv and sqv against the certificate.
func (r *tpmRig) verify(data, sig []byte) {
	r.t.Helper()
	gpgv := testenv.NeedTool(r.t, "gpgv", "gpgv")
	sqv := testenv.NeedTool(r.t, "sqv", "sqv")
	dir := r.t.TempDir()
	keyring := filepath.Join(dir, "keyring.gpg")
	os.WriteFile(keyring, r.certBinary(), 0o644)
	os.WriteFile(filepath.Join(dir, "data"), data, 0o644)
	os.WriteFile(filepath.Join(dir, "data.sig"), sig, 0o644)
	for _, c := range [][]string{{gpgv, "--keyring", keyring}, {sqv, "--keyring", keyring}} {
		if out, err := exec.Command(c[0], append(c[1:], filepath.Join(dir, "data.sig"), filepath.Join(dir, "data"))...).CombinedOutput(); err != nil {
			r.t.Fatalf("%s rejects the TPM signature: %v\n%s", filepath.Base(c[0]), err, out)
		}
	}
}

func (r *tpmRig) certBinary() []byte {
	armored, err := os.ReadFile(r.cert)
	if err != nil {
		r.t.Fatal(err)
	}
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		r.t.Fatal(err)
	}
	bin, _ := io.ReadAll(block.Body)
	return bin
}

// TestTPME2E: tpm setup binds a key to PCRs 7 and 16 of swtpm; signstar
// signs in the strictest sandbox mode and gpgv and sqv accept; the audit
// record says the key is PCR-bound. PCR 16 is extended: signing is refused
// before any byte is read (exit 1, nothing on stdout, a failed record
// naming PCR 16); setup --force re-provisions and signing works again.
func TestTPME2E(t *testing.T) {
	r := newTPMRig(t, "7, 16")
	r.setup()
	data := []byte("signed by the TPM through the real binary\n")
	sig := r.sign(data)
	r.verify(data, sig)
	rec := lastAuditRecord(t, r.audit)
	if rec.Outcome != audit.Signed || !strings.HasSuffix(rec.Sandbox, ",tpm-pcr=7+16") {
		t.Errorf("audit record: outcome %q sandbox %q, want signed and ...,tpm-pcr=7+16", rec.Outcome, rec.Sandbox)
	}
	if strictestMode() == "enforce" && !strings.Contains(rec.Sandbox, "seccomp,nnp") {
		t.Errorf("enforce mode, sandbox %q", rec.Sandbox)
	}
	if out, stderr, code := r.run(nil, "sandbox", "check"); code != 0 || !strings.Contains(string(out), "tpm: profile repo: "+r.tpm.Socket+": swtpm command socket") {
		t.Errorf("sandbox check: exit %d, %s%s", code, out, stderr)
	}
	// setup refuses to overwrite.
	if _, stderr, code := r.run(nil, "tpm", "setup", "--uid", "X <x@example.org>"); code != 2 || !strings.Contains(stderr, "exists: refusing to overwrite") {
		t.Errorf("setup over an existing key: exit %d: %s", code, stderr)
	}

	if err := r.tpm.Extend(16, []byte("another boot")); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := r.run(data, "sign")
	if code != 1 || len(out) != 0 || !strings.Contains(stderr, "PCR 16 changed") || !strings.Contains(stderr, "signstar tpm setup") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("sign after PCR 16 changed: exit %d, stdout %d bytes, stderr %q", code, len(out), stderr)
	}
	rec = lastAuditRecord(t, r.audit)
	if rec.Outcome != audit.Failed || !strings.Contains(rec.Reason, "PCR 16 changed") || rec.Size != 0 || rec.Sandbox != "none,tpm-pcr=7+16" {
		t.Errorf("audit record of the refusal: outcome %q reason %q size %d sandbox %q", rec.Outcome, rec.Reason, rec.Size, rec.Sandbox)
	}

	oldCert, _ := os.ReadFile(r.cert)
	r.setup("--force")
	if newCert, _ := os.ReadFile(r.cert); bytes.Equal(newCert, oldCert) {
		t.Error("re-provisioning kept the old certificate")
	}
	sig = r.sign(data)
	r.verify(data, sig)
	if _, stderr, code := r.run(nil, "audit", "verify"); code != 0 {
		t.Errorf("audit verify: %s", stderr)
	}
}

// TestTPMPacman: pacman syncs and installs a package whose package and
// database signatures the real binary made through the TPM.
func TestTPMPacman(t *testing.T) {
	pacmantest.NeedTools(t)
	testenv.NeedRoot(t)
	r := newTPMRig(t, "7")
	r.setup("--algo", "rsa3072")
	o := pacmantest.Prepare(t, pacmantest.Hello, func(data []byte) ([]byte, error) {
		sig, stderr, code := r.run(data, "sign")
		if code != 0 {
			return nil, fmt.Errorf("sign: exit %d: %s", code, stderr)
		}
		return sig, nil
	})
	cert, err := os.ReadFile(r.cert)
	if err != nil {
		t.Fatal(err)
	}
	o.Certs = [][]byte{cert}
	env := pacmantest.Install(t, o)
	env.RefuseTampered(t)
}

// TestTPMMissing: without a TPM signing fails (exit 1, audited) and says
// what to check.
func TestTPMMissing(t *testing.T) {
	r := newTPMRig(t, "")
	r.setup()
	r.tpm.Stop()
	out, stderr, code := r.run([]byte("x"), "sign")
	if code != 1 || len(out) != 0 || !strings.Contains(stderr, "no TPM at "+r.tpm.Socket) {
		t.Fatalf("sign without a TPM: exit %d, stderr %q", code, stderr)
	}
	if rec := lastAuditRecord(t, r.audit); rec.Outcome != audit.Failed || rec.Sandbox != "none" {
		t.Errorf("audit: %q %q", rec.Outcome, rec.Sandbox)
	}
}

// BenchmarkTPMSign1KiB: one whole signstar process signing 1 KiB through
// swtpm (a unix socket; a hardware TPM's own time comes on top: see the
// README) against the key file backend with a key of the same algorithm,
// in the strictest sandbox mode this kernel allows.
//
//	go test ./cmd/signstar -run '^$' -bench TPMSign1KiB
func BenchmarkTPMSign1KiB(b *testing.B) {
	dir := b.TempDir()
	input := filepath.Join(dir, "in")
	if err := os.WriteFile(input, bytes.Repeat([]byte{0x5a}, 1024), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, pcrs, algo string }{
		{"tpm/ecc-p256", "", "ecc-p256"},
		{"tpm/ecc-p256-pcr7+16", "7, 16", "ecc-p256"},
		{"tpm/rsa2048", "", "rsa2048"},
	} {
		r := newTPMRig(b, tc.pcrs)
		r.setup("--algo", tc.algo)
		b.Run(tc.name, func(b *testing.B) {
			runProcess(b, input, r.bin, "--config", r.cfg, "sign")
		})
		if tc.pcrs == "" {
			continue
		}
		for _, name := range []string{"p256", "rsa3072"} {
			key := copyKey(b, dir, name)
			cfg := benchConfig(b, dir, name, key, strictestMode())
			b.Run("keyfile/"+name, func(b *testing.B) {
				runProcess(b, input, r.bin, "--config", cfg, "sign")
			})
		}
	}
}
