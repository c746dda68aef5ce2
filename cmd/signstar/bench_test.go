package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/backend/keyfile"
	"github.com/signstar/signstar/internal/config"
	"github.com/signstar/signstar/internal/sandbox"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// BenchmarkProcessSign1KiB is the 1 KiB target as a benchmark: one
// whole signstar process (start-up, key parse, sandbox, fsynced audit
// record) against one `gpg --detach-sign` with a warm gpg-agent, same key,
// same input. signstar should not be slower. scripts/bench.sh measures the
// same with interleaved runs and more tools.
//
//	go test ./cmd/signstar -run '^$' -bench ProcessSign1KiB
func BenchmarkProcessSign1KiB(b *testing.B) {
	gpg := testenv.NeedTool(b, "gpg", "gnupg")
	testenv.NeedTool(b, "gpg-agent", "gpg-agent")
	dir := b.TempDir()
	bin := filepath.Join(dir, "signstar")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as make build does
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	input := filepath.Join(dir, "in")
	if err := os.WriteFile(input, bytes.Repeat([]byte{0x5a}, 1024), 0o644); err != nil {
		b.Fatal(err)
	}
	home := filepath.Join(dir, "gnupg")
	if err := os.Mkdir(home, 0o700); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run() })
	mode := strictestMode()
	for _, name := range []string{"ed25519", "rsa3072"} {
		key := copyKey(b, dir, name)
		cfg := benchConfig(b, dir, name, key, mode)
		if out, err := exec.Command(gpg, "--homedir", home, "--batch", "--import", key).CombinedOutput(); err != nil {
			b.Fatalf("gpg --import: %v: %s", err, out)
		}
		fpr := keyFingerprint(b, gpg, home, filepath.Join(keysDir, name+".pub"))
		b.Run("signstar/"+name, func(b *testing.B) {
			runProcess(b, input, bin, "--config", cfg, "sign")
		})
		b.Run("gpg/"+name, func(b *testing.B) {
			runProcess(b, input, gpg, "--homedir", home, "--batch", "--no-tty", "--detach-sign", "--no-armor", "--local-user", fpr, "--output", "-")
		})
	}
}

// runProcess runs argv with input on stdin once per iteration, after one
// untimed run (the agent's first signature loads the key).
func runProcess(b *testing.B, input string, argv ...string) {
	run := func() {
		f, err := os.Open(input)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		cmd := exec.Command(argv[0], argv[1:]...)
		var out, errb bytes.Buffer
		cmd.Stdin, cmd.Stdout, cmd.Stderr = f, &out, &errb
		if err := cmd.Run(); err != nil || out.Len() == 0 {
			b.Fatalf("%s: %v: %s", filepath.Base(argv[0]), err, errb.Bytes())
		}
	}
	run()
	for b.Loop() {
		run()
	}
}

func copyKey(b *testing.B, dir, name string) string {
	data, err := os.ReadFile(filepath.Join(keysDir, name+".key"))
	if err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(dir, name+".key")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		b.Fatal(err)
	}
	return p
}

func benchConfig(b *testing.B, dir, name, key, mode string) string {
	u := testUser()
	cfg := fmt.Sprintf("[audit]\npath = %q\n\n[sandbox]\nmode = %q\n\n[[profile]]\nname = \"bench\"\nbackend = \"keyfile\"\nkey = %q\nkinds = [\"any\"]\nusers = [%q]\n",
		filepath.Join(dir, name+".audit.jsonl"), mode, key, u)
	p := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

func keyFingerprint(b *testing.B, gpg, home, pub string) string {
	out, err := exec.Command(gpg, "--homedir", home, "--with-colons", "--show-keys", pub).Output()
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Split(l, ":"); len(f) > 9 && f[0] == "fpr" {
			return f[9]
		}
	}
	b.Fatalf("no fingerprint in %s", pub)
	return ""
}

// BenchmarkStartup times the start-up steps of a sign request in process.
// In a fresh process some cost more: the first Ed25519 key builds Go's
// base point table (about 0.8 ms), which a loop amortizes away; see
// BENCHMARKS.md for the whole-process breakdown.
func BenchmarkStartup(b *testing.B) {
	dir := b.TempDir()
	key := copyKey(b, dir, "ed25519")
	cfgPath := benchConfig(b, dir, "ed25519", key, sandbox.BestEffort)
	b.Run("config", func(b *testing.B) {
		for b.Loop() {
			if _, err := config.Load(cfgPath); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("user", func(b *testing.B) {
		for b.Loop() {
			testUser()
		}
	})
	for _, name := range []string{"ed25519", "rsa3072"} {
		key := copyKey(b, dir, name)
		b.Run("keyfile/"+name, func(b *testing.B) {
			for b.Loop() {
				k, err := keyfile.Open(keyfile.Options{Key: key}, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				k.Close()
			}
		})
	}
	// The audit record as the sign path writes it: lock, append, fsync.
	b.Run("audit", func(b *testing.B) {
		log, err := audit.Open(filepath.Join(dir, "bench.audit.jsonl"))
		if err != nil {
			b.Fatal(err)
		}
		defer log.Close()
		for b.Loop() {
			tx, err := log.Lock()
			if err != nil {
				b.Fatal(err)
			}
			rec := &audit.Record{User: "bench", Command: "sign", Outcome: audit.Signed, Time: time.Now().UTC().Format(audit.TimeFormat), Sandbox: "none"}
			if err := tx.Append(rec); err != nil {
				b.Fatal(err)
			}
			tx.Unlock()
		}
	})
}
