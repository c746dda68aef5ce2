package request

import (
	"archive/tar"
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/config"
	"github.com/signstar/signstar/internal/policy"
	"github.com/signstar/signstar/internal/signer"
)

type file struct {
	name string
	data []byte
	typ  byte // tar.TypeReg when 0
}

// archive is a tar of files as archive/tar writes it (ustar or pax).
func archive(t *testing.T, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Size: int64(len(f.data)), Mode: 0o644, Typeflag: f.typ}
		if f.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if f.typ == tar.TypeSymlink {
			h.Linkname, h.Size = "x", 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.data)
	}
	tw.Close()
	return buf.Bytes()
}

// pkg is a minimal pacman package: an uncompressed tar whose .PKGINFO
// comes first.
func pkg(t *testing.T, name string) []byte {
	return archive(t, file{name: ".PKGINFO", data: []byte("pkgname = " + name + "\npkgver = 1.0-1\n")}, file{name: "usr/bin/" + name, data: []byte("#!/bin/sh\n")})
}

func files(t *testing.T, n int) []file {
	var fs []file
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("p%d", i)
		fs = append(fs, file{name: name + "-1.0-1-any.pkg.tar", data: pkg(t, name)})
	}
	return fs
}

// signatures reads stdout's tar of signatures: names and contents.
func signatures(t *testing.T, out []byte) (names []string, sigs [][]byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		names = append(names, h.Name)
		sigs = append(sigs, b)
	}
}

func digestOf(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

func TestTarSigned(t *testing.T) {
	f := newFixture(t, "ed25519", `kinds = ["pacman-package"]`)
	fs := files(t, 3)
	f.input(archive(t, fs...))
	f.rq.Command = "sign --tar"
	res := f.rq.Sign(sign("--tar"))
	if res.Outcome != Signed || res.Exit != 0 || res.Message != "" {
		t.Fatalf("%+v", res)
	}
	names, sigs := signatures(t, f.stdout.Bytes())
	if len(f.stdout.Bytes())%10240 != 0 || len(names) != 3 {
		t.Fatalf("stdout: %d bytes, members %q", f.stdout.Len(), names)
	}
	k, err := OpenBackend(&f.rq.Config.Profiles[0], clock)
	if err != nil {
		t.Fatal(err)
	}
	recs := f.records()
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	for i, fl := range fs {
		if names[i] != fl.name+".sig" {
			t.Errorf("member %d is %q", i, names[i])
		}
		in, _ := signer.Read(bytes.NewReader(fl.data), crypto.SHA256, 0, nil)
		if err := signer.Verify(sigs[i], in, k.Public); err != nil {
			t.Errorf("%s: %v", names[i], err)
		}
		r := recs[i]
		if r.Outcome != audit.Signed || r.Name != fl.name || r.Size != int64(len(fl.data)) || r.Digest != digestOf(fl.data) ||
			r.Kind != "pacman-package" || r.Signature != base64.StdEncoding.EncodeToString(sigs[i]) || r.Command != "sign --tar" {
			t.Errorf("record %d: %+v", i, r)
		}
	}
	if n, err := audit.Verify(bytes.NewReader(mustReadFile(t, f.logPath))); err != nil || n != 3 {
		t.Fatalf("audit verify: %d, %v", n, err)
	}
	// Each signature commits to its own record: its seq, and the tree of
	// the records before it, the archive's earlier members included.
	fr := audit.NewFrontier()
	for i, line := range bytes.Split(bytes.TrimSuffix(mustReadFile(t, f.logPath), []byte("\n")), []byte("\n")) {
		ps, err := audit.ReadSignatures(sigs[i])
		if err != nil {
			t.Fatal(err)
		}
		seq, root, err := audit.SignatureNotation(ps[0])
		want, _ := fr.Root()
		if err != nil || seq != uint64(i+1) || root != want {
			t.Errorf("signature %d: notation seq %d root %x (%v), want %d %x", i, seq, root, err, i+1, want)
		}
		fr.Add(line)
	}
	// --armor: MEMBER.asc, armored.
	f.stdout.Reset()
	f.input(archive(t, fs[0]))
	f.check(f.rq.Sign(sign("--tar", "--armor")), Signed, "")
	names, sigs = signatures(t, f.stdout.Bytes())
	if len(names) != 1 || names[0] != fs[0].name+".asc" || !bytes.HasPrefix(sigs[0], []byte("-----BEGIN PGP SIGNATURE-----")) {
		t.Fatalf("armored: %q %q", names, sigs)
	}
}

// checkBatch is what a stopped archive session promises: no stdout, the
// outcome's exit code, and records in input order: for each member named
// in withheld, a record with the same outcome saying it was withheld, then
// the culprit's (name "" for the archive as a whole) with the message.
func checkBatch(t *testing.T, f *fixture, res Result, want Outcome, msg string, withheld []string, culprit string) []audit.Record {
	t.Helper()
	if res.Outcome != want || res.Exit != Table[want].Exit || !strings.Contains(res.Message, msg) {
		t.Fatalf("%+v, want %v with %q", res, want, msg)
	}
	if f.stdout.Len() != 0 {
		t.Fatalf("stdout has %d bytes", f.stdout.Len())
	}
	recs := f.records()
	if len(recs) != len(withheld)+1 {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(withheld)+1, recs)
	}
	for i, r := range recs {
		if r.Outcome != Table[want].Audit || r.Signature != "" {
			t.Errorf("record %d: %+v", i, r)
		}
		if i < len(withheld) {
			if r.Name != withheld[i] || r.Reason != "withheld: no signature of the archive was written ("+res.Message+")" || r.Size == 0 || r.Digest == "" {
				t.Errorf("withheld record %d: %+v", i, r)
			}
			continue
		}
		if r.Name != culprit || r.Reason != res.Message {
			t.Errorf("culprit's record: %+v", r)
		}
	}
	return recs
}

