package tpm

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpus from swtpm")

// FuzzParseBlob: any key blob file either fails to parse or parses into a
// blob that marshals back to exactly the same bytes (one encoding), with its
// fields in bounds.
func FuzzParseBlob(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBlob(data)
		if err != nil {
			return
		}
		if !bytes.Equal(b.Marshal(), data) {
			t.Fatalf("ParseBlob accepted a second encoding:\n%q\nmarshals as\n%q", data, b.Marshal())
		}
		if len(b.Parent) != nameLen || len(b.Public) > maxPublicLen || len(b.Private) > maxPrivateLen {
			t.Fatalf("field out of bounds")
		}
		for i, p := range b.PCRs {
			if p.Index < 0 || p.Index > maxPCR || (i > 0 && p.Index <= b.PCRs[i-1].Index) {
				t.Fatalf("PCR list %v", b.Indices())
			}
		}
		// The public area inside goes to go-tpm's decoder.
		parsePublic(b.Public)
	})
}

// FuzzParsePublic: a TPMT_PUBLIC from a blob or the TPM is accepted only as
// a signing key signstar makes, in its one encoding, and never panics.
func FuzzParsePublic(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		pa, err := parsePublic(data)
		if err != nil {
			return
		}
		if !bytes.Equal(tpm2.Marshal(&pa.TPMTPublic), data) {
			t.Fatal("accepted a public area that does not marshal back")
		}
		if pa.pub == nil || pa.ObjectAttributes.Decrypt || pa.ObjectAttributes.Restricted || !pa.ObjectAttributes.FixedTPM {
			t.Fatal("accepted a key signstar does not make")
		}
	})
}

// fakeRW answers every command with the same bytes, in pieces of chunk.
type fakeRW struct {
	rsp   []byte
	off   int
	chunk int
}

func (f *fakeRW) Write(p []byte) (int, error) { f.off = 0; return len(p), nil }
func (f *fakeRW) Read(p []byte) (int, error) {
	if f.off >= len(f.rsp) {
		return 0, fmt.Errorf("no more response")
	}
	n := copy(p[:min(len(p), f.chunk)], f.rsp[f.off:])
	f.off += n
	return n, nil
}
func (f *fakeRW) Close() error { return nil }

// FuzzResponse hands one response (as a TPM or a hostile swtpm socket could
// send it, in pieces) to every decoding path signstar uses: the transport's
// framing, TPM2_PCR_Read, the dictionary-attack properties, TPM2_Sign's
// signature, TPM2_Load and TPM2_CreatePrimary. None may panic, and what
// they accept must be consistent.
func FuzzResponse(f *testing.F) {
	pub, err := parsePublic(mustSeedPublic(f))
	if err != nil {
		f.Fatal(err)
	}
	// A TPM_RC_RETRY response is retried until Timeout.
	defer func(d time.Duration) { Timeout = d }(Timeout)
	Timeout = 5 * time.Millisecond
	f.Fuzz(func(t *testing.T, rsp []byte, chunk uint8) {
		c := &conn{path: "fuzz", rw: &fakeRW{rsp: rsp, chunk: int(chunk%64) + 1}, fd: -1}
		if got, err := c.send([]byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x7e}); err == nil {
			if size := binary.BigEndian.Uint32(got[2:6]); int(size) != len(got) || len(got) > maxResponse {
				t.Fatalf("send returned %d bytes for a declared %d", len(got), size)
			}
		}
		if vals, err := readPCRs(c, []int{7, 16}); err == nil {
			for i := range vals {
				if i != 7 && i != 16 {
					t.Fatalf("readPCRs returned PCR %d, not asked for", i)
				}
			}
			if len(vals) != 2 {
				t.Fatalf("readPCRs returned %d values", len(vals))
			}
		}
		if st, err := readDA(c); err == nil && (st.counter < 0 || st.max < 0) {
			t.Fatalf("readDA: %+v", st)
		}
		sr, err := run(func() (*tpm2.SignResponse, error) {
			return tpm2.Sign{KeyHandle: tpm2.NamedHandle{Handle: 0x80000001}, Digest: tpm2.TPM2BDigest{Buffer: make([]byte, 32)},
				InScheme: tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull}, Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck}}.Execute(c)
		})
		if err == nil {
			for _, ecc := range []bool{false, true} {
				if sig, err := signatureBytes(sr, ecc, tpm2.TPMAlgSHA256); err == nil && len(sig) == 0 {
					t.Fatal("empty signature accepted")
				}
			}
			d := sha256.Sum256(rsp)
			checkSignature(pub.pub, crypto.SHA256, d[:], rsp)
		}
		run(func() (*tpm2.LoadResponse, error) {
			return tpm2.Load{ParentHandle: tpm2.AuthHandle{Handle: 0x80000000, Auth: tpm2.PasswordAuth(nil)}}.Execute(c)
		})
		if cp, err := run(func() (*tpm2.CreatePrimaryResponse, error) {
			return tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tpm2.ECCSRKTemplate)}.Execute(c)
		}); err == nil {
			if p, err := cp.OutPublic.Contents(); err == nil {
				parsePublic(tpm2.Marshal(p))
			}
		}
	})
}

