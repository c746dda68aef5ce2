// Package pacmantest hands signatures to a real pacman, the way an Arch
// mirror would: a package and its repository database on file://, a
// keyring that trusts only the given certificates, SigLevel = Required
// TrustedOnly, then sync and install into a throwaway root.
//
// Run and the builders below need no testing.TB, so `make demo` uses them
// too; Install (testing.go) wraps Run for tests and skips or fails through
// internal/testsupport/testenv when a tool is missing.
package pacmantest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/signstar/signstar/internal/backend"
)

// Tools are the programs this package runs and the Debian package of each.
var Tools = [][2]string{
	{"pacman", "pacman-package-manager"},
	{"pacman-key", "pacman-package-manager"},
	{"repo-add", "pacman-package-manager"},
	{"bsdtar", "libarchive-tools"},
	{"zstd", "zstd"},
	{"gpgconf", "gpgconf"},
}

// timeout bounds every program we start, so a hung pacman fails the run
// instead of hanging it.
const timeout = 2 * time.Minute

// Package is a tiny pacman package: a .PKGINFO and a few files.
type Package struct {
	Name    string            // pkgname, e.g. "hello"
	Version string            // pkgver-pkgrel, e.g. "1.0-1"
	Files   map[string]string // path below the root (no leading slash) to content
}

// FileName is the package file name pacman and repo-add expect.
func (p Package) FileName() string { return p.Name + "-" + p.Version + "-any.pkg.tar.zst" }

// Build writes the package into dir as makepkg lays it out (.PKGINFO
// first, then the files, zstd-compressed by bsdtar) and returns its bytes.
func Build(dir string, p Package) ([]byte, error) {
	if p.Name == "" || p.Version == "" || len(p.Files) == 0 {
		return nil, errors.New("pacmantest: a package needs a name, a version and at least one file")
	}
	stage, err := os.MkdirTemp(dir, ".stage-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	size := 0
	tops := map[string]bool{}
	for name, content := range p.Files {
		clean := filepath.Clean(name)
		if filepath.IsAbs(clean) || clean == "." || strings.HasPrefix(clean, "..") || strings.HasPrefix(clean, ".") {
			return nil, fmt.Errorf("pacmantest: file %q: give a relative path below the root", name)
		}
		path := filepath.Join(stage, clean)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return nil, err
		}
		size += len(content)
		tops[strings.SplitN(clean, string(filepath.Separator), 2)[0]] = true
	}
	info := fmt.Sprintf("pkgname = %s\npkgbase = %s\npkgver = %s\npkgdesc = signstar pacman test package\nurl = https://example.org/\nbuilddate = 1763600000\npackager = Signstar Test <test@example.org>\nsize = %d\narch = any\nlicense = MIT\n",
		p.Name, p.Name, p.Version, size)
	if err := os.WriteFile(filepath.Join(stage, ".PKGINFO"), []byte(info), 0o644); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, p.FileName())
	args := []string{"--zstd", "-cf", out, "-C", stage, ".PKGINFO"}
	args = append(args, sortedKeys(tops)...)
	if _, err := run(nil, "bsdtar", args...); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

