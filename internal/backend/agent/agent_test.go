package agent

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/signer"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// -capture-seeds DIR records every agent reply the tests read into DIR in
// the fuzz corpus format; testdata/fuzz/FuzzReply was made this way:
//
//	go test ./internal/backend/agent -run TestAgent -capture-seeds $PWD/internal/backend/agent/testdata/fuzz/FuzzReply
var captureSeeds = flag.String("capture-seeds", "", "write real agent replies as fuzz seeds into this directory")

var captureMu sync.Mutex

func TestMain(m *testing.M) {
	flag.Parse()
	if dir := *captureSeeds; dir != "" {
		n := 0
		captureReply = func(verb string, raw []byte) {
			captureMu.Lock()
			defer captureMu.Unlock()
			n++
			name := filepath.Join(dir, fmt.Sprintf("%s-%02d", strings.ToLower(verb), n))
			os.WriteFile(name, []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", raw)), 0o644)
		}
	}
	os.Exit(m.Run())
}

var testPass = []byte("correct horse % battery\r staple")

// newKey makes an OpenPGP key with go-crypto.
func newKey(t testing.TB, name string, cfg *packet.Config) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", name+"@agent.test", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// importSecret imports e's secret keys into the agent with gpg --import.
func (g *gnupg) importSecret(e *openpgp.Entity) {
	g.t.Helper()
	g.gpg(armoredSecret(g.t, e), "--import")
}

// armoredSecret is e's transferable secret key, ASCII-armored.
func armoredSecret(tb testing.TB, e *openpgp.Entity) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// writeCert writes e's public certificate to a file and returns its path.
func writeCert(t testing.TB, e *openpgp.Entity) string {
	t.Helper()
	data, err := backend.ArmoredCert(e)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "cert.asc")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writePass(t testing.TB, pass []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(p, append(bytes.Clone(pass), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// signAndVerify signs data through key (signer.Sign checks the result with
// go-crypto) and checks the signature with gpgv against cert.
func signAndVerify(t *testing.T, key *backend.Key, h crypto.Hash, data []byte) {
	t.Helper()
	in, err := signer.Read(bytes.NewReader(data), h, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.Sign(in, key, time.Now())
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	gpgv(t, key.Cert, data, sig)
}

// gpgv verifies a detached signature with GnuPG's gpgv and a keyring holding
// only cert.
func gpgv(t *testing.T, cert *openpgp.Entity, data, sig []byte) {
	t.Helper()
	bin := testenv.NeedTool(t, "gpgv", "gpgv")
	dir := t.TempDir()
	var ring bytes.Buffer
	if err := cert.Serialize(&ring); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"ring.gpg": ring.Bytes(), "data": data, "data.sig": sig}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "--homedir", dir, "--keyring", filepath.Join(dir, "ring.gpg"),
		filepath.Join(dir, "data.sig"), filepath.Join(dir, "data"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gpgv rejects the signature: %v\n%s", err, out)
	}
}

// agentPID asks the agent for its process id.
func (g *gnupg) agentPID() int {
	g.t.Helper()
	out := g.agentCmd("GETINFO pid")
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "D "); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(v))
			if err == nil {
				return pid
			}
		}
	}
	g.t.Fatalf("no pid from gpg-agent: %q", out)
	return 0
}

func (g *gnupg) keyFile(pk *packet.PublicKey) string {
	g.t.Helper()
	grip, err := KeygripOf(pk)
	if err != nil {
		g.t.Fatal(err)
	}
	return filepath.Join(g.home, "private-keys-v1.d", grip.String()+".key")
}

func open(t *testing.T, cert, socket, pass string) *backend.Key {
	t.Helper()
	key, err := Open(Options{Cert: cert, Socket: socket, PassphraseFile: pass}, time.Now())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { key.Close() })
	return key
}

var artifact = bytes.Repeat([]byte("signstar agent test\n"), 100)