// mustSeedPublic is a public area from the committed corpus.
func mustSeedPublic(tb testing.TB) []byte {
	ents, err := os.ReadDir("testdata/fuzz/FuzzParsePublic")
	if err != nil || len(ents) == 0 {
		tb.Fatalf("no FuzzParsePublic corpus: run go test -run TestCorpus -update (%v)", err)
	}
	data, err := os.ReadFile(filepath.Join("testdata/fuzz/FuzzParsePublic", ents[0].Name()))
	if err != nil {
		tb.Fatal(err)
	}
	var v []byte
	if _, err := fmt.Sscanf(string(bytes.SplitN(data, []byte("\n"), 2)[1]), "[]byte(%q)", &v); err != nil {
		tb.Fatalf("corpus file %s: %v", ents[0].Name(), err)
	}
	return v
}

// TestCorpus provisions and signs through swtpm with every algorithm and
// binding, recording each response swtpm sends, and checks that the
// fuzz targets accept the real blobs, public areas and responses; with
// -update it rewrites the seed corpus from them.
func TestCorpus(t *testing.T) {
	var responses [][]byte
	onResponse = func(cmd, rsp []byte) { responses = append(responses, bytes.Clone(rsp)) }
	defer func() { onResponse = nil }()
	r := newRig(t)
	auth := r.file("auth", "pw\n", 0o600)
	var blobs, publics [][]byte
	for i, tc := range []struct {
		algo, auth string
		pcrs       []int
	}{{"ecc-p256", "", nil}, {"rsa2048", auth, []int{7, 16}}, {"rsa3072", "", []int{0, 7}}, {"ecc-p256", auth, []int{4, 7, 9}}} {
		cfg, cert := r.setup(fmt.Sprint("k", i), tc.algo, tc.auth, tc.pcrs...)
		k, err := r.open(cfg, cert)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.sign(k, []byte("corpus"), crypto.SHA256); err != nil {
			t.Fatal(err)
		}
		k.Close()
		b, err := ReadBlob(cfg.KeyBlob)
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, b.Marshal())
		publics = append(publics, b.Public)
	}
	for _, b := range blobs {
		if _, err := ParseBlob(b); err != nil {
			t.Fatalf("a real blob does not parse: %v", err)
		}
	}
	for _, p := range publics {
		if _, err := parsePublic(p); err != nil {
			t.Fatalf("a real public area does not parse: %v", err)
		}
	}
	if len(responses) < 20 {
		t.Fatalf("recorded only %d responses", len(responses))
	}
	if !*update {
		return
	}
	write := func(target string, seeds [][]byte, extra string) {
		dir := filepath.Join("testdata/fuzz", target)
		os.RemoveAll(dir)
		os.MkdirAll(dir, 0o755)
		seen := map[string]bool{}
		for _, s := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n%s", s, extra)
			sum := sha256.Sum256([]byte(body))
			name := fmt.Sprintf("%x", sum[:8])
			if seen[name] {
				continue
			}
			seen[name] = true
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("FuzzParseBlob", blobs, "")
	write("FuzzParsePublic", publics, "")
	write("FuzzResponse", responses, "byte('\\x07')\n")
}
