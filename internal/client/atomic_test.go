package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStagedAllOrNothing: a rename that fails takes back the ones done,
// and leaves no temporary file.
func TestStagedAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "c.sig"), 0o755); err != nil {
		t.Fatal(err)
	}
	// c.sig is a directory holding a file: renaming a file onto it fails.
	os.WriteFile(filepath.Join(dir, "c.sig", "x"), nil, 0o644)
	var s Staged
	for _, n := range []string{"a.sig", "b.sig", "c.sig"} {
		if err := s.Add(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(); err == nil {
		t.Fatal("Commit onto a directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "c.sig" {
			t.Errorf("%s left behind", e.Name())
		}
	}

	var ok Staged
	for _, n := range []string{"a.sig", "b.sig"} {
		if err := ok.Add(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := ok.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a.sig", "b.sig"} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil || string(b) != n {
			t.Errorf("%s: %q, %v", n, b, err)
		}
		if fi, _ := os.Stat(filepath.Join(dir, n)); fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v", n, fi.Mode())
		}
	}
	ents, _ = os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("%s left behind", e.Name())
		}
	}

	var ab Staged
	ab.Add(filepath.Join(dir, "d.sig"), []byte("d"), 0o644)
	ab.Abort()
	if _, err := os.Stat(filepath.Join(dir, "d.sig")); err == nil {
		t.Error("Abort left d.sig")
	}
}
