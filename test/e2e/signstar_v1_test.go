package e2e

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/signstar/signstar/internal/archreq"
	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/testsupport/pacmantest"
	"github.com/signstar/signstar/internal/testsupport/sshtest"
)

// archProfile opts the first profile into Arch Linux's request protocol.
const archProfile = `
[[profile]]
name = "arch"
backend = "keyfile"
key = "{SIGNING_KEY}"
hash = "sha512"
kinds = ["any"]
accept = ["signstar-v1"]
users = ["{USER}"]
`

// v1Sign sends a signstar-v1 request through sshd with an empty command,
// as signstar-request-signature does, and returns the binary signature in
// upstream's response.
func v1Sign(t *testing.T, e *enclave, request []byte) ([]byte, error) {
	t.Helper()
	r := e.ssh(t, "client", request, nil)
	if r.ExitCode != 0 {
		return nil, fmt.Errorf("exit %d, stderr %q", r.ExitCode, r.Stderr)
	}
	if len(r.Stderr) != 0 {
		t.Errorf("stderr not empty: %q", r.Stderr)
	}
	var resp map[string]string
	if err := json.Unmarshal(r.Stdout, &resp); err != nil || len(resp) != 2 || resp["version"] != "1.0.0" {
		return nil, fmt.Errorf("not upstream's response: %q (%v)", r.Stdout, err)
	}
	block, err := armor.Decode(strings.NewReader(resp["signature"]))
	if err != nil {
		return nil, fmt.Errorf("signature not armored: %v", err)
	}
	return io.ReadAll(block.Body)
}

// stateRequest is the request Arch's client makes for data: its SHA-512
// state in sha2 0.11's form.
func stateRequest(t *testing.T, data []byte) []byte {
	t.Helper()
	h := sha512.New()
	h.Write(data)
	st, err := archreq.SerializeSHA512(h)
	if err != nil {
		t.Fatal(err)
	}
	nums := make([]int, len(st))
	for i, b := range st {
		nums[i] = int(b)
	}
	req, _ := json.Marshal(map[string]any{
		"version": "1.0.0",
		"required": map[string]any{
			"input":  map[string]any{"type": archreq.InputType, "content": nums},
			"output": map[string]any{"type": archreq.OutputType},
		},
	})
	return req
}

// TestSignstarV1ThroughSSH: upstream's sample request, sent through the
// real sshd with an empty command, gives a response whose signature
// verifies over "this is sample text" with gpgv and sqv; pacman installs a
// package from a repository whose package and database signatures were
// made from client states; upstream's bad fixtures and an oversized
// request are refused (exit 2, audited, stdout empty). One enclave for all.
func TestSignstarV1ThroughSSH(t *testing.T) {
	e := newEnclave(t, enclaveOptions{deployment: sshtest.ForceCommand, profiles: archProfile})
	sample, err := os.ReadFile(repoFile(t, "internal/archreq/testdata/upstream/sample-request.json"))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := v1Sign(t, e, sample)
	if err != nil {
		t.Fatalf("sample request: %v", err)
	}
	text := []byte("this is sample text")
	e.verifySig(t, text, sig)
	rec := e.last(t)
	if rec.Outcome != audit.Signed || rec.Command != "" || rec.Profile != "arch" || rec.HashedBy != audit.HashedByClient ||
		rec.Size != 19 || rec.Digest != fmt.Sprintf("sha512:%x", sha512.Sum512(text)) || rec.Kind != "" || !enforced.MatchString(rec.Sandbox) {
		t.Errorf("record %+v", rec)
	}

	// Upstream's bad fixtures, and a request past the bound, through sshd.
	for _, name := range []string{"bad-not-json.json", "bad-unknown-type.json"} {
		data, err := os.ReadFile(repoFile(t, "internal/archreq/testdata/upstream/"+name))
		if err != nil {
			t.Fatal(err)
		}
		v1Refused(t, e, name, data, "not a signstar-v1 request")
	}
	big := append(append([]byte(nil), sample...), bytes.Repeat([]byte(" "), 1<<20)...)
	v1Refused(t, e, "oversized", big, fmt.Sprintf("not a signstar-v1 request (%d bytes read): request is longer than %d bytes", archreq.MaxRequest+1, archreq.MaxRequest))

	// pacman: a package and its database signed from client states.
	o := pacmantest.Prepare(t, pacmantest.Hello, func(data []byte) ([]byte, error) {
		return v1Sign(t, e, stateRequest(t, data))
	})
	cert, err := os.ReadFile(e.pub)
	if err != nil {
		t.Fatal(err)
	}
	o.Certs = [][]byte{cert}
	env := pacmantest.Install(t, o)
	env.RefuseTampered(t)
	e.verifyLog(t, len(e.records(t)))
}

func v1Refused(t *testing.T, e *enclave, name string, request []byte, reason string) {
	t.Helper()
	r := e.ssh(t, "client", request, nil)
	if r.ExitCode != 2 || len(r.Stdout) != 0 || !bytes.Contains(r.Stderr, []byte("signstar: "+reason)) {
		t.Errorf("%s: exit %d, stdout %q, stderr %q", name, r.ExitCode, r.Stdout, r.Stderr)
	}
	rec := e.last(t)
	if rec.Outcome != audit.Refused || rec.HashedBy != audit.HashedByClient || !strings.HasPrefix(rec.Reason, reason) {
		t.Errorf("%s: record %+v", name, rec)
	}
}
