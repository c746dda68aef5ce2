package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/testsupport/pacmantest"
	"github.com/signstar/signstar/internal/testsupport/sshtest"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// TestPeersAcceptLogSignatures: what a signstar behind sshd signs, with
// the log's notation in every signature, is accepted unchanged by gpgv,
// sqv and sq verify (a plain artifact), by pacman (a package and its
// database, synced and installed with SigLevel = Required TrustedOnly) and
// by apt (apt-get update of a file: repository whose Release.gpg came
// from signstar, in an apt state of its own). One enclave for all.
func TestPeersAcceptLogSignatures(t *testing.T) {
	e := newEnclave(t, enclaveOptions{deployment: sshtest.ForceCommand})
	pub, err := os.ReadFile(e.pub)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(data []byte, remote ...string) []byte {
		t.Helper()
		r := e.ssh(t, "client", data, nil, remote...)
		if r.ExitCode != 0 || len(r.Stdout) == 0 {
			t.Fatalf("%q: exit %d, stderr %q", remote, r.ExitCode, r.Stderr)
		}
		e.checkLogNotation(t, r.Stdout)
		return r.Stdout
	}

	// gpgv, sqv and sq verify.
	data := randomBytes(t, 4096)
	sig := sign(data, "sign")
	e.verifySig(t, data, sig)
	sq := testenv.NeedTool(t, "sq", "sq")
	dir := t.TempDir()
	files := map[string][]byte{"artifact": data, "artifact.sig": sig, "cert.asc": pub}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(sq, "verify", "--signer-cert", filepath.Join(dir, "cert.asc"), "--detached", filepath.Join(dir, "artifact.sig"), filepath.Join(dir, "artifact"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sq verify rejects the signature: %v\n%s", err, out)
	}

	// pacman: a package and its database, both signed through sshd.
	o := pacmantest.Prepare(t, pacmantest.Hello, func(b []byte) ([]byte, error) { return sign(b, "sign"), nil })
	o.Certs = [][]byte{pub}
	env := pacmantest.Install(t, o)
	t.Logf("pacman: %s", strings.Join(env.Info, "; "))

	// apt: Release.gpg, armored (apt takes no binary detached signature).
	aptUpdate(t, pub, func(b []byte) []byte { return sign(b, "sign", "--armor") })
}

// aptUpdate lays out a file: repository (one Packages index, its Release,
// Release.gpg from sign), runs apt-get update in a directory of its own
// (sources, keyring, lists, cache, status: the system's apt state is not
// touched) with signed-by naming only cert, and checks that apt took the
// index; then that it refuses the repository once Release changed.
func aptUpdate(t *testing.T, cert []byte, sign func([]byte) []byte) {
	t.Helper()
	aptGet := testenv.NeedTool(t, "apt-get", "apt")
	aptCache := testenv.NeedTool(t, "apt-cache", "apt")
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	dist := filepath.Join(repo, "dists", "stable")
	root := filepath.Join(dir, "apt")
	for _, d := range []string{
		filepath.Join(dist, "main", "binary-amd64"),
		filepath.Join(root, "etc", "sources.list.d"), filepath.Join(root, "etc", "apt.conf.d"),
		filepath.Join(root, "etc", "preferences.d"), filepath.Join(root, "etc", "trusted.gpg.d"),
		filepath.Join(root, "state", "lists", "partial"), filepath.Join(root, "cache", "archives", "partial"),
		filepath.Join(root, "log"),
	} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	packages := []byte("Package: hello\nVersion: 1.0\nArchitecture: all\nMaintainer: Signstar Test <test@example.org>\n" +
		"Filename: pool/main/h/hello/hello_1.0_all.deb\nSize: 6\n" +
		fmt.Sprintf("SHA256: %x\n", sha256.Sum256([]byte("hello\n"))) + "Description: signstar test package\n\n")
	release := []byte(fmt.Sprintf("Origin: signstar\nLabel: signstar\nSuite: stable\nCodename: stable\nDate: %s\nArchitectures: amd64\nComponents: main\nSHA256:\n %x %d main/binary-amd64/Packages\n",
		time.Now().UTC().Format(time.RFC1123Z), sha256.Sum256(packages), len(packages)))
	keyring := filepath.Join(root, "signstar.asc")
	for p, b := range map[string][]byte{
		filepath.Join(dist, "main", "binary-amd64", "Packages"): packages,
		filepath.Join(dist, "Release"):                          release,
		filepath.Join(dist, "Release.gpg"):                      sign(release),
		filepath.Join(root, "status"):                           nil,
		keyring:                                                 cert,
		filepath.Join(root, "etc", "sources.list"):              []byte("deb [signed-by=" + keyring + "] file:" + repo + " stable main\n"),
	} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := []string{
		"-o", "Dir::Etc=" + filepath.Join(root, "etc"),
		"-o", "Dir::State=" + filepath.Join(root, "state"),
		"-o", "Dir::State::status=" + filepath.Join(root, "status"),
		"-o", "Dir::Cache=" + filepath.Join(root, "cache"),
		"-o", "Dir::Log=" + filepath.Join(root, "log"),
		// The test's directories are root's alone: no _apt sandbox.
		"-o", "APT::Sandbox::User=root",
		"-o", "APT::Architecture=amd64", "-o", "APT::Architectures::=amd64",
	}
	update := func() ([]byte, error) {
		return exec.Command(aptGet, append(opts, "-q", "update")...).CombinedOutput()
	}
	out, err := update()
	if err != nil || bytes.Contains(out, []byte("W: ")) || bytes.Contains(out, []byte("E: ")) {
		t.Fatalf("apt-get update: %v\n%s", err, out)
	}
	show, err := exec.Command(aptCache, append(opts, "show", "hello")...).CombinedOutput()
	if err != nil || !bytes.Contains(show, []byte("Package: hello")) {
		t.Fatalf("apt-cache show hello: %v\n%s", err, show)
	}
	// A Release changed after signing is refused, and nothing of it kept.
	lists, _ := filepath.Glob(filepath.Join(root, "state", "lists", "*_dists_stable_*"))
	for _, l := range lists {
		os.Remove(l)
	}
	if err := os.WriteFile(filepath.Join(dist, "Release"), append(release, "Label: changed\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := update(); err == nil || !bytes.Contains(out, []byte("BADSIG")) {
		t.Fatalf("apt-get update of a changed Release: %v\n%s", err, out)
	}
}

// checkLogNotation checks that sig, a signature the enclave just made,
// carries the log's notation (docs/CONTRACT.md, "The signature") in its
// hashed area: log@signstar.github.io, not critical, human-readable,
// seq=N root=R, where N is the seq of the record holding this signature
// and R the RFC 6962 root of the N-1 lines before it, computed here from
// the log's lines.
func (e *enclave) checkLogNotation(t *testing.T, sig []byte) {
	t.Helper()
	if err := logNotation(sig, logLines(t, e.log)); err != nil {
		t.Fatal(err)
	}
}

// logNotation is checkLogNotation's check against the log's lines.
func logNotation(sig []byte, lines [][]byte) error {
	notes, err := hashedNotations(sig)
	if err != nil {
		return fmt.Errorf("signature: %v", err)
	}
	var mine []notation
	for _, n := range notes {
		if n.name == "log@signstar.github.io" {
			mine = append(mine, n)
		}
	}
	if len(mine) != 1 {
		return fmt.Errorf("the signature's hashed area has %d log@signstar.github.io notations, want 1 (all: %+v)", len(mine), notes)
	}
	n := mine[0]
	var seq int
	var root string
	if _, err := fmt.Sscanf(n.value, "seq=%d root=%s", &seq, &root); err != nil || n.value != fmt.Sprintf("seq=%d root=%s", seq, root) {
		return fmt.Errorf("notation value %q is not seq=N root=BASE64", n.value)
	}
	if n.critical || !n.humanReadable {
		return fmt.Errorf("notation critical=%v human-readable=%v, want false, true", n.critical, n.humanReadable)
	}
	bin := sig
	if bytes.HasPrefix(sig, []byte("-----BEGIN")) {
		block, err := armor.Decode(bytes.NewReader(sig))
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		buf.ReadFrom(block.Body)
		bin = buf.Bytes()
	}
	if seq < 1 || seq > len(lines) {
		return fmt.Errorf("notation seq %d, the log has %d records", seq, len(lines))
	}
	var rec audit.Record
	if err := json.Unmarshal(lines[seq-1], &rec); err != nil || int(rec.Seq) != seq || rec.Signature != base64.StdEncoding.EncodeToString(bin) {
		return fmt.Errorf("record %d (%v) does not hold this signature", seq, err)
	}
	want := rfc6962Root(lines[:seq-1])
	if root != base64.StdEncoding.EncodeToString(want[:]) {
		return fmt.Errorf("notation root %s, the tree of the %d records before it has %s", root, seq-1, base64.StdEncoding.EncodeToString(want[:]))
	}
	return nil
}

// rfc6962Root is the Merkle tree hash of RFC 6962, 2.1, over the lines as
// leaves: written here from the RFC, not taken from the code under test.
func rfc6962Root(leaves [][]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0}, leaves[0]...))
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := rfc6962Root(leaves[:k]), rfc6962Root(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

// notation is a notation data subpacket (RFC 9580, 5.2.3.24).
type notation struct {
	critical, humanReadable bool
	name, value             string
}

// hashedNotations parses one v4 signature packet (binary or armored) and
// returns the notations of its hashed subpacket area: the area the
// signature covers, so the notation cannot be added or changed without
// breaking it.
func hashedNotations(sig []byte) ([]notation, error) {
	if bytes.HasPrefix(sig, []byte("-----BEGIN")) {
		block, err := armor.Decode(bytes.NewReader(sig))
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(block.Body); err != nil {
			return nil, err
		}
		sig = buf.Bytes()
	}
	body, err := packetBody(sig)
	if err != nil {
		return nil, err
	}
	// version, type, public-key algorithm, hash algorithm, hashed length.
	if len(body) < 6 || body[0] != 4 {
		return nil, errors.New("not a v4 signature packet")
	}
	n := int(binary.BigEndian.Uint16(body[4:6]))
	if len(body) < 6+n {
		return nil, errors.New("hashed area longer than the packet")
	}
	area := body[6 : 6+n]
	var out []notation
	for len(area) > 0 {
		l, hdr, err := subpacketLength(area)
		if err != nil {
			return nil, err
		}
		if l == 0 || len(area) < hdr+l {
			return nil, errors.New("subpacket longer than the hashed area")
		}
		sp := area[hdr : hdr+l]
		area = area[hdr+l:]
		typ, data := sp[0], sp[1:]
		if typ&0x7f != 20 {
			continue
		}
		if len(data) < 8 {
			return nil, errors.New("short notation subpacket")
		}
		nl, vl := int(binary.BigEndian.Uint16(data[4:6])), int(binary.BigEndian.Uint16(data[6:8]))
		if len(data) != 8+nl+vl {
			return nil, errors.New("notation lengths do not add up")
		}
		out = append(out, notation{
			critical:      typ&0x80 != 0,
			humanReadable: data[0]&0x80 != 0,
			name:          string(data[8 : 8+nl]),
			value:         string(data[8+nl:]),
		})
	}
	return out, nil
}

// packetBody is the body of the one packet in b, which must be a signature
// packet (tag 2) in either header format with a definite length.
func packetBody(b []byte) ([]byte, error) {
	if len(b) < 2 || b[0]&0x80 == 0 {
		return nil, errors.New("not an OpenPGP packet")
	}
	var tag byte
	var body []byte
	if b[0]&0x40 != 0 { // new format
		tag = b[0] & 0x3f
		l, hdr, err := subpacketLength(b[1:])
		if err != nil {
			return nil, err
		}
		body = b[1+hdr:]
		if len(body) != l {
			return nil, fmt.Errorf("packet of %d bytes, %d given", l, len(body))
		}
	} else {
		tag = (b[0] >> 2) & 0x0f
		var l, hdr int
		switch b[0] & 3 {
		case 0:
			l, hdr = int(b[1]), 2
		case 1:
			if len(b) < 3 {
				return nil, errors.New("short packet header")
			}
			l, hdr = int(binary.BigEndian.Uint16(b[1:3])), 3
		case 2:
			if len(b) < 5 {
				return nil, errors.New("short packet header")
			}
			l, hdr = int(binary.BigEndian.Uint32(b[1:5])), 5
		default:
			return nil, errors.New("indeterminate packet length")
		}
		body = b[hdr:]
		if len(body) != l {
			return nil, fmt.Errorf("packet of %d bytes, %d given", l, len(body))
		}
	}
	if tag != 2 {
		return nil, fmt.Errorf("packet tag %d, not a signature", tag)
	}
	return body, nil
}

// subpacketLength reads a new-format length (1, 2 or 5 octets; no partial
// lengths) and returns it with the octets it took.
func subpacketLength(b []byte) (int, int, error) {
	switch {
	case len(b) == 0:
		return 0, 0, errors.New("missing length")
	case b[0] < 192:
		return int(b[0]), 1, nil
	case b[0] < 224:
		if len(b) < 2 {
			return 0, 0, errors.New("short length")
		}
		return (int(b[0])-192)<<8 + int(b[1]) + 192, 2, nil
	case b[0] == 255:
		if len(b) < 5 {
			return 0, 0, errors.New("short length")
		}
		return int(binary.BigEndian.Uint32(b[1:5])), 5, nil
	}
	return 0, 0, errors.New("partial length")
}
