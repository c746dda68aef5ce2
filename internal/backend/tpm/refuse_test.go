package tpm

import (
	"crypto"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/testsupport/swtpmtest"
)

// TestWrongAuth: a wrong auth value is refused (AuthError, the TPM's count
// of failures left in it); signstar stops presenting it with one failure
// left, so the TPM never locks out; after the counter is reset the right
// value signs.
func TestWrongAuth(t *testing.T) {
	r := newRig(t)
	good := r.file("auth", "right\n", 0o600)
	cfg, cert := r.setup("auth", "ecc-p256", good)
	bad := r.file("bad-auth", "wrong\n", 0o600)
	cfg.AuthFile = bad
	data := []byte("wrong auth\n")
	for left := 2; left >= 1; left-- {
		k, err := r.open(cfg, cert)
		if err != nil {
			t.Fatalf("open with %d failures left: %v", left, err)
		}
		_, err = r.sign(k, data, crypto.SHA256)
		k.Close()
		var ae *AuthError
		if !errors.As(err, &ae) || ae.Left != left || ae.File != bad {
			t.Fatalf("sign with a wrong auth value: %v, want an AuthError with %d left", err, left)
		}
	}
	// One failure left: refused without trying.
	_, err := r.open(cfg, cert)
	var le *LockoutError
	if !errors.As(err, &le) || le.InLockout {
		t.Fatalf("open with one failure left: %v, want a LockoutError before lockout", err)
	}
	counter, max, err := r.tpm.LockoutCounter()
	if err != nil {
		t.Fatal(err)
	}
	if counter != 2 || max != 3 {
		t.Fatalf("lockout counter %d of %d, want 2 of 3: the guard must not present the value", counter, max)
	}
	// Even the right value is not tried until the counter goes down.
	cfg.AuthFile = good
	if _, err := r.open(cfg, cert); !errors.As(err, &le) {
		t.Fatalf("open with the right value and one failure left: %v, want a LockoutError", err)
	}
	if err := r.tpm.ResetLockout(); err != nil {
		t.Fatal(err)
	}
	k, err := r.open(cfg, cert)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	sig, err := r.sign(k, data, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	r.verify(cert, data, sig)
}

// TestAuthWithPCRs: a PCR-bound key with an auth value takes both.
func TestAuthWithPCRs(t *testing.T) {
	r := newRig(t)
	good := r.file("auth", "right\n", 0o600)
	cfg, cert := r.setup("both", "rsa2048", good, 7)
	k, err := r.open(cfg, cert)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("pcr and auth\n")
	sig, err := r.sign(k, data, crypto.SHA256)
	k.Close()
	if err != nil {
		t.Fatal(err)
	}
	r.verify(cert, data, sig)
	cfg.AuthFile = r.file("bad-auth", "wrong\n", 0o600)
	k, err = r.open(cfg, cert)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.sign(k, data, crypto.SHA256)
	k.Close()
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("sign with a wrong auth value: %v, want an AuthError", err)
	}
	// Without auth_file the policy does not match: refused before the TPM.
	cfg.AuthFile = ""
	if _, err := r.open(cfg, cert); err == nil || !strings.Contains(err.Error(), "set auth_file") {
		t.Fatalf("open without auth_file: %v", err)
	}
}

func TestMissingTPM(t *testing.T) {
	r := newRig(t)
	cfg, cert := r.setup("k", "ecc-p256", "")
	cfg.Device = filepath.Join(r.dir, "no-such-tpm")
	_, err := r.open(cfg, cert)
	var ne *NoTPMError
	if !errors.As(err, &ne) {
		t.Fatalf("open without a TPM: %v, want a NoTPMError", err)
	}
	// swtpm gone, its socket left behind.
	cfg.Device = r.tpm.Socket
	r.tpm.Stop()
	if _, err := r.open(cfg, cert); !errors.As(err, &ne) {
		t.Fatalf("open with swtpm stopped: %v, want a NoTPMError", err)
	}
	// A regular file is neither a device nor a socket.
	cfg.Device = cert
	if _, err := r.open(cfg, cert); err == nil || !strings.Contains(err.Error(), "neither a character device") {
		t.Fatalf("open on a regular file: %v", err)
	}
}

// TestBusyTPM: while another client holds swtpm (which serves one
// connection at a time, as /dev/tpm0 admits one opener), Open gives up after
// Timeout with a BusyError, and works once the other client is gone.
func TestBusyTPM(t *testing.T) {
	r := newRig(t)
	cfg, cert := r.setup("k", "ecc-p256", "")
	other, err := net.Dial("unix", r.tpm.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { Timeout = d }(Timeout)
	Timeout = 500 * time.Millisecond
	start := time.Now()
	_, err = r.open(cfg, cert)
	var be *BusyError
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("open while another client holds the TPM: %v, want a BusyError", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("BusyError after %v", d)
	}
	other.Close()
	// swtpm still answers the abandoned connection's command first.
	time.Sleep(200 * time.Millisecond)
	Timeout = 30 * time.Second
	k, err := r.open(cfg, cert)
	if err != nil {
		t.Fatalf("open after the other client left: %v", err)
	}
	k.Close()
}

// TestForeignBlob: a key blob made by one TPM is refused by another.
func TestForeignBlob(t *testing.T) {
	r := newRig(t)
	cfg, cert := r.setup("k", "ecc-p256", "")
	other := swtpmtest.Start(t)
	cfg.Device = other.Socket
	_, err := r.open(cfg, cert)
	var fe *ForeignBlobError
	if !errors.As(err, &fe) {
		t.Fatalf("open with another TPM's blob: %v, want a ForeignBlobError", err)
	}
}

// TestEditedBlob: PCR values or a key changed in the blob are refused
// before the TPM is asked; a blob open to others is refused.
func TestEditedBlob(t *testing.T) {
	r := newRig(t)
	cfg, cert := r.setup("k", "ecc-p256", "", 7)
	data, err := os.ReadFile(cfg.KeyBlob)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndex(string(data), "\n") - 1
	edited := []byte(string(data))
	edited[i] ^= 1
	os.WriteFile(cfg.KeyBlob, edited, 0o600)
	if _, err := r.open(cfg, cert); err == nil || !strings.Contains(err.Error(), "edited") {
		t.Fatalf("open with an edited PCR value: %v", err)
	}
	os.WriteFile(cfg.KeyBlob, data, 0o600)
	os.Chmod(cfg.KeyBlob, 0o644)
	if _, err := r.open(cfg, cert); err == nil || !strings.Contains(err.Error(), "chmod 0600") {
		t.Fatalf("open with a blob open to others: %v", err)
	}
	os.Chmod(cfg.KeyBlob, 0o600)
	// The profile's pcrs must be the blob's.
	cfg.PCRs = []int{7, 9}
	if _, err := r.open(cfg, cert); err == nil || !strings.Contains(err.Error(), "bound to PCRs [7]") {
		t.Fatalf("open with other pcrs: %v", err)
	}
	cfg.PCRs = []int{7}
	// Another key's certificate.
	_, cert2 := r.setup("k2", "ecc-p256", "")
	if _, err := r.open(cfg, cert2); err == nil || !strings.Contains(err.Error(), "not the certificate's signing key") {
		t.Fatalf("open with another certificate: %v", err)
	}
	k, err := r.open(cfg, cert)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
}
