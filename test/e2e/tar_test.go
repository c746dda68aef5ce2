package e2e

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/testsupport/pacmantest"
	"github.com/signstar/signstar/internal/testsupport/sshtest"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// TestSignTarRepository is issue 16's proof: a repo-add run's database,
// files database and 20 packages go through one `sign --tar` session over
// sshd, GNU tar makes the archive and reads the answer, every signature
// verifies with gpgv and sqv, pacman syncs both databases and installs
// every package from that repository. Then a session with one bad member
// writes no signature, and its records say what left: nothing.
func TestSignTarRepository(t *testing.T) {
	pacmantest.NeedTools(t)
	gnutar := testenv.NeedTool(t, "tar", "tar")
	e := newEnclave(t, enclaveOptions{deployment: sshtest.ForceCommand})

	dir := t.TempDir()
	var pkgs []pacmantest.Package
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("tar%02d", i)
		pkgs = append(pkgs, pacmantest.Package{Name: name, Version: "1.0-1",
			Files: map[string]string{"usr/share/" + name + "/" + name + ".txt": "package " + name + "\n"}})
	}
	const repo = "signstar"
	names, data, err := pacmantest.Repo(dir, repo, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	// The client's side: the repository's files as they are, by name.
	in := filepath.Join(t.TempDir(), "files")
	os.Mkdir(in, 0o755)
	for i, n := range names {
		if err := os.WriteFile(filepath.Join(in, n), data[i], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	archive, err := exec.Command(gnutar, append([]string{"-C", in, "-cf", "-"}, names...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	r := e.ssh(t, "client", archive, nil, "sign", "--tar")
	if r.ExitCode != 0 || len(r.Stderr) != 0 {
		t.Fatalf("exit %d, stderr %q", r.ExitCode, r.Stderr)
	}
	out := filepath.Join(t.TempDir(), "sigs")
	os.Mkdir(out, 0o755)
	x := exec.Command(gnutar, "-C", out, "-xf", "-")
	x.Stdin = bytes.NewReader(r.Stdout)
	if b, err := x.CombinedOutput(); err != nil {
		t.Fatalf("tar -x of the answer: %v\n%s", err, b)
	}
	list, err := tarNames(r.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(names) {
		t.Fatalf("answer holds %q", list)
	}
	sigs := map[string][]byte{}
	for i, n := range names {
		if list[i] != n+".sig" {
			t.Errorf("answer member %d is %q, want %q", i, list[i], n+".sig")
		}
		sig, err := os.ReadFile(filepath.Join(out, n+".sig"))
		if err != nil {
			t.Fatal(err)
		}
		e.verifySig(t, data[i], sig)
		sigs[n] = sig
	}
	recs := e.records(t)
	if len(recs) != len(names) {
		t.Fatalf("%d records, want %d", len(recs), len(names))
	}
	for i, rec := range recs {
		if rec.Outcome != audit.Signed || rec.Name != names[i] || rec.Size != int64(len(data[i])) || rec.Digest != sha256Digest(data[i]) ||
			rec.Command != "sign --tar" || rec.Client != "127.0.0.1" || !enforced.MatchString(rec.Sandbox) {
			t.Errorf("record %d: %+v", i, rec)
		}
	}
	wantKind := map[string]string{repo + ".db": "pacman-db", repo + ".files": "pacman-db"}
	for i, rec := range recs {
		if k, ok := wantKind[names[i]]; ok && rec.Kind != k || !ok && rec.Kind != "pacman-package" {
			t.Errorf("%s: kind %q", names[i], rec.Kind)
		}
	}
	e.verifyLog(t, len(names))

	// pacman: both databases and all 20 packages, each by its signature.
	cert, err := os.ReadFile(e.pub)
	if err != nil {
		t.Fatal(err)
	}
	extra := map[string][]byte{}
	var more []string
	for i, n := range names[1:20] {
		extra[n], extra[n+".sig"] = data[i+1], sigs[n]
		more = append(more, pkgs[i+1].Name)
	}
	files := data[21]
	extra[repo+".files"], extra[repo+".files.sig"] = files, sigs[repo+".files"]
	extra[repo+".files.tar.gz"], extra[repo+".files.tar.gz.sig"] = files, sigs[repo+".files"]
	env := pacmantest.Install(t, pacmantest.Options{
		Certs: [][]byte{cert}, Repo: repo, Name: pkgs[0].Name, PkgFile: names[0],
		Pkg: data[0], PkgSig: sigs[names[0]], DB: data[20], DBSig: sigs[repo+".db"],
		Extra: extra, Names: more,
	})
	if n := strings.Count(strings.Join(env.Info, "\n"), "Validated By"); n != 20 {
		t.Errorf("pacman validated %d packages: %q", n, env.Info)
	}

	// One bad member among good ones: exit 2, nothing on stdout, and the
	// records: the members before it withheld, then the one refused.
	os.Symlink(names[0], filepath.Join(in, "link.pkg.tar.zst"))
	bad, err := exec.Command(gnutar, "-C", in, "-cf", "-", names[0], names[1], "link.pkg.tar.zst", names[2]).Output()
	if err != nil {
		t.Fatal(err)
	}
	r = e.ssh(t, "client", bad, nil, "sign", "--tar")
	wantMsg := `signstar: refused archive: member "link.pkg.tar.zst": a symbolic link: only regular files are signed; no signature was written` + "\n"
	if r.ExitCode != 2 || len(r.Stdout) != 0 || string(r.Stderr) != wantMsg {
		t.Fatalf("bad member: exit %d, stdout %d bytes, stderr %q", r.ExitCode, len(r.Stdout), r.Stderr)
	}
	recs = e.records(t)[len(names):]
	if len(recs) != 3 {
		t.Fatalf("bad member: %d records, want 3: %+v", len(recs), recs)
	}
	for i, rec := range recs {
		if rec.Outcome != audit.Refused || rec.Signature != "" {
			t.Errorf("bad member: record %d: %+v", i, rec)
		}
	}
	withheld := "withheld: no signature of the archive was written (" + strings.TrimSuffix(strings.TrimPrefix(wantMsg, "signstar: "), "\n") + ")"
	if recs[0].Name != names[0] || recs[1].Name != names[1] || recs[0].Reason != withheld || recs[1].Reason != withheld || recs[0].Digest != sha256Digest(data[0]) {
		t.Errorf("withheld records: %+v", recs[:2])
	}
	if recs[2].Name != "link.pkg.tar.zst" || !strings.Contains(recs[2].Reason, "a symbolic link") {
		t.Errorf("the refused member's record: %+v", recs[2])
	}
	e.verifyLog(t, len(names)+3)
}

// tarNames lists a tar's members.
func tarNames(b []byte) ([]string, error) {
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		names = append(names, h.Name)
	}
}
