package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// matrixFormats are makepkg's PKGEXTs, each with its compressor at the
// extreme level (from stdin, as makepkg runs it, so the header declares
// the level's whole window), and the database repo-add makes in the same
// compression (repo-add runs each compressor at its default level).
var matrixFormats = []struct {
	name, ext, conf string // conf: the COMPRESS* line for makepkg.conf
	tool, debian    string
}{
	{"none", ".tar", "", "bsdtar", "libarchive-tools"},
	{"gz", ".tar.gz", "COMPRESSGZ=(gzip -c -f -n -9)", "gzip", "gzip"},
	{"bz2", ".tar.bz2", "COMPRESSBZ2=(bzip2 -c -f -9)", "bzip2", "bzip2"},
	{"xz", ".tar.xz", "COMPRESSXZ=(xz -c -z -9e -)", "xz", "xz-utils"},
	{"zst", ".tar.zst", "COMPRESSZST=(zstd -c -z -q --ultra -22 -)", "zstd", "zstd"},
	{"zstlong", ".tar.zst", "COMPRESSZST=(zstd -c -z -q --long=27 -)", "zstd", "zstd"},
	{"lzo", ".tar.lzo", "COMPRESSLZO=(lzop -q -9)", "lzop", "lzop"},
	{"z", ".tar.Z", "COMPRESSZ=(compress -c -f -b 16)", "compress", "ncompress"},
	{"lz4", ".tar.lz4", "COMPRESSLZ4=(lz4 -q -12)", "lz4", "lz4"},
	{"lz", ".tar.lz", "COMPRESSLZ=(lzip -c -f -9)", "lzip", "lzip"},
	{"lrz", ".tar.lrz", "COMPRESSLRZ=(lrzip -q -L 9)", "lrzip", "lrzip"},
}