func TestAgentSigns(t *testing.T) {
	g := startAgent(t)

	rsaKey := newKey(t, "rsa", &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 3072})
	g.importSecret(rsaKey)

	edKey := newKey(t, "ed", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519})
	if err := edKey.EncryptPrivateKeys(testPass, nil); err != nil {
		t.Fatal(err)
	}
	g.importSecret(edKey)

	// A certificate whose primary may sign but whose secret is not in the
	// agent: only the signing subkey is.
	subKey := newKey(t, "sub", &packet.Config{Algorithm: packet.PubKeyAlgoECDSA, Curve: packet.CurveNistP384})
	if err := subKey.AddSigningSubkey(&packet.Config{Algorithm: packet.PubKeyAlgoECDSA, Curve: packet.CurveNistP256}); err != nil {
		t.Fatal(err)
	}
	g.importSecret(subKey)
	if err := os.Remove(g.keyFile(subKey.PrimaryKey)); err != nil {
		t.Fatal(err)
	}
	signingSub := subKey.Subkeys[len(subKey.Subkeys)-1].PublicKey

	p384 := newKey(t, "p384", &packet.Config{Algorithm: packet.PubKeyAlgoECDSA, Curve: packet.CurveNistP384})
	g.importSecret(p384)

	passFile := writePass(t, testPass)
	both := []crypto.Hash{crypto.SHA256, crypto.SHA512, crypto.SHA256}
	for _, tc := range []struct {
		name   string
		e      *openpgp.Entity
		pass   string
		want   *packet.PublicKey
		hashes []crypto.Hash
	}{
		{"rsa3072", rsaKey, "", rsaKey.PrimaryKey, both},
		{"ed25519-passphrase", edKey, passFile, edKey.PrimaryKey, both},
		{"ecdsa-p256-subkey", subKey, "", signingSub, both},
		{"ecdsa-p384", p384, "", p384.PrimaryKey, []crypto.Hash{crypto.SHA512}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := open(t, writeCert(t, tc.e), g.socket, tc.pass)
			if !bytes.Equal(key.Public.Fingerprint, tc.want.Fingerprint) {
				t.Fatalf("signing key %s, want %s", backend.Fingerprint(key.Public), backend.Fingerprint(tc.want))
			}
			// Several signatures on one connection: the session is
			// reusable and each Sign asks the agent afresh (no cache).
			for _, h := range tc.hashes {
				signAndVerify(t, key, h, artifact)
			}
		})
	}
}