// Database writes the package and its detached signature into dir, runs
// repo-add (which embeds the signature in the database, as on a real
// mirror) and returns the bytes of dir/REPO.db.tar.gz.
func Database(dir, repo, pkgFile string, pkg, pkgSig []byte) ([]byte, error) {
	pkgPath := filepath.Join(dir, pkgFile)
	if err := os.WriteFile(pkgPath, pkg, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(pkgPath+".sig", pkgSig, 0o644); err != nil {
		return nil, err
	}
	db := filepath.Join(dir, repo+".db.tar.gz")
	if _, err := run(nil, "repo-add", "-q", db, pkgPath); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(db)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(dbEntries(db), []byte("%PGPSIG%")) {
		return nil, fmt.Errorf("pacmantest: repo-add did not embed the signature of %s in %s", pkgFile, filepath.Base(db))
	}
	return data, nil
}

// Repo builds pkgs into dir and runs repo-add once over all of them, as a
// repository is made before anything is signed: it returns the file names
// and bytes of the packages, REPO.db and REPO.files (repo-add's
// REPO.db.tar.gz and REPO.files.tar.gz), in that order.
func Repo(dir, repo string, pkgs []Package) (names []string, data [][]byte, err error) {
	var paths []string
	for _, p := range pkgs {
		b, err := Build(dir, p)
		if err != nil {
			return nil, nil, err
		}
		names, data = append(names, p.FileName()), append(data, b)
		paths = append(paths, filepath.Join(dir, p.FileName()))
	}
	db := filepath.Join(dir, repo+".db.tar.gz")
	if _, err := run(nil, "repo-add", append([]string{"-q", db}, paths...)...); err != nil {
		return nil, nil, err
	}
	for _, f := range []string{".db", ".files"} {
		b, err := os.ReadFile(filepath.Join(dir, repo+f+".tar.gz"))
		if err != nil {
			return nil, nil, err
		}
		names, data = append(names, repo+f), append(data, b)
	}
	return names, data, nil
}

// dbEntries returns the concatenated desc files of a database, or nil.
func dbEntries(db string) []byte {
	out, err := run(nil, "bsdtar", "-xOf", db)
	if err != nil {
		return nil
	}
	return out
}

// Options say what pacman trusts and what the repository serves.
type Options struct {
	// Certs are ASCII-armored certificates; each primary key is added to
	// pacman's keyring and locally signed, and nothing else is trusted.
	Certs [][]byte
	// Repo names the repository: the database is served as REPO.db.
	// "signstar" when empty.
	Repo string
	// Name is the pkgname to install; PkgFile the package's file name.
	Name    string
	PkgFile string
	// The package, the database and their detached binary signatures.
	Pkg, PkgSig, DB, DBSig []byte
	// Extra are more files the repository serves (more packages and their
	// signatures, REPO.files and its signature), and Names more pkgnames
	// to install with Name, in the same pacman -Sy. When Extra holds
	// REPO.files, pacman -Fy syncs it too, which checks its signature.
	Extra map[string][]byte
	Names []string
	// Progress, when set, is told each stage in one sentence (the demo
	// prints them); Output, when set, also gets what pacman -Sy prints.
	Progress func(string)
	Output   io.Writer
}

// Env is a pacman set up by Run: its configuration, keyring and root.
type Env struct {
	Dir    string // everything lives below it
	Conf   string // pacman.conf
	GPGDir string
	Root   string
	opts   Options
	repo   string
	// Info holds the Name, Version and Validated By lines of pacman -Qi.
	Info []string
}

// Run lays out a file:// repository, a pacman.conf and a keyring below dir
// (which must exist), trusts o.Certs, runs pacman -Sy NAME with SigLevel =
// Required TrustedOnly and checks that pacman installed the package and
// validated it by signature. Call Close when done: pacman-key leaves a
// gpg-agent running in the keyring. On error Run stops it itself.
func Run(dir string, o Options) (*Env, error) {
	e, err := setup(dir, o)
	if err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func setup(dir string, o Options) (*Env, error) {
	if len(o.Certs) == 0 || o.Name == "" || o.PkgFile == "" || o.Pkg == nil || o.PkgSig == nil || o.DB == nil || o.DBSig == nil {
		return nil, errors.New("pacmantest: Options need Certs, Name, PkgFile, Pkg, PkgSig, DB and DBSig")
	}
	if o.Repo == "" {
		o.Repo = "signstar"
	}
	e := &Env{
		Dir:    dir,
		Conf:   filepath.Join(dir, "pacman.conf"),
		GPGDir: filepath.Join(dir, "gnupg"),
		Root:   filepath.Join(dir, "root"),
		opts:   o,
		repo:   filepath.Join(dir, "repo"),
	}
	for _, d := range []string{e.repo, filepath.Join(e.Root, "var/lib/pacman"), filepath.Join(dir, "db"), filepath.Join(dir, "cache"), filepath.Join(dir, "hooks")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return e, err
		}
	}
	files := map[string][]byte{
		o.PkgFile:                 o.Pkg,
		o.PkgFile + ".sig":        o.PkgSig,
		o.Repo + ".db":            o.DB,
		o.Repo + ".db.tar.gz":     o.DB,
		o.Repo + ".db.sig":        o.DBSig,
		o.Repo + ".db.tar.gz.sig": o.DBSig,
	}
	for name, data := range o.Extra {
		files[name] = data
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(e.repo, name), data, 0o644); err != nil {
			return e, err
		}
	}
	conf := fmt.Sprintf("[options]\nRootDir = %s\nDBPath = %s\nCacheDir = %s\nLogFile = %s\nGPGDir = %s\nHookDir = %s\nArchitecture = auto\nSigLevel = Required TrustedOnly\nLocalFileSigLevel = Required TrustedOnly\n\n[%s]\nServer = file://%s\n",
		e.Root, filepath.Join(dir, "db"), filepath.Join(dir, "cache"), filepath.Join(dir, "pacman.log"), e.GPGDir, filepath.Join(dir, "hooks"), o.Repo, e.repo)
	if err := os.WriteFile(e.Conf, []byte(conf), 0o644); err != nil {
		return e, err
	}

	if err := e.trust(o.Certs); err != nil {
		return e, err
	}

	names := append([]string{o.Name}, o.Names...)
	e.progress("pacman -Sy %s (database and package signatures checked)", strings.Join(names, " "))
	if _, err := e.pacman(o.Output, append([]string{"--noconfirm", "--noprogressbar", "-Sy"}, names...)...); err != nil {
		return e, err
	}
	if _, ok := o.Extra[o.Repo+".files"]; ok {
		e.progress("pacman -Fy (the files database's signature checked)")
		if _, err := e.pacman(o.Output, "--noconfirm", "--noprogressbar", "-Fy"); err != nil {
			return e, err
		}
	}
	for _, name := range names {
		// -Qk fails when a file of the package is missing from the root.
		if _, err := e.pacman(nil, "-Qk", name); err != nil {
			return e, err
		}
		out, err := e.pacman(nil, "-Qi", name)
		if err != nil {
			return e, err
		}
		by, ok := ValidatedBy(out)
		if !ok || !containsWord(by, "Signature") {
			return e, fmt.Errorf("pacman installed %s but did not validate it by signature (Validated By: %q):\n%s", name, by, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "Name ") || strings.HasPrefix(l, "Version ") || strings.HasPrefix(l, "Validated By ") {
				e.Info = append(e.Info, strings.TrimSpace(l))
			}
		}
	}
	return e, nil
}

