package sshenv

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signstar/signstar/internal/testsupport/testenv"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestClient(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"127.0.0.1 42422 127.0.0.1 45243", "127.0.0.1"},
		{"192.0.2.7 50000 10.0.0.1 22", "192.0.2.7"},
		{"2001:db8::1 50000 2001:db8::2 22", "2001:db8::1"},
		{"2001:0db8:0:0::1 50000 ::1 22", "2001:db8::1"},
		{"::ffff:192.0.2.7 50000 ::1 22", "192.0.2.7"},
		{"fe80::1%eth0 50000 fe80::2%eth0 22", "fe80::1"},
		{"", ""},
		{"127.0.0.1", ""},
		{"127.0.0.1 42422 127.0.0.1", ""},
		{"127.0.0.1 42422 127.0.0.1 22 x", ""},
		{"127.0.0.1  42422 127.0.0.1 22", ""},
		{"localhost 42422 127.0.0.1 22", ""},
		{"127.0.0.1 0 127.0.0.1 22", ""},
		{"127.0.0.1 65536 127.0.0.1 22", ""},
		{"127.0.0.1 022 127.0.0.1 22", ""},
		{"127.0.0.1 22 nowhere 22", ""},
		{"127.0.0.1\n 22 127.0.0.1 22", ""},
		{"1.2.3.4/8 22 127.0.0.1 22", ""},
	} {
		if got := Client(env(map[string]string{"SSH_CONNECTION": c.in})); got != c.want {
			t.Errorf("Client(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestParseAuthInfoCaptured uses a file written by Debian's sshd 9.2 and the
// fingerprint sshd logged for the same login ("Accepted publickey ... ED25519
// SHA256:Wb63...").
func TestParseAuthInfoCaptured(t *testing.T) {
	data, err := os.ReadFile("testdata/authinfo-ed25519.txt")
	if err != nil {
		t.Fatal(err)
	}
	fp, err := ParseAuthInfo(data)
	if err != nil || fp != "SHA256:Wb63F3ssY4JXHxRrhVtXw1wnbdF/FP2eB2HPiEA1zX0" {
		t.Fatalf("ParseAuthInfo = %q, %v", fp, err)
	}
}

// TestParseAuthInfoKeygen checks each key type against ssh-keygen -lf.
func TestParseAuthInfoKeygen(t *testing.T) {
	keygen := testenv.NeedTool(t, "ssh-keygen", "openssh-client")
	dir := t.TempDir()
	for _, typ := range []string{"ed25519", "rsa", "ecdsa"} {
		path := filepath.Join(dir, typ)
		if out, err := exec.Command(keygen, "-q", "-t", typ, "-N", "", "-f", path).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
		out, err := exec.Command(keygen, "-l", "-E", "sha256", "-f", path+".pub").Output()
		if err != nil {
			t.Fatal(err)
		}
		want := strings.Fields(string(out))[1]
		pub, _ := os.ReadFile(path + ".pub")
		f := strings.Fields(string(pub))
		line := "publickey " + f[0] + " " + f[1] + "\n"
		got, err := ParseAuthInfo([]byte("password\n" + line))
		if err != nil || got != want {
			t.Errorf("%s: ParseAuthInfo = %q, %v; ssh-keygen says %s", typ, got, err, want)
		}
		// A certificate names the certified key, as ssh-keygen -lf does.
		if typ != "ed25519" {
			if out, err := exec.Command(keygen, "-q", "-s", filepath.Join(dir, "ed25519"), "-I", "id", "-n", "signer", path+".pub").CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen -s: %v %s", err, out)
			}
			cpub, _ := os.ReadFile(path + "-cert.pub")
			c := strings.Fields(string(cpub))
			got, err := ParseAuthInfo([]byte("publickey " + c[0] + " " + c[1] + "\n"))
			if err != nil || got != want {
				t.Errorf("%s certificate: ParseAuthInfo = %q, %v; ssh-keygen says %s", typ, got, err, want)
			}
		}
		// AuthenticationMethods publickey,publickey with two different
		// keys cannot name one key.
		if typ != "ed25519" {
			ed, _ := os.ReadFile(filepath.Join(dir, "ed25519.pub"))
			e := strings.Fields(string(ed))
			two := line + "publickey " + e[0] + " " + e[1] + "\n"
			if _, err := ParseAuthInfo([]byte(two)); !errors.Is(err, ErrSeveralKeys) {
				t.Errorf("%s: two keys gave %v, want ErrSeveralKeys", typ, err)
			}
		}
	}
}

func TestParseAuthInfoBad(t *testing.T) {
	good, _ := os.ReadFile("testdata/authinfo-ed25519.txt")
	blob := strings.Fields(string(good))[2]
	raw, _ := base64.StdEncoding.DecodeString(blob)
	trailing := base64.StdEncoding.EncodeToString(append(raw, 0))
	for name, in := range map[string]string{
		"no key":         "publickey\n",
		"type only":      "publickey ssh-ed25519\n",
		"bad base64":     "publickey ssh-ed25519 AAAA*\n",
		"truncated blob": "publickey ssh-ed25519 " + blob[:40] + "\n",
		"type mismatch":  "publickey ssh-rsa " + blob + "\n",
		"too large":      string(good) + strings.Repeat("x", MaxAuthInfo),
		"trailing bytes": "publickey ssh-ed25519 " + trailing + "\n",
	} {
		if fp, err := ParseAuthInfo([]byte(in)); err == nil {
			t.Errorf("%s: ParseAuthInfo = %q, want an error", name, fp)
		}
	}
	for name, in := range map[string]string{
		"empty":    "",
		"password": "password\n",
		"kbdint":   "keyboard-interactive/pam\n",
	} {
		if fp, err := ParseAuthInfo([]byte(in)); err != nil || fp != "" {
			t.Errorf("%s: ParseAuthInfo = %q, %v; want no key and no error", name, fp, err)
		}
	}
}

// TestKeyFingerprintTrust checks the file checks against files planted where
// sshd would put its own.
func TestKeyFingerprintTrust(t *testing.T) {
	good, _ := os.ReadFile("testdata/authinfo-ed25519.txt")
	n := 0
	plant := func(t *testing.T, mode os.FileMode) string {
		// sshd's name: 15 characters of [A-Za-z0-9].
		n++
		name := fmt.Sprintf("/tmp/sshauth.Test%05d%06d", os.Getpid()%100000, n)
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(name) })
		f.Write(good)
		f.Close()
		os.Chmod(name, mode)
		return name
	}
	get := func(p string) (string, error) {
		return KeyFingerprint(env(map[string]string{"SSH_USER_AUTH": p}))
	}
	if fp, err := get(""); fp != "" || err != nil {
		t.Errorf("unset: %q, %v", fp, err)
	}
	ok := plant(t, 0o600)
	if fp, err := get(ok); err != nil || fp != "SHA256:Wb63F3ssY4JXHxRrhVtXw1wnbdF/FP2eB2HPiEA1zX0" {
		t.Errorf("sshd-like file: %q, %v", fp, err)
	}
	readable := plant(t, 0o644)
	link := "/tmp/sshauth.LinkLinkLink123"
	os.Remove(link)
	if err := os.Symlink(ok, link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(link) })
	hard := "/tmp/sshauth.HardHardHard123"
	os.Remove(hard)
	if err := os.Link(ok, hard); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(hard) })
	copyElsewhere := filepath.Join(t.TempDir(), "sshauth.ABCDEFGHIJKLMNO")
	os.WriteFile(copyElsewhere, good, 0o600)
	for name, p := range map[string]string{
		"relative":        "sshauth.ABCDEFGHIJKLMNO",
		"other directory": copyElsewhere,
		"dot-dot":         "/tmp/../tmp/sshauth.ABCDEFGHIJKLMNO",
		"short name":      "/tmp/sshauth.ABC",
		"missing":         "/tmp/sshauth.NoSuchFile12345",
		"symlink":         link,
		"group readable":  readable,
		"directory":       "/tmp/",
		"hard link":       hard,
		"newline in name": "/tmp/sshauth.ABCDEFGHIJKLMN\n",
	} {
		if fp, err := get(p); err == nil {
			t.Errorf("%s (%s): %q, want an error", name, p, fp)
		} else {
			var ae *AuthInfoError
			if !errors.As(err, &ae) {
				t.Errorf("%s: error %T, want *AuthInfoError", name, err)
			}
		}
	}
}

func FuzzParseAuthInfo(f *testing.F) {
	good, err := os.ReadFile("testdata/authinfo-ed25519.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(append([]byte("password\n"), good...))
	f.Add(append(append([]byte{}, good...), good...))
	f.Fuzz(func(t *testing.T, data []byte) {
		fp, err := ParseAuthInfo(data)
		if err == nil && fp != "" && (!strings.HasPrefix(fp, "SHA256:") || len(fp) != 50) {
			t.Fatalf("fingerprint %q is not SHA256:<43 chars>", fp)
		}
		if err != nil && fp != "" {
			t.Fatalf("error %v with fingerprint %q", err, fp)
		}
	})
}
