package pacmantest

import (
	"bytes"
	"crypto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/backend/keyfile"
	"github.com/signstar/signstar/internal/signer"
	"github.com/signstar/signstar/internal/testsupport/gnupgtest"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// keySigner opens a key file from testdata/keys and returns its armored
// certificate and a function that signs with it as signstar does.
func keySigner(t *testing.T, name string) ([]byte, func([]byte) ([]byte, error)) {
	t.Helper()
	// keyfile refuses keys others may read; git checks them out 0644.
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "testdata", "keys", name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".key")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := keyfile.Open(keyfile.Options{Key: path}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { key.Close() })
	cert, err := backend.ArmoredCert(key.Cert)
	if err != nil {
		t.Fatal(err)
	}
	return cert, func(data []byte) ([]byte, error) {
		in, err := signer.Read(bytes.NewReader(data), crypto.SHA256, 0, nil)
		if err != nil {
			return nil, err
		}
		return signer.Sign(in, key, time.Now())
	}
}

func TestInstallKeyfile(t *testing.T) {
	cert, sign := keySigner(t, "ed25519")
	o := Prepare(t, Hello, sign)
	o.Certs = [][]byte{cert}
	env := Install(t, o)
	got, err := os.ReadFile(filepath.Join(env.Root, "usr/share/hello/hello.txt"))
	if err != nil || string(got) != Hello.Files["usr/share/hello/hello.txt"] {
		t.Fatalf("installed file: %q, %v", got, err)
	}
	if len(env.Info) != 3 || !strings.Contains(env.Info[2], "Signature") {
		t.Errorf("pacman -Qi lines: %q", env.Info)
	}
	env.RefuseTampered(t)
}

// TestRunFails shows that Run is a check that can fail: pacman must refuse
// a database whose signature is over other bytes, and a repository signed
// by a key the keyring does not trust.
func TestRunFails(t *testing.T) {
	NeedTools(t)
	testenv.NeedRoot(t)
	cert, sign := keySigner(t, "ed25519")
	o := Prepare(t, Hello, sign)
	other, _ := keySigner(t, "p256")
	for _, tc := range []struct {
		name string
		edit func(o *Options)
		want string
	}{
		{"db-signature-of-package", func(o *Options) { o.Certs = [][]byte{cert}; o.DBSig = o.PkgSig }, "invalid or corrupted database (PGP signature)"},
		{"untrusted-key", func(o *Options) { o.Certs = [][]byte{other} }, "is unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := o
			tc.edit(&o)
			dir, err := os.MkdirTemp("", "pacmantest-")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			env, err := Run(dir, o)
			if err == nil {
				env.Close()
				t.Fatalf("pacman installed %s", o.Name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("pacman failed, but not with %q: %v", tc.want, err)
			}
			t.Logf("refused: %s", errorLine([]byte(err.Error()), tc.want))
			if _, err := os.Stat(filepath.Join(dir, "root/usr/share/hello/hello.txt")); err == nil {
				t.Fatal("the package's file is in the root")
			}
		})
	}
}

func TestBuildRefusesBadPaths(t *testing.T) {
	for _, name := range []string{"/etc/passwd", "../x", ".PKGINFO", ""} {
		p := Package{Name: "x", Version: "1-1", Files: map[string]string{name: "x"}}
		if _, err := Build(t.TempDir(), p); err == nil {
			t.Errorf("Build accepted file %q", name)
		}
	}
}

func TestValidatedBy(t *testing.T) {
	real, err := os.ReadFile("testdata/qi-hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{string(real), "Signature", true},
		{"Validated By    : SHA-256 Sum  Signature\n", "SHA-256 Sum  Signature", true},
		{"Validated By    : None\n", "None", true},
		{"Name : x\n", "", false},
		{"Validated By : Signature\nValidated By : None\n", "None", false},
	} {
		got, ok := ValidatedBy([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("ValidatedBy(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzValidatedBy reads pacman -Qi output; the seed is a real capture.
func FuzzValidatedBy(f *testing.F) {
	real, err := os.ReadFile("testdata/qi-hello.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Fuzz(func(t *testing.T, qi []byte) {
		v, ok := ValidatedBy(qi)
		if ok && !bytes.Contains(qi, []byte(v)) {
			t.Fatalf("value %q is not in the input", v)
		}
		if ok && containsWord(v, "Signature") && !bytes.Contains(qi, []byte("Signature")) {
			t.Fatal("Signature found where there is none")
		}
	})
}

// TestInstallP521 has pacman install a package and database signed with a
// GnuPG-made ECDSA P-521 key (SHA-512, as GnuPG requires for P-521).
func TestInstallP521(t *testing.T) {
	NeedTools(t)
	var c gnupgtest.Case
	for _, x := range gnupgtest.Cases(t) {
		if x.Name == gnupgtest.P521 {
			c = x
		}
	}
	path := filepath.Join(t.TempDir(), "p521.gpg")
	if err := os.WriteFile(path, c.Secret, 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := keyfile.Open(keyfile.Options{Key: path}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	cert, err := backend.ReadPublic(path)
	if err != nil {
		t.Fatal(err)
	}
	o := Prepare(t, Hello, func(data []byte) ([]byte, error) {
		in, err := signer.Read(bytes.NewReader(data), crypto.SHA512, 0, nil)
		if err != nil {
			return nil, err
		}
		return signer.Sign(in, key, time.Now())
	})
	o.Certs = [][]byte{cert}
	env := Install(t, o)
	if len(env.Info) != 3 || !strings.Contains(env.Info[2], "Signature") {
		t.Errorf("pacman -Qi lines: %q", env.Info)
	}
	env.RefuseTampered(t)
}