// trust makes pacman's keyring: initialised, then certs added and locally
// signed, nothing else.
func (e *Env) trust(certs [][]byte) error {
	var fprs []string
	for i, c := range certs {
		cert, err := backend.ParseEntity(c)
		if err != nil {
			return fmt.Errorf("pacmantest: certificate %d: %v", i+1, err)
		}
		fprs = append(fprs, backend.Fingerprint(cert.PrimaryKey))
	}
	e.progress("pacman: a keyring that trusts only %s, SigLevel = Required TrustedOnly", strings.Join(fprs, ", "))
	if _, err := e.pacmanKey("--init"); err != nil {
		return err
	}
	// pacman offers to fetch an unknown key: point that at a closed port on
	// loopback, so the run stays off the network and trusts nothing else.
	if err := os.WriteFile(filepath.Join(e.GPGDir, "dirmngr.conf"), []byte("keyserver hkp://127.0.0.1:1\n"), 0o644); err != nil {
		return err
	}
	for i, c := range certs {
		p := filepath.Join(e.Dir, fmt.Sprintf("cert%d.asc", i+1))
		if err := os.WriteFile(p, c, 0o644); err != nil {
			return err
		}
		if _, err := e.pacmanKey("--add", p); err != nil {
			return err
		}
		if _, err := e.pacmanKey("--lsign-key", fprs[i]); err != nil {
			return err
		}
	}
	return nil
}

