package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var hookSymbols = []string{"main.sandboxSimulate", "main.idleTimeoutForTests", "main.signalGraceForTests", "main.crashForTests", "main.refusalLimitsForTests"}

// The binary `make build` makes has no test hooks: none of their symbols
// (so -ldflags -X has nothing to set) and no testhooks build tag; a binary
// built with the tag, as the e2e tests build theirs, has all of them.
func TestReleaseHasNoHooks(t *testing.T) {
	dir := t.TempDir()
	for _, tagged := range []bool{false, true} {
		bin := filepath.Join(dir, "signstar")
		args := []string{"build", "-trimpath", "-o", bin}
		if tagged {
			args = append(args, "-tags", "testhooks")
		}
		build := exec.Command("go", append(args, ".")...)
		build.Env = append(os.Environ(), "CGO_ENABLED=0") // as make build does
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		nm, err := exec.Command("go", "tool", "nm", bin).Output()
		if err != nil {
			t.Fatalf("go tool nm: %v", err)
		}
		for _, sym := range hookSymbols {
			if got := strings.Contains(string(nm), " "+sym+"\n"); got != tagged {
				t.Errorf("tagged %v: symbol %s present %v", tagged, sym, got)
			}
		}
		info, err := exec.Command("go", "version", "-m", bin).Output()
		if err != nil {
			t.Fatalf("go version -m: %v", err)
		}
		if got := strings.Contains(string(info), "-tags=testhooks"); got != tagged {
			t.Errorf("tagged %v: build info says testhooks %v:\n%s", tagged, got, info)
		}
		if !strings.Contains(string(info), "CGO_ENABLED=0") {
			t.Errorf("not pure Go:\n%s", info)
		}
	}
}

// Test support (internal/testsupport: emulators, throwaway sshd) is never
// linked into signstar.
func TestNoTestSupportInBinary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "/internal/testsupport/") {
			t.Errorf("signstar links %s", pkg)
		}
	}
}
