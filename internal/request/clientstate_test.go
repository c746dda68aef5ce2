package request

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/archreq"
	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/signer"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// v1Profile opts the fixture's profile into signstar-v1.
const v1Profile = "accept = [\"signstar-v1\"]\nhash = \"sha512\"\nkinds = [\"any\"]"

var upstream, _ = filepath.Abs("../archreq/testdata/upstream")

// stateRequest is the signstar-v1 request a client sends for the file at
// path: its SHA-512 state after every byte, in sha2 0.11's form.
func stateRequest(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha512.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	st, err := archreq.SerializeSHA512(h)
	if err != nil {
		t.Fatal(err)
	}
	nums := make([]int, len(st))
	for i, b := range st {
		nums[i] = int(b)
	}
	req, _ := json.MarshalIndent(map[string]any{
		"version": "1.0.0",
		"required": map[string]any{
			"input":  map[string]any{"type": archreq.InputType, "content": nums},
			"output": map[string]any{"type": archreq.OutputType},
		},
		"optional": map[string]any{"request-time": 1728913277},
	}, "", "  ")
	return req
}

// response checks stdout is upstream's response and returns its armored
// signature and the binary packet in it.
func response(t testing.TB, out []byte) (armored, sig []byte) {
	t.Helper()
	var resp map[string]any
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("response %q: %v", out, err)
	}
	s, _ := resp["signature"].(string)
	if len(resp) != 2 || resp["version"] != "1.0.0" || !strings.HasPrefix(s, "-----BEGIN PGP SIGNATURE-----\n") {
		t.Fatalf("response %q", out)
	}
	block, err := armor.Decode(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	sig, err = io.ReadAll(block.Body)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s), sig
}

// verifyPeers checks sig over the file with gpgv and sqv.
func verifyPeers(t *testing.T, keyName, file string, sig []byte) {
	t.Helper()
	gpgv := testenv.NeedTool(t, "gpgv", "gpgv")
	sqv := testenv.NeedTool(t, "sqv", "sqv")
	dir := t.TempDir()
	pub := filepath.Join(keysDir, keyName+".pub")
	block, err := armor.Decode(bytes.NewReader(mustRead(t, pub)))
	if err != nil {
		t.Fatal(err)
	}
	ring, _ := io.ReadAll(block.Body)
	os.WriteFile(filepath.Join(dir, "ring.gpg"), ring, 0o600)
	sigPath := filepath.Join(dir, "file.sig")
	os.WriteFile(sigPath, sig, 0o600)
	if out, err := exec.Command(gpgv, "--homedir", dir, "--keyring", filepath.Join(dir, "ring.gpg"), sigPath, file).CombinedOutput(); err != nil || !bytes.Contains(out, []byte("Good signature")) {
		t.Errorf("gpgv: %v\n%s", err, out)
	}
	if out, err := exec.Command(sqv, "--keyring", pub, sigPath, file).CombinedOutput(); err != nil {
		t.Errorf("sqv: %v\n%s", err, out)
	}
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClientStateSizes: requests built from real files' SHA-512 states,
// on both sides of the 128-byte block and at 10 MiB, are answered with a
// signature that verifies over the file (go-crypto, gpgv, sqv), carries
// the data-digest notation, and is audited with the file's digest and
// size, marked hashed by the client.
func TestClientStateSizes(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 129, 10 << 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := newFixture(t, "ed25519", v1Profile)
			f.rq.Command = ""
			file := filepath.Join(f.dir, "file")
			data := make([]byte, n)
			rand.Read(data)
			os.WriteFile(file, data, 0o600)
			f.input(stateRequest(t, file))
			r := f.check(f.rq.Sign(empty()), Signed, "")
			_, sig := response(t, f.stdout.Bytes())
			want := sha512.Sum512(data)
			if r.HashedBy != audit.HashedByClient || r.Size != int64(n) || r.Digest != fmt.Sprintf("sha512:%x", want) || r.Kind != "" || r.Command != "" {
				t.Errorf("record %+v", r)
			}
			if rs, _ := base64.StdEncoding.DecodeString(r.Signature); !bytes.Equal(rs, sig) {
				t.Error("the record's signature is not the response's")
			}
			key, err := OpenBackend(&f.rq.Config.Profiles[0], clock)
			if err != nil {
				t.Fatal(err)
			}
			defer key.Close()
			checkSig(t, sig, data, key)
			verifyPeers(t, "ed25519", file, sig)
			if _, err := audit.Verify(bytes.NewReader(mustRead(t, f.logPath))); err != nil {
				t.Errorf("audit verify: %v", err)
			}
		})
	}
}