// Keyring sets up a pacman below dir (which must exist) with no
// repository: a root, SigLevel = Required TrustedOnly for local files too,
// and a keyring that trusts only certs. InstallFile then offers it
// packages. Call Close when done.
func Keyring(dir string, certs [][]byte) (*Env, error) {
	e := &Env{
		Dir:    dir,
		Conf:   filepath.Join(dir, "pacman.conf"),
		GPGDir: filepath.Join(dir, "gnupg"),
		Root:   filepath.Join(dir, "root"),
	}
	for _, d := range []string{filepath.Join(e.Root, "var/lib/pacman"), filepath.Join(dir, "db"), filepath.Join(dir, "cache"), filepath.Join(dir, "hooks")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	conf := fmt.Sprintf("[options]\nRootDir = %s\nDBPath = %s\nCacheDir = %s\nLogFile = %s\nGPGDir = %s\nHookDir = %s\nArchitecture = auto\nSigLevel = Required TrustedOnly\nLocalFileSigLevel = Required TrustedOnly\n",
		e.Root, filepath.Join(dir, "db"), filepath.Join(dir, "cache"), filepath.Join(dir, "pacman.log"), e.GPGDir, filepath.Join(dir, "hooks"))
	if err := os.WriteFile(e.Conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := e.trust(certs); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// ErrKeyMissing is InstallFile's refusal of a signature by a key the
// keyring lacks.
var ErrKeyMissing = errors.New("pacman: required key missing from keyring")

// InstallFile offers pacman -U the package file name (pkg) with sig beside
// it as name.sig, and reports whether pacman installed it: nil; the
// refusal for a key missing from the keyring, ErrKeyMissing; or any other
// failure with pacman's output.
func (e *Env) InstallFile(name string, pkg, sig []byte) error {
	dir, err := os.MkdirTemp(e.Dir, "offer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pkg, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(p+".sig", sig, 0o644); err != nil {
		return err
	}
	out, err := e.pacman(nil, "--noconfirm", "--noprogressbar", "-U", p)
	if err != nil {
		if bytes.Contains(out, []byte("error: required key missing from keyring")) {
			return ErrKeyMissing
		}
		return err
	}
	return nil
}

// refusedDB and refusedPkg are how pacman words a signature that does not
// fit the bytes; any other failure is not the refusal we are testing.
var (
	refusedDB  = regexp.MustCompile(`invalid or corrupted database \(PGP signature\)`)
	refusedPkg = regexp.MustCompile(`invalid or corrupted package \(PGP signature\)|signature from .* is invalid`)
)

// RefuseTamperedDB changes one byte of the served database, checks that
// pacman -Syy refuses it for its signature, and puts the good database
// back (checking that pacman then accepts it again). It returns pacman's
// error line.
func (e *Env) RefuseTamperedDB() (string, error) {
	good := e.opts.DB
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 0x01
	e.progress("pacman refuses the database once a byte changes")
	if err := e.serveDB(bad); err != nil {
		return "", err
	}
	out, err := e.pacman(nil, "--noconfirm", "--noprogressbar", "-Syy")
	if err == nil {
		return "", fmt.Errorf("pacman accepted a database changed after signing:\n%s", out)
	}
	line := refusedDB.FindString(string(out))
	if line == "" {
		return "", fmt.Errorf("pacman failed on the changed database, but not for its signature: %v\n%s", err, out)
	}
	if err := e.serveDB(good); err != nil {
		return "", err
	}
	if out, err := e.pacman(nil, "--noconfirm", "--noprogressbar", "-Syy"); err != nil {
		return "", fmt.Errorf("pacman refuses the restored database: %v\n%s", err, out)
	}
	return errorLine(out, line), nil
}

// RefuseTamperedPackage offers pacman -U a copy of the package with one
// byte changed next to the original signature, checks that pacman refuses
// it for its signature and that the installed files stay as they were.
func (e *Env) RefuseTamperedPackage() (string, error) {
	e.progress("pacman -U refuses the package once a byte changes")
	dir, err := os.MkdirTemp(e.Dir, "tampered-")
	if err != nil {
		return "", err
	}
	bad := bytes.Clone(e.opts.Pkg)
	bad[len(bad)/2] ^= 0x01
	p := filepath.Join(dir, e.opts.PkgFile)
	if err := os.WriteFile(p, bad, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(p+".sig", e.opts.PkgSig, 0o644); err != nil {
		return "", err
	}
	before, err := snapshot(e.Root)
	if err != nil {
		return "", err
	}
	out, err := e.pacman(nil, "--noconfirm", "--noprogressbar", "-U", p)
	if err == nil {
		return "", fmt.Errorf("pacman installed a package changed after signing:\n%s", out)
	}
	line := refusedPkg.FindString(string(out))
	if line == "" {
		return "", fmt.Errorf("pacman failed on the changed package, but not for its signature: %v\n%s", err, out)
	}
	after, err := snapshot(e.Root)
	if err != nil {
		return "", err
	}
	if before != after {
		return "", fmt.Errorf("pacman refused the changed package but the root changed anyway:\n%s\n---\n%s", before, after)
	}
	// Name the file below Dir: the full temporary path is noise.
	return strings.ReplaceAll(errorLine(out, line), e.Dir+string(filepath.Separator), ""), nil
}

// Close stops the GnuPG daemons pacman-key started in the keyring. It does
// not remove Dir, which belongs to the caller.
func (e *Env) Close() error {
	if e == nil {
		return nil
	}
	if _, err := os.Stat(e.GPGDir); err != nil {
		return nil
	}
	_, err := run(nil, "gpgconf", "--homedir", e.GPGDir, "--kill", "all")
	return err
}

func (e *Env) serveDB(data []byte) error {
	for _, name := range []string{e.opts.Repo + ".db", e.opts.Repo + ".db.tar.gz"} {
		if err := os.WriteFile(filepath.Join(e.repo, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (e *Env) progress(format string, a ...any) {
	if e.opts.Progress != nil {
		e.opts.Progress(fmt.Sprintf(format, a...))
	}
}

func (e *Env) pacmanKey(args ...string) ([]byte, error) {
	return run(nil, "pacman-key", append([]string{"--config", e.Conf, "--gpgdir", e.GPGDir}, args...)...)
}

func (e *Env) pacman(tee io.Writer, args ...string) ([]byte, error) {
	return run(tee, "pacman", append([]string{"--config", e.Conf}, args...)...)
}

// run runs a program with a time limit and returns its combined output;
// on failure the error holds the command line and the output.
func run(tee io.Writer, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out bytes.Buffer
	var w io.Writer = &out
	if tee != nil {
		w = io.MultiWriter(&out, tee)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.Bytes())
	}
	return out.Bytes(), nil
}

// ValidatedBy returns the value of the "Validated By" field in the output
// of pacman -Qi, and whether there was exactly one.
func ValidatedBy(qi []byte) (string, bool) {
	var value string
	n := 0
	for _, line := range strings.Split(string(qi), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "Validated By" {
			continue
		}
		value = strings.TrimSpace(v)
		n++
	}
	return value, n == 1
}

// containsWord reports whether the space-separated list s holds w.
func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// errorLine picks the whole output line that holds match.
func errorLine(out []byte, match string) string {
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, match) {
			return strings.TrimSpace(l)
		}
	}
	return match
}

// snapshot lists every file below root with its content's hash.
func snapshot(root string) (string, error) {
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if !d.Type().IsRegular() {
			fmt.Fprintf(&b, "%s %v\n", rel, d.Type())
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %x\n", rel, sha256.Sum256(data))
		return nil
	})
	return b.String(), err
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
