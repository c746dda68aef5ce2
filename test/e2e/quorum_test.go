package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/testsupport/pacmantest"
	"github.com/signstar/signstar/internal/testsupport/sshtest"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// quorumPKGBUILD is one package every builder builds; $QUORUM_CONTENT is
// what a compromised builder changes.
const quorumPKGBUILD = `pkgname=quorum-hello
pkgver=1.0
pkgrel=${QUORUM_PKGREL:-1}
pkgdesc='signstar quorum test package'
arch=(any)
license=(MIT)
package() {
	mkdir -p "$pkgdir/usr/share/quorum-hello"
	echo "${QUORUM_CONTENT:-reproducible}" > "$pkgdir/usr/share/quorum-hello/hello.txt"
}
`

// makepkgBuilder builds quorumPKGBUILD with makepkg, as nobody (makepkg
// refuses root), with SOURCE_DATE_EPOCH fixed and the same build
// directory each time, as reproducible builders do.
type makepkgBuilder struct {
	t   *testing.T
	dir string
	n   int
}

func newMakepkgBuilder(t *testing.T) *makepkgBuilder {
	t.Helper()
	for _, tool := range [][2]string{{"makepkg", "makepkg"}, {"setpriv", "util-linux"}, {"chown", "coreutils"}} {
		testenv.NeedTool(t, tool[0], tool[1])
	}
	dir, err := os.MkdirTemp("", "signstar-quorum-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "PKGBUILD"), []byte(quorumPKGBUILD), 0o644); err != nil {
		t.Fatal(err)
	}
	return &makepkgBuilder{t: t, dir: dir}
}

// build runs makepkg with env (QUORUM_*) and returns the package's bytes
// and file name.
func (b *makepkgBuilder) build(env ...string) ([]byte, string) {
	b.t.Helper()
	b.n++
	out := filepath.Join(b.dir, fmt.Sprintf("out-%d", b.n))
	conf := filepath.Join(b.dir, fmt.Sprintf("makepkg-%d.conf", b.n))
	text := fmt.Sprintf("source /etc/makepkg.conf\nPKGEXT='.pkg.tar.zst'\nOPTIONS=(!strip !debug !lto emptydirs purge)\nPKGDEST=%s\nBUILDDIR=%s/build\nSRCDEST=%s\nSRCPKGDEST=%s\n",
		out, b.dir, b.dir, b.dir)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		b.t.Fatal(err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if o, err := exec.Command("chown", "-R", "nobody:nogroup", b.dir).CombinedOutput(); err != nil {
		b.t.Fatalf("chown: %v\n%s", err, o)
	}
	cmd := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
		"makepkg", "--config", conf, "-f", "-C", "--nodeps", "--noconfirm")
	cmd.Dir = b.dir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + b.dir, "LC_ALL=C", "SOURCE_DATE_EPOCH=1700000000"}, env...)
	if o, err := cmd.CombinedOutput(); err != nil {
		b.t.Fatalf("makepkg: %v\n%s", err, o)
	}
	ents, err := os.ReadDir(out)
	if err != nil || len(ents) != 1 {
		b.t.Fatalf("makepkg made %v (%v), want one package", ents, err)
	}
	data, err := os.ReadFile(filepath.Join(out, ents[0].Name()))
	if err != nil {
		b.t.Fatal(err)
	}
	return data, ents[0].Name()
}