// checkSig: sig verifies over data with go-crypto, is SHA-512, and has the
// data-digest notation of upstream's server: the file's SHA-512, binary,
// not critical.
func checkSig(t *testing.T, sig, data []byte, key *backend.Key) {
	t.Helper()
	in, err := signer.Read(bytes.NewReader(data), crypto.SHA512, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := signer.Verify(sig, in, key.Public); err != nil {
		t.Fatalf("the signature does not verify over the file: %v", err)
	}
	p, _ := packet.Read(bytes.NewReader(sig))
	s := p.(*packet.Signature)
	want := sha512.Sum512(data)
	if s.Hash != crypto.SHA512 {
		t.Fatalf("hash %v", s.Hash)
	}
	var found []*packet.Notation
	for _, n := range s.Notations {
		if n.Name == DataDigestNotation {
			found = append(found, n)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s notations in %+v", len(found), DataDigestNotation, s.Notations)
	}
	if n := found[0]; !bytes.Equal(n.Value, want[:]) || n.IsCritical || n.IsHumanReadable {
		t.Errorf("notation %+v", n)
	}
}

// TestClientStateRefusals: every bad fixture of upstream's, another major
// version, an unknown required field, a state with a byte after its
// buffer and a request over archreq.MaxRequest are refused (exit 2) and
// audited as a client-hashed request, with nothing on stdout.
func TestClientStateRefusals(t *testing.T) {
	sample := mustRead(t, filepath.Join(upstream, "sample-request.json"))
	cases := map[string]struct {
		in   []byte
		want string
	}{
		"major 2":          {bytes.Replace(sample, []byte(`"1.0.0"`), []byte(`"2.0.0"`), 1), `version "2.0.0" is not understood`},
		"unknown required": {bytes.Replace(sample, []byte(`"output": {`), []byte(`"nonce": 1, "output": {`), 1), `required has the unknown field "nonce"`},
		"after buffer":     {bytes.Replace(sample, []byte("116,\n        0,"), []byte("116,\n        9,"), 1), "non-zero byte 0x09 at offset 100"},
		"oversized":        {append(append([]byte(nil), sample...), bytes.Repeat([]byte(" "), archreq.MaxRequest)...), "request is longer than 65536 bytes"},
	}
	bad, _ := filepath.Glob(filepath.Join(upstream, "bad-*.json"))
	for _, p := range bad {
		cases[filepath.Base(p)] = struct {
			in   []byte
			want string
		}{mustRead(t, p), "not a signstar-v1 request"}
	}
	if len(cases) != 4+6 {
		t.Fatalf("%d cases: upstream's bad fixtures are missing", len(cases))
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, "ed25519", v1Profile)
			f.rq.Command = ""
			f.input(c.in)
			r := f.check(f.rq.Sign(empty()), RefusedRequest, c.want)
			if r.HashedBy != audit.HashedByClient || r.Signature != "" || r.Digest != "" {
				t.Errorf("record %+v", r)
			}
			if name == "oversized" && !strings.Contains(r.Reason, fmt.Sprintf("(%d bytes read)", archreq.MaxRequest+1)) {
				t.Errorf("reason %q does not say the read stopped", r.Reason)
			}
		})
	}
}

// TestClientStateShape: with an empty command an opted-in profile reads
// only a request, so a file (JSON or not) is refused, not signed; `sign`
// signs the file itself, and a profile that did not opt in signs it with
// the empty command as before. max_size applies to the bytes the client
// says it hashed.
func TestClientStateShape(t *testing.T) {
	file := []byte(`{"a JSON file": "to sign as it is"}`)
	f := newFixture(t, "ed25519", v1Profile)
	f.input(file)
	f.check(f.rq.Sign(empty()), RefusedRequest, "has the unknown field")
	f.input(file)
	r := f.check(f.rq.Sign(sign()), Signed, "")
	if r.HashedBy != "" || r.Size != int64(len(file)) {
		t.Errorf("sign on an opted-in profile: record %+v", r)
	}

	plain := newFixture(t, "ed25519", `hash = "sha512"`)
	plain.input(mustRead(t, filepath.Join(upstream, "sample-request.json")))
	r = plain.check(plain.rq.Sign(empty()), Signed, "")
	if r.HashedBy != "" {
		t.Errorf("a profile without accept took a request: %+v", r)
	}

	small := newFixture(t, "ed25519", v1Profile, `max_size = "18"`)
	small.input(mustRead(t, filepath.Join(upstream, "sample-request.json")))
	r = small.check(small.rq.Sign(empty()), RefusedTooLarge, "the client hashed 19 bytes, more than max_size 18 of profile repo")
	if want := sha512.Sum512([]byte("this is sample text")); r.Size != 19 || r.Digest != fmt.Sprintf("sha512:%x", want) || r.HashedBy != audit.HashedByClient {
		t.Errorf("record %+v", r)
	}
}