// TestAgentRedirect follows a GnuPG socket redirection file to the agent.
func TestAgentRedirect(t *testing.T) {
	g := startAgent(t)
	e := newKey(t, "redir", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519})
	g.importSecret(e)
	redir := filepath.Join(t.TempDir(), "S.gpg-agent")
	if err := os.WriteFile(redir, []byte("%Assuan%\nsocket="+g.socket+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := open(t, writeCert(t, e), redir, "")
	signAndVerify(t, key, crypto.SHA256, artifact)

	rel := filepath.Join(t.TempDir(), "S.rel")
	os.WriteFile(rel, []byte("%Assuan%\nsocket=S.gpg-agent\n"), 0o600)
	if _, err := Open(Options{Cert: writeCert(t, e), Socket: rel}, time.Now()); !errors.Is(err, ErrNoSocket) {
		t.Fatalf("relative redirection: got %v, want ErrNoSocket", err)
	}
}

func TestAgentFailures(t *testing.T) {
	g := startAgent(t)
	edKey := newKey(t, "ed", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519})
	if err := edKey.EncryptPrivateKeys(testPass, nil); err != nil {
		t.Fatal(err)
	}
	g.importSecret(edKey)
	edCert := writeCert(t, edKey)
	plain := newKey(t, "plain", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519})
	g.importSecret(plain)
	plainCert := writeCert(t, plain)

	sign := func(key *backend.Key) error {
		in, err := signer.Read(bytes.NewReader(artifact), crypto.SHA256, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := signer.Sign(in, key, time.Now())
		if err == nil {
			t.Fatalf("signed (%d bytes) where it must fail", len(sig))
		}
		return err
	}

	t.Run("p384-sha256", func(t *testing.T) {
		p384 := newKey(t, "p384", &packet.Config{Algorithm: packet.PubKeyAlgoECDSA, Curve: packet.CurveNistP384})
		g.importSecret(p384)
		key := open(t, writeCert(t, p384), g.socket, "")
		// signer.Sign refuses the pair before asking the agent ...
		if err := sign(key); err == nil || !strings.Contains(err.Error(), `hash = "sha512"`) {
			t.Fatalf("signer.Sign: got %v, want the P-384 hash refusal", err)
		}
		// ... and the agent, asked directly, refuses it too.
		digest := sha256.Sum256(artifact)
		var he *HashTooShortError
		if _, err := key.Signer.Sign(nil, digest[:], crypto.SHA256); !errors.As(err, &he) || he.Bits != 384 {
			t.Fatalf("agent: got %v, want *HashTooShortError", err)
		}
	})
	t.Run("socket-missing", func(t *testing.T) {
		_, err := Open(Options{Cert: plainCert, Socket: filepath.Join(g.home, "no-such-socket")}, time.Now())
		if !errors.Is(err, ErrNoSocket) {
			t.Fatalf("got %v, want ErrNoSocket", err)
		}
	})
	t.Run("socket-stale", func(t *testing.T) {
		// A socket file nobody listens on, as a crashed agent leaves it.
		p := filepath.Join(g.home, "S.stale")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close()
		_, err = Open(Options{Cert: plainCert, Socket: p}, time.Now())
		if !errors.Is(err, ErrNoSocket) {
			t.Fatalf("got %v, want ErrNoSocket", err)
		}
	})
	t.Run("no-matching-key", func(t *testing.T) {
		other := newKey(t, "other", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519})
		_, err := Open(Options{Cert: writeCert(t, other), Socket: g.socket}, time.Now())
		var ne *NoKeyError
		if !errors.As(err, &ne) || ne.Fingerprint != backend.Fingerprint(other.PrimaryKey) || len(ne.Keygrips) != 1 {
			t.Fatalf("got %v, want *NoKeyError for the certificate", err)
		}
	})
	t.Run("wrong-passphrase", func(t *testing.T) {
		key := open(t, edCert, g.socket, writePass(t, []byte("wrong")))
		if err := sign(key); !errors.Is(err, ErrBadPassphrase) {
			t.Fatalf("got %v, want ErrBadPassphrase", err)
		}
		if strings.Contains(fmt.Sprint(sign(key)), "wrong") {
			t.Fatal("error mentions the passphrase")
		}
	})
	t.Run("no-passphrase-file", func(t *testing.T) {
		key := open(t, edCert, g.socket, "")
		if err := sign(key); !errors.Is(err, ErrNeedPassphrase) {
			t.Fatalf("got %v, want ErrNeedPassphrase", err)
		}
	})
	t.Run("key-removed", func(t *testing.T) {
		key := open(t, plainCert, g.socket, "")
		signAndVerify(t, key, crypto.SHA256, artifact)
		if err := os.Remove(g.keyFile(plain.PrimaryKey)); err != nil {
			t.Fatal(err)
		}
		if err := sign(key); !errors.Is(err, ErrKeyNotInAgent) {
			t.Fatalf("got %v, want ErrKeyNotInAgent", err)
		}
	})
	t.Run("agent-hung", func(t *testing.T) {
		old := DefaultTimeout
		DefaultTimeout = 500 * time.Millisecond
		t.Cleanup(func() { DefaultTimeout = old })
		key := open(t, edCert, g.socket, writePass(t, testPass))
		pid := g.agentPID()
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer syscall.Kill(pid, syscall.SIGCONT)
		if err := sign(key); !errors.Is(err, ErrAgentHung) {
			t.Fatalf("got %v, want ErrAgentHung", err)
		}
	})
	t.Run("agent-killed", func(t *testing.T) {
		key := open(t, edCert, g.socket, writePass(t, testPass))
		pid := g.agentPID()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Wait until the process is gone, so the test does not race it.
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		if err := sign(key); !errors.Is(err, ErrAgentDead) {
			t.Fatalf("got %v, want ErrAgentDead", err)
		}
	})
}
