package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestConfigBomb: the real binary given 900 KB of nested "[" (under the
// 1 MiB size limit) refuses it before the TOML parser runs, naming the
// line, and stays small: the parser alone took 947 MiB for this file.
func TestConfigBomb(t *testing.T) {
	dir := t.TempDir()
	bin := buildSignstar(t, dir, "")
	cfg := filepath.Join(dir, "bomb.toml")
	if err := os.WriteFile(cfg, []byte("[audit]\npath = \"/x\"\nx = "+strings.Repeat("[", 900_000)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg, "sign")
	cmd.Stdin = strings.NewReader("x")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitFailed {
		t.Fatalf("exit: %v, want %d (stderr %.200q)", err, exitFailed, stderr.String())
	}
	if want := "signstar: " + cfg + ":3: arrays and inline tables nest deeper than 8"; !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("stderr %.200q, want %q", stderr.String(), want)
	}
	if rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss; rss > 64<<10 {
		t.Errorf("max RSS %d KiB, want under 64 MiB", rss)
	}
}
