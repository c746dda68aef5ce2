package tpm

import (
	"bytes"
	"crypto"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/signer"
	"github.com/signstar/signstar/internal/testsupport/swtpmtest"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

type rig struct {
	t   *testing.T
	tpm *swtpmtest.TPM
	dir string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	return &rig{t: t, tpm: swtpmtest.Start(t), dir: t.TempDir()}
}

func (r *rig) file(name, content string, mode os.FileMode) string {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// setup provisions a key as `tpm setup` does and writes its blob and
// certificate; it returns the profile's [profile.tpm] and the certificate.
func (r *rig) setup(name, algo, authFile string, pcrs ...int) (Options, string) {
	r.t.Helper()
	blobPath := filepath.Join(r.dir, name+".tpmkey")
	res, err := Setup(SetupOptions{Device: r.tpm.Socket, Algo: algo, UID: "TPM Signer <tpm@example.org>", PCRs: pcrs, AuthFile: authFile, KeyBlob: blobPath, Now: testNow})
	if err != nil {
		r.t.Fatalf("setup %s: %v", algo, err)
	}
	os.Remove(blobPath)
	r.file(name+".tpmkey", string(res.Blob), 0o600)
	cert := r.file(name+".asc", string(res.Cert), 0o644)
	return Options{Device: r.tpm.Socket, PCRs: pcrs, AuthFile: authFile, KeyBlob: blobPath}, cert
}

func (r *rig) open(o Options, cert string) (*backend.Key, error) {
	o.Cert = cert
	return Open(o, testNow.Add(time.Hour))
}

func (r *rig) sign(k *backend.Key, data []byte, h crypto.Hash) ([]byte, error) {
	in, err := signer.Read(bytes.NewReader(data), h, 0, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return signer.Sign(in, k, testNow.Add(time.Hour))
}

// verify checks sig over data with gpgv and sqv against cert.
func (r *rig) verify(cert string, data, sig []byte) {
	r.t.Helper()
	gpgv := testenv.NeedTool(r.t, "gpgv", "gpgv")
	sqv := testenv.NeedTool(r.t, "sqv", "sqv")
	armored, err := os.ReadFile(cert)
	if err != nil {
		r.t.Fatal(err)
	}
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		r.t.Fatal(err)
	}
	var bin bytes.Buffer
	bin.ReadFrom(block.Body)
	dir := r.t.TempDir()
	keyring := filepath.Join(dir, "keyring.gpg")
	dataPath := filepath.Join(dir, "data")
	sigPath := filepath.Join(dir, "data.sig")
	os.WriteFile(keyring, bin.Bytes(), 0o644)
	os.WriteFile(dataPath, data, 0o644)
	os.WriteFile(sigPath, sig, 0o644)
	if out, err := exec.Command(gpgv, "--keyring", keyring, sigPath, dataPath).CombinedOutput(); err != nil {
		r.t.Fatalf("gpgv rejects the TPM's signature: %v\n%s", err, out)
	}
	if out, err := exec.Command(sqv, "--keyring", keyring, sigPath, dataPath).CombinedOutput(); err != nil {
		r.t.Fatalf("sqv rejects the TPM's signature: %v\n%s", err, out)
	}
}

func TestSetupOpenSign(t *testing.T) {
	r := newRig(t)
	auth := r.file("auth", "correct horse battery staple\n", 0o600)
	for _, tc := range []struct {
		algo string
		auth string
		h    crypto.Hash
	}{
		{"ecc-p256", "", crypto.SHA256},
		{"ecc-p256", auth, crypto.SHA512},
		{"rsa2048", auth, crypto.SHA256},
		{"rsa3072", "", crypto.SHA512},
	} {
		t.Run(tc.algo+"-"+tc.h.String(), func(t *testing.T) {
			r.t = t
			cfg, cert := r.setup(tc.algo, tc.algo, tc.auth)
			k, err := r.open(cfg, cert)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			data := []byte("signed through the TPM\n")
			sig, err := r.sign(k, data, tc.h)
			if err != nil {
				t.Fatal(err)
			}
			r.verify(cert, data, sig)
		})
	}
}

func TestPCRGuard(t *testing.T) {
	r := newRig(t)
	cfg, cert := r.setup("bound", "ecc-p256", "", 7, 16)
	k, err := r.open(cfg, cert)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("before the PCR changes\n")
	sig, err := r.sign(k, data, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	r.verify(cert, data, sig)

	if err := r.tpm.Extend(16, []byte("another kernel")); err != nil {
		t.Fatal(err)
	}
	_, err = r.open(cfg, cert)
	var pe *PCRError
	if !errors.As(err, &pe) || len(pe.Changed) != 1 || pe.Changed[0] != 16 {
		t.Fatalf("open after PCR 16 changed: %v, want a PCRError naming PCR 16", err)
	}
	if !strings.Contains(err.Error(), "PCR 16 changed") || !strings.Contains(err.Error(), "signstar tpm setup") {
		t.Errorf("message %q", err)
	}

	// Re-provisioned in the new state, it signs again.
	cfg, cert = r.setup("bound", "ecc-p256", "", 7, 16)
	k, err = r.open(cfg, cert)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if sig, err = r.sign(k, data, crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	r.verify(cert, data, sig)
}