func TestTarRefusals(t *testing.T) {
	good := files(t, 2)
	names := []string{good[0].name, good[1].name}
	for _, tc := range []struct {
		name    string
		extra   string
		files   []file
		raw     []byte // instead of files
		want    Outcome
		msg     string
		culprit string
		held    []string
	}{
		{"symlink", "", append(good, file{name: "link", typ: tar.TypeSymlink}), nil, RefusedArchive,
			`refused archive: member "link": a symbolic link: only regular files are signed; no signature was written`, "link", names},
		{"directory", "", append(good, file{name: "dir/", typ: tar.TypeDir}), nil, RefusedArchive, `member "dir/": a directory`, "dir/", names},
		{"dotdot", "", append(good, file{name: "../x", data: []byte("x")}), nil, RefusedArchive, `member "../x": the name has a '..' component`, "../x", names},
		{"absolute", "", append(good, file{name: "/etc/x", data: []byte("x")}), nil, RefusedArchive, `an absolute name`, "/etc/x", names},
		{"duplicate", "", append(good, good[0]), nil, RefusedArchive, "a second member of the same name", good[0].name, names},
		{"kind", `kinds = ["pacman-package"]`, append(good, file{name: "notes.txt", data: []byte("text")}), nil, RefusedKind,
			`member "notes.txt": kind unknown (not a pacman-package, pacman-db or iso) not allowed in profile repo (kinds: pacman-package); no signature was written`, "notes.txt", names},
		{"max_size", `max_size = "4KiB"`, append(good, file{name: "big", data: make([]byte, 5000)}), nil, RefusedTooLarge,
			`member "big": larger than max_size 4KiB of profile repo`, "big", names},
		{"max_files", `max_files = 2`, append(good, file{name: "third", data: []byte("x")}), nil, RefusedArchive, `member "third": more than max_files 2 members`, "third", names},
		{"rate", `rate = "1/1h"`, good, nil, RefusedRate,
			`member "` + good[1].name + `": rate 1/1h is fewer than the 2 signatures the archive asks for`, good[1].name, names[:1]},
		{"empty", "", nil, archive(t), RefusedArchive, "the archive holds no files", "", nil},
		{"trailing", "", nil, append(archive(t, good...), "more"...), RefusedArchive, "trailing data after the end of the archive", "", names},
		{"truncated", "", nil, archive(t, good...)[:3584+512+1000], RefusedArchive, "truncated archive", good[1].name, names[:1]},
		{"not a tar", "", nil, []byte(strings.Repeat("hello", 200)), RefusedArchive, "is not a tar header", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "ed25519", tc.extra)
			data := tc.raw
			if data == nil {
				data = archive(t, tc.files...)
			}
			f.input(data)
			recs := checkBatch(t, f, f.rq.Sign(sign("--tar")), tc.want, tc.msg, tc.held, tc.culprit)
			last := recs[len(recs)-1]
			if tc.culprit == "" && (last.Size != int64(len(data)) || last.Digest != digestOf(data)) {
				t.Errorf("the archive's record: size %d digest %s, want the stream's", last.Size, last.Digest)
			}
		})
	}
}

