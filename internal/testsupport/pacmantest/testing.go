package pacmantest

import (
	"os"
	"testing"

	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// Hello is the package the tests sign: one text file.
var Hello = Package{
	Name:    "hello",
	Version: "1.0-1",
	Files:   map[string]string{"usr/share/hello/hello.txt": "hello from a signed package\n"},
}

// NeedTools skips the test (fails it in CI) unless every program in Tools
// is installed.
func NeedTools(t testing.TB) {
	t.Helper()
	for _, tool := range Tools {
		testenv.NeedTool(t, tool[0], tool[1])
	}
}

// Prepare builds p, signs it with sign, runs repo-add and signs the
// database, and returns Options for Install with everything but Certs
// filled in. sign gets the exact bytes pacman will check and returns a
// detached binary signature.
func Prepare(t testing.TB, p Package, sign func([]byte) ([]byte, error)) Options {
	t.Helper()
	NeedTools(t)
	dir := t.TempDir()
	pkg, err := Build(dir, p)
	if err != nil {
		t.Fatal(err)
	}
	pkgSig, err := sign(pkg)
	if err != nil {
		t.Fatalf("signing the package: %v", err)
	}
	const repo = "signstar"
	db, err := Database(dir, repo, p.FileName(), pkg, pkgSig)
	if err != nil {
		t.Fatal(err)
	}
	dbSig, err := sign(db)
	if err != nil {
		t.Fatalf("signing the database: %v", err)
	}
	return Options{Repo: repo, Name: p.Name, PkgFile: p.FileName(), Pkg: pkg, PkgSig: pkgSig, DB: db, DBSig: dbSig}
}

// Install runs Run in a fresh directory (removed when the test ends, after
// the keyring's gpg-agent is stopped) and fails the test unless pacman
// installs the package validated by its signature. It needs root.
func Install(t testing.TB, o Options) *Env {
	t.Helper()
	NeedTools(t)
	testenv.NeedRoot(t)
	// Not t.TempDir: GnuPG puts its sockets in the keyring directory and a
	// unix socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "pacmantest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	env, err := Run(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	return env
}

// RefuseTampered fails the test unless pacman refuses both a database and
// a package changed after signing, for their signatures.
func (e *Env) RefuseTampered(t testing.TB) {
	t.Helper()
	if line, err := e.RefuseTamperedDB(); err != nil {
		t.Error(err)
	} else {
		t.Logf("changed database: %s", line)
	}
	if line, err := e.RefuseTamperedPackage(); err != nil {
		t.Error(err)
	} else {
		t.Logf("changed package: %s", line)
	}
}