// TestQuorumThroughSSH (issue 20.1): three builders, each an SSH key, and
// a publisher, behind the real sshd. Two builders send identical packages
// that makepkg built from the same PKGBUILD with a fixed
// SOURCE_DATE_EPOCH: the first gets a vote (exit 3, empty stdout), the
// second the signature, which pacman accepts with SigLevel = Required
// TrustedOnly. The third builder's different bytes never reach the quorum,
// and the publisher is refused them. Two last votes sent at once give
// exactly one signature record.
func TestQuorumThroughSSH(t *testing.T) {
	pacmantest.NeedTools(t)
	b := newMakepkgBuilder(t)
	good1, pkgFile := b.build()
	good2, _ := b.build()
	if !bytes.Equal(good1, good2) {
		t.Fatalf("makepkg is not reproducible here: two builds of the same PKGBUILD differ (%d and %d bytes)", len(good1), len(good2))
	}
	evil, _ := b.build("QUORUM_CONTENT=compromised")
	if bytes.Equal(evil, good1) {
		t.Fatal("the compromised build is the same bytes")
	}
	race, _ := b.build("QUORUM_PKGREL=2")

	e := newEnclave(t, enclaveOptions{
		deployment: sshtest.ForceCommand,
		keys:       []string{"b1", "b2", "b3", "pub"},
		profiles: `
[[profile]]
name = "packages"
backend = "keyfile"
key = "` + repoFile(t, "testdata/keys/ed25519.key") + `"
kinds = ["pacman-package"]
users = ["signer"]
quorum = 2
voters = ["{KEY:b1}", "{KEY:b2}", "{KEY:b3}"]
quorum_window = "1h"
publishers = ["{KEY:pub}"]
`,
	})
	fixProfileKey(t, e)
	send := func(key string, data []byte, exit int, stderr string) *sshtest.Result {
		t.Helper()
		r := e.ssh(t, key, data, nil, "sign", "--profile", "packages")
		if r.ExitCode != exit || !strings.Contains(string(r.Stderr), stderr) || (exit != 0 && len(r.Stdout) > 0) {
			t.Fatalf("%s: exit %d (want %d), %d bytes on stdout, stderr %q (want %q)", key, r.ExitCode, exit, len(r.Stdout), r.Stderr, stderr)
		}
		return r
	}

	send("b3", evil, 3, "1 of 2 votes within quorum_window 1h")
	send("b1", good1, 3, "vote recorded for sha256:")
	if rec := e.last(t); rec.Outcome != audit.Vote || rec.Voter != e.Key("b1").Fingerprint || rec.Kind != "pacman-package" {
		t.Fatalf("vote record %+v", rec)
	}
	send("b3", evil, 3, "1 of 2 votes within quorum_window 1h (this voter's earlier vote is counted once)")
	send("pub", evil, 2, "quorum not met for sha256:")
	r := send("b2", good2, 0, "")
	if rec := e.last(t); rec.Outcome != audit.Signed || rec.Voter != e.Key("b2").Fingerprint {
		t.Fatalf("signed record %+v", rec)
	}
	pkgSig := r.Stdout
	e.verifySig(t, good1, pkgSig)
	send("pub", evil, 2, "1 of 2 votes")

	// pacman: the repository's database is signed by the publisher through
	// the plain profile, and the package by the quorum.
	dir := t.TempDir()
	db, err := pacmantest.Database(dir, "signstar", pkgFile, good1, pkgSig)
	if err != nil {
		t.Fatal(err)
	}
	dbr := e.ssh(t, "pub", db, nil, "sign", "--profile", "repo")
	if dbr.ExitCode != 0 {
		t.Fatalf("signing the database: %s", dbr.Stderr)
	}
	cert, err := os.ReadFile(e.pub)
	if err != nil {
		t.Fatal(err)
	}
	env := pacmantest.Install(t, pacmantest.Options{
		Certs: [][]byte{cert}, Name: "quorum-hello", PkgFile: pkgFile,
		Pkg: good1, PkgSig: pkgSig, DB: db, DBSig: dbr.Stdout,
	})
	t.Logf("pacman: %s", strings.Join(env.Info, "; "))

	// Two last votes at once: one signature, one vote.
	{
		before := len(e.records(t))
		var wg sync.WaitGroup
		results := make([]*sshtest.Result, 2)
		errs := make([]error, 2)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for j, key := range []string{"b1", "b3"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[j], errs[j] = e.Run(ctx, bytes.NewReader(race), key, nil, "sign", "--profile", "packages")
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		exits := map[int]int{}
		for _, r := range results {
			exits[r.ExitCode]++
		}
		var signed []audit.Record
		for _, rec := range e.records(t)[before:] {
			if rec.Outcome == audit.Signed {
				signed = append(signed, rec)
			}
		}
		if exits[0] != 1 || exits[3] != 1 || len(signed) != 1 {
			t.Fatalf("exit codes %v and %d signed records, want one signature (exit 0) and one vote (exit 3); stderr %q, %q",
				exits, len(signed), results[0].Stderr, results[1].Stderr)
		}
	}
	e.verifyLog(t, 9)
}