// The truncated member's record has what arrived of it.
func TestTarTruncatedMember(t *testing.T) {
	f := newFixture(t, "ed25519")
	data := archive(t, file{name: "a", data: bytes.Repeat([]byte("a"), 3000)})
	f.input(data[:512+1000])
	recs := checkBatch(t, f, f.rq.Sign(sign("--tar")), RefusedArchive, `truncated archive: the member ends after 1000 of its 3000 bytes`, nil, "a")
	if r := recs[0]; r.Size != 1000 || r.Digest != digestOf(bytes.Repeat([]byte("a"), 1000)) {
		t.Errorf("record %+v", r)
	}
}

func TestTarExpect(t *testing.T) {
	f := newFixture(t, "ed25519")
	data := archive(t, files(t, 2)...)
	f.input(data)
	sum := sha256.Sum256(data)
	f.check(f.rq.Sign(sign("--tar", "--expect", fmt.Sprintf("sha256:%x", sum))), Signed, "")
	if n := len(f.records()); n != 2 {
		t.Fatalf("%d records", n)
	}

	f = newFixture(t, "ed25519")
	f.input(data)
	checkBatch(t, f, f.rq.Sign(sign("--tar", "--expect", "sha512:"+strings.Repeat("00", 64))), RefusedDigest,
		fmt.Sprintf("digest mismatch: expected sha512:%s, received an archive of %d bytes hashing to sha512:", strings.Repeat("00", 64), len(data)),
		[]string{"p0-1.0-1-any.pkg.tar", "p1-1.0-1-any.pkg.tar"}, "")
}

// A signature that fails in the middle: nothing is written, and every
// member's record says failed, the others withheld.
func TestTarFailedSign(t *testing.T) {
	f := newFixture(t, "ed25519")
	f.input(archive(t, files(t, 3)...))
	n := 0
	f.rq.Open = func(p *config.Profile, t time.Time) (*backend.Key, error) {
		k, err := OpenBackend(p, t)
		if err == nil {
			k.Signer = &hookSigner{k.Signer, func() error {
				if n++; n == 2 {
					return errors.New("card removed")
				}
				return nil
			}}
		}
		return k, err
	}
	res := f.rq.Sign(sign("--tar"))
	if res.Outcome != FailedSign || res.Exit != ExitFailed || f.stdout.Len() != 0 {
		t.Fatalf("%+v", res)
	}
	recs := f.records()
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	for i, r := range recs {
		want := "withheld: no signature of the archive was written (" + res.Message + ")"
		if i == 1 {
			want = `member "p1-1.0-1-any.pkg.tar": profile repo: card removed; no signature was written`
		}
		if r.Outcome != audit.Failed || r.Reason != want || r.Name != fmt.Sprintf("p%d-1.0-1-any.pkg.tar", i) || r.Signature != "" {
			t.Errorf("record %d: %+v", i, r)
		}
	}
}

// stdout that fails after the records: they say signed, and one more, of
// the archive, says the signatures never left.
func TestTarFailedOutput(t *testing.T) {
	f := newFixture(t, "ed25519")
	f.input(archive(t, files(t, 2)...))
	f.rq.Stdout = failWriter{}
	res := f.rq.Sign(sign("--tar"))
	if res.Outcome != FailedOutput || !strings.Contains(res.Message, "the 2 signatures were made and audited (records 1 to 2) but could not be written to stdout") {
		t.Fatalf("%+v", res)
	}
	recs := f.records()
	if len(recs) != 3 || recs[0].Outcome != audit.Signed || recs[1].Outcome != audit.Signed || recs[2].Outcome != audit.Failed || recs[2].Name != "" {
		t.Fatalf("records %+v", recs)
	}
}

// Rate counts each member: three members of a 3/1h profile fit, then one
// more does not.
func TestTarRateCountsMembers(t *testing.T) {
	f := newFixture(t, "ed25519", `rate = "3/1h"`)
	f.input(archive(t, files(t, 3)...))
	f.check(f.rq.Sign(sign("--tar")), Signed, "")
	f.stdout.Reset()
	f.input([]byte("one more"))
	f.check(f.rq.Sign(sign()), RefusedRate, "rate 3/1h reached")
}