// TestKindsMatrix (issue 13.4): makepkg, as an unprivileged user, builds a
// package with every PKGEXT at its compressor's extreme level, and repo-add
// a database in each compression. The real binary, with a profile of
// kinds = ["pacman-package", "pacman-db"], signs every one (the audit
// record names the kind) but lrzip's, which it refuses by name; pacman
// then syncs every database and installs every package in one root, with
// SigLevel = Required TrustedOnly. The peak RSS of each signing process is
// measured with /usr/bin/time and must stay at most 32 MiB.
func TestKindsMatrix(t *testing.T) {
	testenv.NeedRoot(t)
	for _, tool := range [][2]string{{"makepkg", "makepkg"}, {"repo-add", "pacman-package-manager"}, {"pacman", "pacman-package-manager"},
		{"pacman-key", "pacman-package-manager"}, {"setpriv", "util-linux"}, {"/usr/bin/time", "time"}, {"gpgconf", "gpgconf"}} {
		testenv.NeedTool(t, tool[0], tool[1])
	}
	for _, f := range matrixFormats {
		testenv.NeedTool(t, f.tool, f.debian)
	}
	dir := t.TempDir()
	bin := buildSignstar(t, dir, "")
	cfg, logPath := matrixConfig(t, dir)

	// makepkg refuses to run as root: build as nobody, in a directory of
	// its own.
	build, err := os.MkdirTemp("", "signstar-makepkg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(build) })
	// Small packages: Debian's libarchive reads lzop through the lzop
	// program, and repo-add's bsdtar -tq stops reading at .PKGINFO, which
	// fails a lzop still writing more than a pipe holds.
	pkgbuild := `pkgname=kinds-$KINDS
pkgver=1.0
pkgrel=1
pkgdesc='signstar kinds matrix'
arch=(any)
license=(MIT)
package() {
	mkdir -p "$pkgdir/usr/share/kinds"
	echo "built with $KINDS" > "$pkgdir/usr/share/kinds/$KINDS.txt"
	seq 1 3000 > "$pkgdir/usr/share/kinds/$KINDS.seq"
}
`
	if err := os.WriteFile(filepath.Join(build, "PKGBUILD"), []byte(pkgbuild), 0o644); err != nil {
		t.Fatal(err)
	}
	repos := filepath.Join(dir, "repos")
	var built []string // the formats pacman installs
	rss := map[string]int64{}
	for _, f := range matrixFormats {
		conf := filepath.Join(build, "makepkg-"+f.name+".conf")
		text := fmt.Sprintf("source /etc/makepkg.conf\nPKGEXT='.pkg%s'\n%s\nOPTIONS=(!strip !debug !lto emptydirs purge)\nPKGDEST=%s/out-%s\nBUILDDIR=%s/build-%s\nSRCDEST=%s\nSRCPKGDEST=%s\n",
			f.ext, f.conf, build, f.name, build, f.name, build, build)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(build, "out-"+f.name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", "nobody:nogroup", build).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	for _, f := range matrixFormats {
		cmd := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
			"makepkg", "--config", filepath.Join(build, "makepkg-"+f.name+".conf"), "-f", "--nodeps", "--noconfirm")
		cmd.Dir = build
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + build, "LC_ALL=C", "KINDS=" + f.name, "SOURCE_DATE_EPOCH=1700000000"}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("makepkg %s: %v\n%s", f.name, err, out)
		}
		pkgFile := "kinds-" + f.name + "-1.0-1-any.pkg" + f.ext
		pkg, err := os.ReadFile(filepath.Join(build, "out-"+f.name, pkgFile))
		if err != nil {
			t.Fatal(err)
		}
		repo := filepath.Join(repos, f.name)
		if err := os.MkdirAll(repo, 0o755); err != nil {
			t.Fatal(err)
		}
		pkgPath := filepath.Join(repo, pkgFile)
		if err := os.WriteFile(pkgPath, pkg, 0o644); err != nil {
			t.Fatal(err)
		}
		sig, kb, stderr, err := signMeasured(t, bin, cfg, pkgPath)
		if f.name == "lrz" {
			if err == nil || !strings.Contains(stderr, "lrzip-compressed (.lrz)") || !strings.Contains(stderr, "PKGEXT=") {
				t.Errorf("lrzip package: %v, stderr %q; want a refusal naming lrzip", err, stderr)
			}
			if rec := lastAuditRecord(t, logPath); rec.Outcome != "refused" || rec.Kind != "" {
				t.Errorf("lrzip package: record %s kind %q", rec.Outcome, rec.Kind)
			}
		} else {
			if err != nil {
				t.Fatalf("signing %s: %v\n%s", pkgFile, err, stderr)
			}
			if rec := lastAuditRecord(t, logPath); rec.Kind != "pacman-package" {
				t.Errorf("%s: kind %q", pkgFile, rec.Kind)
			}
			rss[pkgFile] = kb
			if err := os.WriteFile(pkgPath+".sig", sig, 0o644); err != nil {
				t.Fatal(err)
			}
		}

		// The database, in the same compression (its format tells repo-add
		// which; zstlong shares zst's).
		dbFile := "kinds-" + f.name + ".db" + f.ext
		cmd = exec.Command("repo-add", "-q", dbFile, pkgFile)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("repo-add %s: %v\n%s", dbFile, err, out)
		}
		dbPath := filepath.Join(repo, dbFile)
		sig, kb, stderr, err = signMeasured(t, bin, cfg, dbPath)
		if f.name == "lrz" {
			if err == nil || !strings.Contains(stderr, "lrzip-compressed (.lrz)") {
				t.Errorf("lrzip database: %v, stderr %q; want a refusal naming lrzip", err, stderr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("signing %s: %v\n%s", dbFile, err, stderr)
		}
		if rec := lastAuditRecord(t, logPath); rec.Kind != "pacman-db" {
			t.Errorf("%s: kind %q", dbFile, rec.Kind)
		}
		rss[dbFile] = kb
		db, err := os.ReadFile(dbPath)
		if err != nil {
			t.Fatal(err)
		}
		// pacman fetches REPO.db and REPO.db.sig.
		for name, data := range map[string][]byte{"kinds-" + f.name + ".db": db, "kinds-" + f.name + ".db.sig": sig} {
			if err := os.WriteFile(filepath.Join(repo, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		built = append(built, f.name)
	}
	for name, kb := range rss {
		t.Logf("peak RSS signing %s: %.1f MiB", name, float64(kb)/1024)
		if kb > 32<<10 {
			t.Errorf("signing %s: peak RSS %.1f MiB, over 32 MiB", name, float64(kb)/1024)
		}
	}
	matrixInstall(t, dir, repos, built)
}

// signMeasured signs path with the real binary under /usr/bin/time, which
// forks (Go's vfork would floor the child's max RSS at the test's) and
// reports the peak RSS in KiB.
func signMeasured(t *testing.T, bin, cfg, path string) (sig []byte, kb int64, stderr string, err error) {
	t.Helper()
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	rssFile := filepath.Join(t.TempDir(), "rss")
	cmd := exec.Command("/usr/bin/time", "-f", "%M", "-o", rssFile, bin, "--config", cfg, "sign")
	cmd.Stdin = in
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if b, rerr := os.ReadFile(rssFile); rerr == nil {
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		kb, _ = strconv.ParseInt(lines[len(lines)-1], 10, 64)
	}
	return out.Bytes(), kb, errb.String(), err
}

// matrixConfig is a key file profile for packages and databases.
func matrixConfig(t *testing.T, dir string) (cfg, logPath string) {
	t.Helper()
	key, err := os.ReadFile(filepath.Join(keysDir, "ed25519.key"))
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "ed25519.key")
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		t.Fatal(err)
	}
	logPath = filepath.Join(dir, "audit.jsonl")
	cfg = filepath.Join(dir, "config.toml")
	text := fmt.Sprintf("[audit]\npath = %q\n\n[sandbox]\nmode = %q\n\n[[profile]]\nname = \"repo\"\nbackend = \"keyfile\"\nkey = %q\nkinds = [\"pacman-package\", \"pacman-db\"]\nusers = [%q]\n",
		logPath, strictestMode(), keyPath, testUser())
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg, logPath
}

// matrixInstall syncs every repository and installs every package in one
// pacman root that trusts only the test key.
func matrixInstall(t *testing.T, dir, repos string, names []string) {
	t.Helper()
	pub, err := os.ReadFile(filepath.Join(keysDir, "ed25519.pub"))
	if err != nil {
		t.Fatal(err)
	}
	ent, err := backend.ParseEntity(pub)
	if err != nil {
		t.Fatal(err)
	}
	fpr := backend.Fingerprint(ent.PrimaryKey)
	pm := filepath.Join(dir, "pacman")
	root, gpgDir := filepath.Join(pm, "root"), filepath.Join(pm, "gnupg")
	for _, d := range []string{filepath.Join(root, "var/lib/pacman"), filepath.Join(pm, "db"), filepath.Join(pm, "cache"), filepath.Join(pm, "hooks")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "[options]\nRootDir = %s\nDBPath = %s/db\nCacheDir = %s/cache\nLogFile = %s/pacman.log\nGPGDir = %s\nHookDir = %s/hooks\nArchitecture = auto\nSigLevel = Required TrustedOnly\nLocalFileSigLevel = Required TrustedOnly\n",
		root, pm, pm, pm, gpgDir, pm)
	var pkgs []string
	for _, n := range names {
		fmt.Fprintf(&conf, "\n[kinds-%s]\nServer = file://%s/%s\n", n, repos, n)
		pkgs = append(pkgs, "kinds-"+n)
	}
	confPath := filepath.Join(pm, "pacman.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(pm, "pub.asc")
	if err := os.WriteFile(keyPath, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", gpgDir, "--kill", "all").Run() })
	pk := func(args ...string) {
		run("pacman-key", append([]string{"--config", confPath, "--gpgdir", gpgDir}, args...)...)
	}
	pk("--init")
	if err := os.WriteFile(filepath.Join(gpgDir, "dirmngr.conf"), []byte("keyserver hkp://127.0.0.1:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pk("--add", keyPath)
	pk("--lsign-key", fpr)
	run("pacman", append([]string{"--config", confPath, "--noconfirm", "--noprogressbar", "-Sy"}, pkgs...)...)
	for _, p := range pkgs {
		info := run("pacman", "--config", confPath, "-Qi", p)
		if !strings.Contains(info, "Validated By    : Signature") {
			t.Errorf("%s not validated by signature:\n%s", p, info)
		}
		n := strings.TrimPrefix(p, "kinds-")
		if _, err := os.Stat(filepath.Join(root, "usr/share/kinds", n+".txt")); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