// A required syslog daemon that is gone by the time the archive's records
// are appended: they stay, signed; one more record per member and one for
// the archive say the signatures were discarded, and stdout stays empty.
// A live one gets every record, in order.
func TestTarSyslog(t *testing.T) {
	f := newFixture(t, "ed25519")
	f.input(archive(t, files(t, 2)...))
	daemon := listenSyslog(t, f.dir+"/log")
	f.rq.Log.Forward(audit.DialSyslog(f.dir+"/log", true))
	daemon.Close()
	res := f.rq.Sign(sign("--tar"))
	if res.Outcome != FailedSyslog || res.Exit != ExitFailed || f.stdout.Len() != 0 ||
		!strings.Contains(res.Message, "record 1 is in the audit log but could not be sent to the syslog socket") ||
		!strings.Contains(res.Message, "so the 2 signatures (records 1 to 2) were discarded") {
		t.Fatalf("%+v, %d bytes out", res, f.stdout.Len())
	}
	recs := f.records()
	if len(recs) != 5 || recs[0].Outcome != audit.Signed || recs[1].Outcome != audit.Signed {
		t.Fatalf("records %+v", recs)
	}
	for _, r := range recs[2:] {
		if r.Outcome != audit.Failed || r.Signature != "" {
			t.Errorf("record %d: %s %q", r.Seq, r.Outcome, r.Signature)
		}
	}

	f = newFixture(t, "ed25519")
	f.input(archive(t, files(t, 2)...))
	daemon = listenSyslog(t, f.dir+"/log")
	f.rq.Log.Forward(audit.DialSyslog(f.dir+"/log", true))
	if res := f.rq.Sign(sign("--tar")); res.Outcome != Signed {
		t.Fatalf("%+v", res)
	}
	for i, r := range f.records() {
		buf := make([]byte, audit.MaxLine)
		daemon.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := daemon.Read(buf)
		if err != nil || !strings.Contains(string(buf[:n]), fmt.Sprintf(`]: {"seq":%d,`, r.Seq)) {
			t.Fatalf("message %d: %q, %v", i+1, buf[:n], err)
		}
	}
}

// A client that stalls inside the archive: failed, the member named, what
// arrived before it withheld.
func TestTarIdle(t *testing.T) {
	f := newFixture(t, "ed25519")
	pr, pw := pipe(t)
	f.rq.Stdin = pr
	f.rq.Idle = 100 * time.Millisecond
	data := archive(t, file{name: "a", data: []byte("first")}, file{name: "b", data: bytes.Repeat([]byte("b"), 4096)})
	pw.Write(data[:1024+512+100])
	checkBatch(t, f, f.rq.Sign(sign("--tar")), FailedIdle, `member "b": no data from the client for 100ms after 1636 bytes; no signature was written`, []string{"a"}, "b")
}

// A connection that drops mid-archive (sshd closes stdout first): a
// truncated archive is the client gone, not a refusal.
func TestTarClientGone(t *testing.T) {
	f := newFixture(t, "ed25519")
	data := archive(t, file{name: "a", data: []byte("first")}, file{name: "b", data: bytes.Repeat([]byte("b"), 4096)})
	f.input(data[:1024+512+100])
	pr, pw := pipe(t)
	pr.Close()
	f.rq.Stdout = pw
	res := f.rq.Sign(sign("--tar"))
	if res.Outcome != FailedClientGone || !strings.Contains(res.Message, `member "b": the client disconnected before the upload finished; no signature was written`) {
		t.Fatalf("%+v", res)
	}
	recs := f.records()
	if len(recs) != 2 || recs[0].Name != "a" || recs[1].Name != "b" || recs[1].Outcome != audit.Failed {
		t.Fatalf("records %+v", recs)
	}
}

// A client held back by the refusal throttle waits once for its whole
// archive, and every record of it says so.
func TestTarHeldBackOnce(t *testing.T) {
	saved := []any{policy.RefusalsPerClient, policy.RefusalSpacing}
	policy.RefusalsPerClient, policy.RefusalSpacing = 1, 200*time.Millisecond
	t.Cleanup(func() {
		policy.RefusalsPerClient, policy.RefusalSpacing = saved[0].(int), saved[1].(time.Duration)
	})
	f := newFixture(t, "ed25519")
	start := time.Now()
	f.rq.Now = func() time.Time { return clock.Add(time.Since(start)) }
	f.input([]byte("not a tar at all, refused"))
	f.rq.Sign(sign("--tar"))
	f.input(archive(t, files(t, 3)...)[:3584*3] /* no end blocks */)
	res := f.rq.Sign(sign("--tar"))
	if res.Outcome != RefusedArchive {
		t.Fatalf("%+v", res)
	}
	recs := f.records()[1:]
	if len(recs) != 4 {
		t.Fatalf("%d records", len(recs))
	}
	for i, r := range recs {
		// Appended together, after one wait: one time for all.
		if r.Time != recs[0].Time {
			t.Errorf("record %d at %s, the first at %s", i, r.Time, recs[0].Time)
		}
		if !strings.HasSuffix(r.Reason, "(held back: 1 refused or failed requests from 192.0.2.1 50000 192.0.2.2 22 in 10m0s)") {
			t.Errorf("record %d: %q", i, r.Reason)
		}
	}
}
